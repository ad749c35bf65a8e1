"""What the report shows, computed once: :class:`ReportData`, built by :func:`report_data`
from a run (and its spend, scorecard, budget, evaluation).

The HTML page (:mod:`attribution.report.html`) and the charts
(:mod:`attribution.report.charts`) only arrange what is here: every table the report shows is
in :attr:`ReportData.tables` under its name (``summary``, ``comparison``, ``decision``,
``monthly``, ``scorecard``, ``budget``, ``transitions``, ``paths``, ``top_paths``,
``removal_effects``, ``evaluation``, ``dark_funnel``, ``trend``), and a chart is made from the
table of its name. The report leads with :attr:`ReportData.recommended`, the model a reader is
asked to act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from attribution.compare import BASELINE
from attribution.config import RECOMMENDED_EVIDENCE
from attribution.intervals import few_won_deals, sufficiency

if TYPE_CHECKING:
    from attribution.pipeline import RunResult

#: the top paths table's length
TOP_PATHS = 12


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, by table name, and the model it leads with."""

    result: RunResult
    #: the model the report leads with (decision, monthly chart, budget)
    recommended: str
    #: why that model (shown under the decision)
    evidence: str
    #: every table the report shows, by name
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: the fitted models' own tables (Markov removal effects, transitions, ...)
    diagnostics: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    #: what a reader must know first (few won deals, what the intervals resampled)
    warnings: list[str] = field(default_factory=list)
    #: channels of the recommended model with too few deals to tell
    insufficient: list[str] = field(default_factory=list)
    #: parameters of the Markov model, when it ran
    markov_params: dict[str, Any] = field(default_factory=dict)
    #: the history database the ``trend`` table was read from (URI without secrets)
    history: str | None = None

    @property
    def currency(self) -> str:
        return self.result.currency

    def table(self, name: str) -> pl.DataFrame | None:
        return self.tables.get(name)


def lead_model(result: RunResult, preferred: str | None = None) -> str:
    """The model the report leads with: ``preferred`` (``--budget-model``), else the config's
    recommended model when it ran, else the first model other than last-touch."""
    names = [m.name for m in result.models]
    for name in (preferred, result.config.recommended):
        if name and name in names:
            return name
    return next((n for n in names if n != BASELINE), names[0] if names else BASELINE)


def decision_table(summary: pl.DataFrame, comparison: pl.DataFrame, model: str,
                   marked: pl.DataFrame) -> pl.DataFrame:
    """The recommended model against last-touch, a row per channel, sorted by the share
    shift (largest gain first): shares, the shift, intervals when the run has them, and
    ``won_deals_touched`` / ``sufficient``."""
    rows = comparison.filter(pl.col("model") == model)
    keep = ["channel", "channel_group", "revenue_credit_cents", "revenue_share",
            "last_touch_revenue_credit_cents", "last_touch_revenue_share", "share_shift",
            "revenue_shift_cents"]
    keep += [c for c in ("revenue_share_low", "revenue_share_high",
                         "last_touch_revenue_share_low", "last_touch_revenue_share_high")
             if c in rows.columns]
    rows = rows.select(keep).join(
        marked.filter(pl.col("model") == model).select("channel", "won_deals_touched",
                                                        "sufficient"),
        on="channel", how="left", maintain_order="left",
    ).with_columns(pl.col("won_deals_touched").fill_null(0), pl.col("sufficient").fill_null(False))
    return rows.sort(["share_shift", "channel"], descending=[True, False])


def monthly_table(result: RunResult, model: str) -> pl.DataFrame | None:
    """Won revenue credited by ``model``, by month of close (``2025-01``) and channel; None
    when the run kept no credit or has no close dates (a path table)."""
    credit = result.credit
    if credit.is_empty() or not result.journeys.has_timestamps:
        return None
    closed = result.journeys.journeys.select("journey_id", "closed_at").collect()
    return (
        credit.filter((pl.col("model") == model) & (pl.col("revenue_credit_cents") != 0))
        .join(closed, on="journey_id", how="left")
        .filter(pl.col("closed_at").is_not_null())
        .group_by(pl.col("closed_at").dt.strftime("%Y-%m").alias("month"), "channel",
                  "channel_group")
        .agg(pl.col("revenue_credit_cents").sum())
        .sort(["month", "revenue_credit_cents", "channel"], descending=[False, True, False])
    )


def report_data(
    result: RunResult,
    *,
    recommended: str | None = None,
    diagnostics: Mapping[str, pl.DataFrame] | None = None,
    scorecard: pl.DataFrame | None = None,
    budget: pl.DataFrame | None = None,
    evaluation: pl.DataFrame | None = None,
    calibration: Any = None,
    trend: pl.DataFrame | None = None,
    history: str | None = None,
) -> ReportData:
    """Build every table of the report once (see the module docstring); ``calibration`` (an
    :class:`attribution.calibrate.Calibration`) adds the experiments section. ``trend`` is the
    recommended model's credit per channel in the runs stored in the ``history`` database
    (:func:`attribution.db.channel_trend`)."""
    from attribution import graph
    from attribution.pipeline import model_diagnostics
    from attribution.transforms import apply_transforms

    if diagnostics is None:
        diagnostics = model_diagnostics(result) if result.models else {}
    model = lead_model(result, recommended)
    names = {m.name for m in result.models}
    tables: dict[str, pl.DataFrame] = {"summary": result.summary}
    marked = (sufficiency(result.summary, result.journeys, result.config.min_deals)
              if "sufficient" not in result.summary.columns else result.summary)
    insufficient: list[str] = []
    if result.summary.height:
        # a channel the lead model credits nothing has no evidence under it either
        sufficient = set(marked.filter((pl.col("model") == model) & pl.col("sufficient"))
                         .get_column("channel").to_list())
        insufficient = [c for c in result.summary.get_column("channel").unique(
            maintain_order=True).to_list() if c not in sufficient]
    if BASELINE in names and len(names) > 1:
        comparison = result.comparison()
        tables["comparison"] = comparison
        if model != BASELINE:
            tables["decision"] = decision_table(result.summary, comparison, model, marked)
    monthly = monthly_table(result, model)
    if monthly is not None:
        tables["monthly"] = monthly
    if scorecard is not None and scorecard.height:
        tables["scorecard"] = scorecard
    if budget is not None and budget.height:
        tables["budget"] = budget
    if evaluation is not None:
        tables["evaluation"] = evaluation
    if calibration is not None:
        tables["calibration"] = calibration.table
        tables["calibration_scores"] = calibration.scores
    if result.dark_funnel is not None:
        tables["dark_funnel"] = result.dark_funnel
    if trend is not None:
        tables["trend"] = trend
    tables["paths"] = graph.distinct_paths(result.journeys)
    markov = next((m for m in result.models if m.name == "markov"), None)
    transitions = diagnostics.get("markov_transitions")
    if not (transitions is not None and markov is not None
            and markov.params().get("order", 1) == 1):
        transitions = graph.transition_table(result.journeys, order=1)
    tables["transitions"] = transitions
    effects = diagnostics.get("markov_removal_effects")
    if effects is not None:
        tables["removal_effects"] = effects
    collapsed = apply_transforms(result.journeys, collapse_repeats=True)
    tables["top_paths"] = graph.top_paths(collapsed, None)
    warnings = []
    few = few_won_deals(result)
    if few:
        warnings.append(few[0].upper() + few[1:] + ".")
    warnings += [n for n in result.notes if "resamples of the" in n]
    return ReportData(
        result=result, recommended=model,
        evidence=(f"Your experiments favour {model} ([models] recommend_by = \"experiments\"): "
                  "its credit is the closest to the lifts they measured."
                  if calibration is not None and calibration.favoured == model
                  and result.config.recommend_by == "experiments"
                  else RECOMMENDED_EVIDENCE if model == "incremental"
                  else f"{model} was chosen for this report (--budget-model or [models] "
                       "recommended)."),
        tables=tables, diagnostics=diagnostics, warnings=warnings, insufficient=insufficient,
        markov_params=markov.params() if markov is not None else {},
        history=history,
    )


__all__ = ["ReportData", "decision_table", "lead_model", "monthly_table", "report_data"]
