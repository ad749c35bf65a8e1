"""Notebook helpers that mirror the CLI's economics and report commands on a :class:`RunResult`.

::

    import attribution as at
    result = at.run(at.load_config("fixtures/demo/attribution.toml"))
    spend = at.read_spend(result)                         # the config's spend file
    at.scorecard(result, spend)                           # channel economics per model
    at.scorecard(result, spend, grain="month")            # the funnel by month
    at.recommend_budget(result, spend, "w_shaped", shift=0.3, floors={"podcast": "10%"})
    at.write_report(result, "report.html", spend=spend)

Every table is a polars DataFrame with money in minor units of the run's currency
(``result.currency``), and every such column says so: it is named ``*_cents`` (integers, or
floats for estimates such as Markov's removal-effect ``revenue_credit_cents``), ``_cents``
meaning the currency's minor unit (cents for USD, fils for KWD, yen for JPY). The files name the
same columns without the suffix, in major units:
``attribution.output.money_to_decimal(frame, decimals=currency_decimals(result.currency))``
gives a frame as the files hold it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from attribution.channels import load_rules
from attribution.errors import ConfigError
from attribution.pipeline import RunResult
from attribution.spend import Spend, load_spend


def read_spend(result: RunResult, path: str | Path | None = None) -> Spend:
    """Load a spend export with the run's channel rules and currency (default: the config's)."""
    chosen = path or result.config.spend
    if chosen is None:
        raise ConfigError("no spend file: pass a path or set [inputs] spend in the config")
    config = result.config
    labels = result.summary.get_column("channel").unique().to_list() if result.summary.height \
        else None  # spend channels take the touches' spelling ("linkedin ads" -> "LinkedIn Ads")
    # and their groups (a preset's groups reach the touches, not the rules)
    groups = dict(result.journeys.touches.select("channel", "channel_group")
                  .unique(subset="channel").drop_nulls().collect().iter_rows())
    # the config's [inputs.spend] query goes with the config's uri, not with a --spend given
    query = config.queries.get("spend") if path is None else None
    return load_spend(chosen, rules=load_rules(config.channel_rules), currency=result.currency,
                      columns=config.columns.get("spend"), strict=config.strict,
                      labels=labels, encoding=config.encoding_of("spend"), groups=groups,
                      query=query)


def scorecard(result: RunResult, spend: Spend | None = None, *, grain: str | None = None,
              by_period_channel: bool = False) -> pl.DataFrame:
    """The channel scorecard (no grain), or the funnel by ``week|month|quarter`` by channel group.

    See :func:`attribution.economics.channel_scorecard` and :func:`attribution.economics.scorecard`.
    """
    from attribution import economics

    inputs = result.inputs
    if inputs is None and result.stats is not None:  # built from exports, which it let go
        raise ConfigError(
            "this run let its inputs go (run(config, keep_inputs=False)); the scorecard counts "
            "leads from them: run with keep_inputs=True"
        )
    if result.models and result.credit.is_empty() and not result.summary.is_empty():
        raise ConfigError(
            "this run let its credit go (run(config, keep_credit=False)); the scorecard "
            "reads it: run with keep_credit=True"
        )
    leads = economics.first_touch_leads(inputs.touchpoints, inputs.contacts) if inputs else None
    if grain and not by_period_channel:
        return economics.scorecard(result.credit, result.journeys, leads, spend, grain=grain)
    return economics.channel_scorecard(result.credit, result.journeys, leads, spend, grain=grain)


def recommend_budget(result: RunResult, spend: Spend, model: str, *, total: int | None = None,
           shift: float = 0.2, floors: Mapping[str, Any] | None = None,
           caps: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """The budget recommendation under ``model`` next to last-touch's
    (:func:`attribution.budget.recommend_budget`; ``total`` in minor units). Money moves only
    for channels with the evidence to move (:func:`attribution.budget.move_evidence`: enough
    won deals to tell and, with intervals, a share interval that excludes last-touch's)."""
    from attribution import budget as budgeting

    return budgeting.recommend_budget(result.summary, spend, model, total=total, shift=shift,
                                      floors=floors, caps=caps,
                                      evidence=budget_evidence(result, model))


def budget_evidence(result: RunResult, model: str) -> dict[str, str | None]:
    """Per channel, None when the run's evidence supports moving its budget under ``model``,
    else why not (:func:`attribution.budget.move_evidence` on the run's marked summary)."""
    from attribution import budget as budgeting
    from attribution.intervals import marked

    return budgeting.move_evidence(marked(result), model, min_deals=result.config.min_deals)


def report_data(result: RunResult, *, spend: Spend | None = None,
                budget_model: str | None = None,
                evaluation: pl.DataFrame | None = None, calibration: Any = None,
                history: str | None = None, history_runs: int | None = None) -> Any:
    """Everything the report shows, built once (:class:`attribution.report.data.ReportData`):
    led by ``budget_model`` (default: the config's recommended model when it ran), with the
    scorecard and the budget move when there is spend. The budget moves money only for the
    channels with enough won deals to tell and, with intervals in the run's summary
    (``--bootstrap``), whose share interval excludes last-touch's share
    (:func:`budget_evidence`). With ``history`` (a database that ``attribution run --out`` writes
    to), the report shows the led model's credit per channel across its last
    ``history_runs`` stored runs (:func:`attribution.db.channel_trend`)."""
    from attribution import budget as budgeting
    from attribution.report.data import lead_model
    from attribution.report.data import report_data as build

    scorecard_frame = budget_frame = None
    model = lead_model(result, budget_model)
    if spend is not None:
        scorecard_frame = scorecard(result, spend)
        if model in [m.name for m in result.models]:
            budget_frame = budgeting.recommend_budget(result.summary, spend, model,
                                                      evidence=budget_evidence(result, model))
    trend = shown = None
    if history is not None:
        from attribution import db

        trend = db.channel_trend(history, model, last=history_runs)
        shown = db.parse_uri(history).display
    return build(result, recommended=model, scorecard=scorecard_frame, budget=budget_frame,
                 evaluation=evaluation, calibration=calibration, trend=trend, history=shown)


def write_report(result: RunResult, path: str | Path, *, spend: Spend | None = None,
                 budget_model: str | None = None, png_dir: str | Path | None = None,
                 evaluation: pl.DataFrame | None = None, calibration: Any = None,
                 history: str | None = None, history_runs: int | None = None) -> Path:
    """Write the self-contained HTML report (and PNG charts) of a run; ``evaluation`` is an
    :meth:`attribution.evaluate.Evaluation.summary` for the "which model to trust" section,
    ``calibration`` an :class:`attribution.calibrate.Calibration` for "checked against your
    experiments". The report leads with ``budget_model`` (default: the recommended model)."""
    from attribution import report as reporting

    data = report_data(result, spend=spend, budget_model=budget_model, evaluation=evaluation,
                       calibration=calibration, history=history, history_runs=history_runs)
    return reporting.write_report(data, Path(path), png_dir=Path(png_dir) if png_dir else None)
