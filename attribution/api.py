"""Notebook helpers that mirror the CLI's economics and report commands on a :class:`RunResult`.

::

    import attribution as at
    result = at.run(at.load_config("fixtures/demo/attribution.toml"))
    spend = at.read_spend(result)                         # the config's spend file
    at.scorecard(result, spend)                           # channel economics per model
    at.scorecard(result, spend, grain="month")            # the funnel by month
    at.recommend_budget(result, spend, "w_shaped", shift=0.3, floors={"podcast": "10%"})
    at.write_report(result, "report.html", spend=spend)

Every table is a polars DataFrame with money in minor units (cents).
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
    return load_spend(chosen, rules=load_rules(config.channel_rules), currency=result.currency,
                      columns=config.columns.get("spend"), strict=config.strict)


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
    (:func:`attribution.budget.recommend_budget`; ``total`` in minor units)."""
    from attribution import budget as budgeting

    return budgeting.recommend_budget(result.summary, spend, model, total=total, shift=shift,
                            floors=floors, caps=caps)


def write_report(result: RunResult, path: str | Path, *, spend: Spend | None = None,
                 budget_model: str = "w_shaped", png_dir: str | Path | None = None,
                 evaluation: pl.DataFrame | None = None) -> Path:
    """Write the self-contained HTML report (and PNG charts) of a run; ``evaluation`` is an
    :meth:`attribution.evaluate.Evaluation.summary` for the "which model to trust" section."""
    from attribution import report as reporting

    scorecard_frame = budget_frame = None
    names = [m.name for m in result.models]
    if spend is not None:
        scorecard_frame = scorecard(result, spend)
        if budget_model in names:
            budget_frame = recommend_budget(result, spend, budget_model)
    return reporting.write_report(result, Path(path), png_dir=Path(png_dir) if png_dir else None,
                                  scorecard=scorecard_frame, budget=budget_frame,
                                  evaluation=evaluation)
