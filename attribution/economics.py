"""Channel economics: judge channels by the pipeline and revenue they create, not by leads.

Two tables, both per model, both built from the same additive *facts* per channel:

* :func:`channel_scorecard` - per channel (optionally per period): leads, credited
  opportunities, pipeline, won deals and revenue, win rate, deal size, days to close, and with
  spend the cost per lead / opportunity / won deal, ROI and ROAS;
* :func:`scorecard` - the funnel by week, month or quarter, in total and per channel group
  (demand_creation vs demand_capture), with the change in opportunities split into a volume
  part and a conversion part, so a drop can be traced to one or the other.

Definitions (every figure is exact arithmetic on the credit table; nothing is re-estimated)
----------------------------------------------------------------------------------------
leads
    Contacts whose **first touch** (earliest by time, ties broken like journeys: contact,
    channel, touch type, campaign, touchpoint id) is on the channel, counted from the loaded
    touchpoints and contacts *before* any lookback window (:func:`first_touch_leads`). A
    contact of the contacts file without any touch is a lead of ``(no touch)``. Touches with no
    contact (account-level touches) make no lead. A lead falls in the period of its
    ``lead_created_at``, or of its first touch when the contacts file has no date; a lead with
    neither is counted in the whole-range table only.
opportunities
    Credited opportunities: the sum of the model's weights over deals (won, lost, open), so
    every deal is shared out to exactly 1.0 opportunity over its channels. In a period table a
    deal counts in the period of its ``created_at``. ``opportunities_touched`` counts the deals
    on which the channel has at least one touch in the journey, whatever the model credited.
pipeline_credit
    The model's pipeline credit (every deal's amount, split exactly), by ``created_at``.
closed_deals, won_deals
    Credited closed (won + lost) and credited won deals (the conversion credit), in the period
    of ``closed_at``. Open deals are in neither.
revenue_credit
    The model's revenue credit (won deals), in the period of ``closed_at``.
win_rate
    ``won_deals / closed_deals``: credited won over credited *closed* opportunities - deals
    still open are left out, so a channel whose deals have not closed yet is not punished.
    Null when the channel has no closed credit.
avg_deal_size
    ``revenue_credit / won_deals`` (minor units, rounded half to even): the average won deal
    behind the channel's credit. Null without won credit.
days_to_close
    Credit-weighted mean of ``closed_at - created_at`` in days (fractional) over won deals:
    ``sum(weight x days) / sum(weight)``. Null without won credit.
lead_to_opportunity
    ``opportunities / leads``: credited opportunities per first-touch lead (a ratio of two
    different attributions: leads by first touch, opportunities by the model). Null without leads.
revenue_per_lead
    ``revenue_credit / leads`` (minor units, rounded).
spend, cost_per_lead, cost_per_opportunity, cost_per_won_deal
    Spend in the channel (spread per day, summed over the period or the whole range) and spend
    divided by leads, credited opportunities and credited won deals (minor units, rounded; null
    when the divisor is 0).
roi, roas
    ``(revenue_credit - spend) / spend`` and ``revenue_credit / spend``; null without spend.

Every money figure is ``Int64`` minor units; shares and rates are ``Float64``.

The credit table comes from :func:`attribution.pipeline.run` (``RunResult.credit``), the
journeys from ``RunResult.journeys``, the leads from :func:`first_touch_leads` on the loaded
touchpoints and contacts (:func:`attribution.pipeline.load`), the spend from
:func:`attribution.spend.load_spend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from attribution.credit import exact_sum
from attribution.errors import ModelError
from attribution.journeys import TOUCH_ORDER, Journeys
from attribution.schema import (
    DEAL_STATUSES,
    NO_TOUCH_CHANNEL,
    NO_TOUCH_GROUP,
    UTC_TIME,
    schema_of,
)
from attribution.spend import GRAINS, Spend, check_grain, daily_of, period_of

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

TOTAL = "total"
_US_PER_DAY = 86_400_000_000

#: one row per lead (contact) with the channel of its first touch
LEAD_SCHEMA = schema_of(
    {
        "contact_id": pl.String,
        "account_id": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "first_touch_at": UTC_TIME,
        "lead_at": UTC_TIME,  # lead_created_at, else the first touch
    }
)

#: the additive facts per (model, period, channel): sums that any grouping can add up
_FACTS: dict[str, PolarsDataType] = {
    "leads": pl.Int64,
    "opportunities": pl.Float64,
    "opportunities_touched": pl.Int64,
    "pipeline_credit_cents": pl.Int64,
    "closed_deals": pl.Float64,
    "won_deals": pl.Float64,
    "revenue_credit_cents": pl.Int64,
    "_won_days": pl.Float64,  # sum of weight x days to close over won deals
    "spend_cents": pl.Int64,
}


def _sum(value: pl.Expr, dtype: PolarsDataType) -> pl.Expr:
    """A group's sum; floats summed exactly, so every run gives the same bytes."""
    return exact_sum(value) if dtype == pl.Float64 else value.sum()


#: one row per (model, period, channel); ``period`` is null in the whole-range table
CHANNEL_SCORECARD_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "period": pl.Date,
        "channel": pl.String,
        "channel_group": pl.String,
        "leads": pl.Int64,
        "opportunities": pl.Float64,
        "opportunities_touched": pl.Int64,
        "pipeline_credit_cents": pl.Int64,
        "closed_deals": pl.Float64,
        "won_deals": pl.Float64,
        "revenue_credit_cents": pl.Int64,
        "win_rate": pl.Float64,
        "avg_deal_size_cents": pl.Int64,
        "days_to_close": pl.Float64,
        "lead_to_opportunity": pl.Float64,
        "revenue_per_lead_cents": pl.Int64,
        "spend_cents": pl.Int64,
        "cost_per_lead_cents": pl.Int64,
        "cost_per_opportunity_cents": pl.Int64,
        "cost_per_won_deal_cents": pl.Int64,
        "roi": pl.Float64,
        "roas": pl.Float64,
    }
)

#: the funnel by period: one row per (model, period, channel_group), ``total`` first
SCORECARD_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "period": pl.Date,
        "channel_group": pl.String,  # "total", demand_creation, demand_capture, ...
        "leads": pl.Int64,
        "opportunities": pl.Float64,
        "pipeline_cents": pl.Int64,
        "closed_deals": pl.Float64,
        "won_deals": pl.Float64,
        "won_revenue_cents": pl.Int64,
        "lead_to_opportunity": pl.Float64,
        "win_rate": pl.Float64,
        "avg_deal_size_cents": pl.Int64,
        "avg_cycle_days": pl.Float64,
        "spend_cents": pl.Int64,
        "roas": pl.Float64,
        # change against the previous period of the same group: opportunities = leads x rate
        "opportunities_change": pl.Float64,
        "volume_effect": pl.Float64,  # (leads - previous leads) x previous rate
        "conversion_effect": pl.Float64,  # leads x (rate - previous rate)
    }
)


# -- leads ----------------------------------------------------------------------------------
def first_touch_leads(
    touchpoints: pl.DataFrame, contacts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per lead (:data:`LEAD_SCHEMA`): each contact and the channel of its first touch.

    Parameters
    ----------
    touchpoints
        Loaded touchpoints (``Inputs.touchpoints``): ``timestamp, contact_id, account_id,
        channel, channel_group`` (and ``touch_type, campaign, touchpoint_id`` for tie-breaks).
        Every touch counts: no lookback window, no deduplication (neither changes a first touch).
    contacts
        Loaded contacts (``Inputs.contacts``): ``contact_id, account_id, lead_created_at``.
        Contacts without any touch are leads of ``(no touch)``.

    Examples
    --------
    >>> import datetime as dt
    >>> touches = pl.DataFrame({"contact_id": ["c1", "c1"], "account_id": ["a", "a"],
    ...     "timestamp": [dt.datetime(2025, 1, 2), dt.datetime(2025, 1, 1)],
    ...     "channel": ["email", "podcast"], "channel_group": ["x", "y"]})
    >>> first_touch_leads(touches)["channel"].to_list()
    ['podcast']
    """
    order = [c for c in TOUCH_ORDER if c in touchpoints.columns and c != "contact_id"]
    first = (
        touchpoints.filter(pl.col("contact_id").is_not_null())
        .sort(["contact_id", *order], nulls_last=True, maintain_order=True)
        .group_by("contact_id", maintain_order=True)
        .first()
        .select(
            "contact_id",
            pl.col("account_id").alias("_touch_account"),
            "channel",
            "channel_group",
            pl.col("timestamp").cast(UTC_TIME).alias("first_touch_at"),
        )
    )
    if contacts is None:
        contacts = pl.DataFrame(
            schema={"contact_id": pl.String, "account_id": pl.String, "lead_created_at": UTC_TIME}
        )
    known = contacts.select(
        "contact_id", "account_id", pl.col("lead_created_at").cast(UTC_TIME)
    ).unique(subset="contact_id", keep="first", maintain_order=True)
    leads = known.join(first, on="contact_id", how="full", coalesce=True).select(
        "contact_id",
        pl.coalesce("account_id", "_touch_account").alias("account_id"),
        pl.col("channel").fill_null(NO_TOUCH_CHANNEL),
        pl.col("channel_group").fill_null(NO_TOUCH_GROUP),
        "first_touch_at",
        pl.coalesce("lead_created_at", "first_touch_at").alias("lead_at"),
    )
    return leads.sort("contact_id").cast(dict(LEAD_SCHEMA))  # type: ignore[arg-type]


# -- facts --------------------------------------------------------------------------------------
def _period(column: str, grain: str | None) -> pl.Expr:
    if grain is None:
        return pl.lit(None, pl.Date).alias("period")
    return period_of(pl.col(column), grain).alias("period")


def _models(credit: pl.DataFrame, models: Sequence[str] | None) -> list[str]:
    present = (
        credit.get_column("model").unique(maintain_order=True).to_list() if credit.height else []
    )
    if models is None:
        return present
    missing = [m for m in models if m not in present]
    if missing:
        raise ModelError(
            f"model {missing[0]!r} is not in the run; "
            f"the run has {', '.join(present) or 'no model'}"
            f"; add --model {missing[0]}"
        )
    return list(models)


def channel_facts(
    credit: pl.DataFrame,
    journeys: Journeys,
    leads: pl.DataFrame | None = None,
    spend: Spend | pl.DataFrame | None = None,
    *,
    grain: str | None = None,
    models: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The additive facts per ``model, period, channel`` (sums; no ratios).

    Leads and spend do not depend on the model: they are repeated for every model. Only deals
    (status won, lost, open) are counted; a path-table run has no deals and gives no rows.
    """
    if grain is not None:
        check_grain(grain)
    names = _models(credit, models)
    model_frame = pl.DataFrame({"model": names}, schema={"model": pl.String})
    keys = ["model", "period", "channel", "channel_group"]
    parts: list[pl.DataFrame] = []

    dates = journeys.journeys.select("journey_id", "created_at", "closed_at").collect()
    deals = credit.filter(pl.col("model").is_in(names) & pl.col("status").is_in(DEAL_STATUSES))
    deals = deals.join(dates, on="journey_id", how="left")
    parts.append(
        deals.group_by("model", _period("created_at", grain), "channel", "channel_group").agg(
            exact_sum(pl.col("weight")).alias("opportunities"),
            pl.col("pipeline_credit_cents").sum(),
        )
    )
    closed = deals.filter(pl.col("status").is_in(["won", "lost"]))
    won = pl.col("status") == "won"
    days = (pl.col("closed_at") - pl.col("created_at")).dt.total_microseconds() / _US_PER_DAY
    parts.append(
        closed.group_by("model", _period("closed_at", grain), "channel", "channel_group").agg(
            exact_sum(pl.col("weight")).alias("closed_deals"),
            exact_sum(pl.col("weight").filter(won)).alias("won_deals"),
            pl.col("revenue_credit_cents").sum(),
            exact_sum((pl.col("weight") * days).filter(won)).alias("_won_days"),
        )
    )

    deal_journeys = journeys.journeys.filter(pl.col("status").is_in(DEAL_STATUSES)).select(
        "journey_id", "created_at", "n_touches"
    )
    touched = pl.concat(
        [
            journeys.touches.select("journey_id", "channel", "channel_group").unique()
            .join(deal_journeys, on="journey_id", how="inner")
            .drop("n_touches"),
            deal_journeys.filter(pl.col("n_touches") == 0).select(
                "journey_id", pl.lit(NO_TOUCH_CHANNEL).alias("channel"),
                pl.lit(NO_TOUCH_GROUP).alias("channel_group"), "created_at",
            ),
        ]
    ).collect()
    touched_counts = touched.group_by(_period("created_at", grain), "channel", "channel_group").agg(
        pl.len().cast(pl.Int64).alias("opportunities_touched")
    )
    parts.append(model_frame.join(touched_counts, how="cross"))

    if leads is not None:
        placed = leads if grain is None else leads.filter(pl.col("lead_at").is_not_null())
        lead_counts = placed.group_by(_period("lead_at", grain), "channel", "channel_group").agg(
            pl.len().cast(pl.Int64).alias("leads")
        )
        parts.append(model_frame.join(lead_counts, how="cross"))
    if spend is not None:
        spend_counts = daily_of(spend).group_by(
            _period("day", grain), "channel", "channel_group"
        ).agg(pl.col("spend_cents").sum())
        parts.append(model_frame.join(spend_counts, how="cross"))

    combined = pl.concat(
        [part.with_columns(pl.col("period").cast(pl.Date)) for part in parts],
        how="diagonal_relaxed",
    )
    for name in _FACTS:
        if name not in combined.columns:
            combined = combined.with_columns(pl.lit(None).alias(name))
    order = pl.DataFrame({"model": names}).with_row_index("_order")
    facts = (
        combined.group_by("model", "period", "channel")
        .agg(
            pl.col("channel_group").drop_nulls().first(),
            *[_sum(pl.col(name).fill_null(0), dtype).cast(dtype) for name, dtype in _FACTS.items()],
        )
        .join(order, on="model", how="left")
        .sort(["_order", "period", "revenue_credit_cents", "pipeline_credit_cents", "channel"],
              descending=[False, False, True, True, False], nulls_last=True)
        .drop("_order")
    )
    return facts.select(*keys, *_FACTS)


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    return pl.when(pl.col(denominator) != 0).then(pl.col(numerator) / pl.col(denominator))


def _money_ratio(numerator: str, denominator: str) -> pl.Expr:
    """Money per unit, in minor units rounded half to even; null when the divisor is 0."""
    return _ratio(numerator, denominator).round(0).cast(pl.Int64)


def channel_scorecard(
    credit: pl.DataFrame,
    journeys: Journeys,
    leads: pl.DataFrame | None = None,
    spend: Spend | pl.DataFrame | None = None,
    *,
    grain: str | None = None,
    models: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Per model and channel (and period with ``grain``): the channel's economics.

    Parameters
    ----------
    credit
        ``RunResult.credit`` (:data:`~attribution.schema.CREDIT_SCHEMA`), any number of models.
    journeys
        ``RunResult.journeys``: ``created_at`` / ``closed_at`` of each deal and who touched it.
    leads
        :func:`first_touch_leads` of the loaded touchpoints and contacts; without it ``leads``
        is 0 and the per-lead figures are null.
    spend
        A :class:`~attribution.spend.Spend` (or its daily frame); without it spend is 0 and the
        cost figures null.
    grain
        ``None`` for the whole range (``period`` null), or ``day``/``week``/``month``/``quarter``.
    models
        Models to keep (default: every model of ``credit``, in its order).

    Returns
    -------
    polars.DataFrame
        :data:`CHANNEL_SCORECARD_SCHEMA`; the definitions are in the module docstring. Rows by
        model, period, then revenue credit (largest first).

    Examples
    --------
    >>> card = channel_scorecard(result.credit, result.journeys, leads, spend)  # doctest: +SKIP
    >>> card.filter(pl.col("model") == "linear").select(
    ...     "channel", "leads", "roas")  # doctest: +SKIP
    """
    facts = channel_facts(credit, journeys, leads, spend, grain=grain, models=models)
    card = facts.with_columns(
        _ratio("won_deals", "closed_deals").alias("win_rate"),
        _money_ratio("revenue_credit_cents", "won_deals").alias("avg_deal_size_cents"),
        _ratio("_won_days", "won_deals").alias("days_to_close"),
        _ratio("opportunities", "leads").alias("lead_to_opportunity"),
        _money_ratio("revenue_credit_cents", "leads").alias("revenue_per_lead_cents"),
        _money_ratio("spend_cents", "leads").alias("cost_per_lead_cents"),
        _money_ratio("spend_cents", "opportunities").alias("cost_per_opportunity_cents"),
        _money_ratio("spend_cents", "won_deals").alias("cost_per_won_deal_cents"),
        pl.when(pl.col("spend_cents") != 0)
        .then((pl.col("revenue_credit_cents") - pl.col("spend_cents")) / pl.col("spend_cents"))
        .alias("roi"),
        _ratio("revenue_credit_cents", "spend_cents").alias("roas"),
    )
    # a channel without spend has no cost (empty, not 0), and (no touch) no leads: deals
    # without a touch in their window are not contacts' first touches
    unspent = pl.col("spend_cents").fill_null(0) == 0
    card = card.with_columns(
        [pl.when(unspent).then(None).otherwise(pl.col(c)).alias(c)
         for c in ("cost_per_lead_cents", "cost_per_opportunity_cents", "cost_per_won_deal_cents",
                   "roi", "roas")]
    ).with_columns(
        [pl.when(pl.col("channel") == NO_TOUCH_CHANNEL).then(None).otherwise(pl.col(c)).alias(c)
         for c in ("leads", "lead_to_opportunity", "revenue_per_lead_cents", "cost_per_lead_cents")]
    )
    return card.select([pl.col(n).cast(t) for n, t in CHANNEL_SCORECARD_SCHEMA.items()])


def scorecard(
    credit: pl.DataFrame,
    journeys: Journeys,
    leads: pl.DataFrame | None = None,
    spend: Spend | pl.DataFrame | None = None,
    *,
    grain: str = "week",
    models: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The funnel by period, in total and per channel group (:data:`SCORECARD_SCHEMA`).

    For every model, every period from the first to the last with any activity (periods with
    none are rows of zeros, so a gap shows) and every channel group, plus a ``total`` row per
    period: leads, credited opportunities and pipeline (by ``created_at``), credited closed and
    won deals and won revenue (by ``closed_at``), lead-to-opportunity rate, win rate, average
    deal size, average cycle (credit-weighted days from creation to close of won deals), spend
    and ROAS. ``total`` sums every channel, so its opportunities are the deals created in the
    period and its won revenue the revenue closed in it, whatever the model.

    The change in opportunities from the previous period of the same group splits exactly into
    ``volume_effect = (leads - leads_prev) x rate_prev`` and ``conversion_effect = leads x
    (rate - rate_prev)`` where ``rate = opportunities / leads``; both are null when either
    period has no leads. A drop that is mostly volume effect came from fewer leads; mostly
    conversion effect, from leads that turned into fewer opportunities.

    Examples
    --------
    >>> weekly = scorecard(result.credit, result.journeys, leads, spend, grain="week",
    ...                    models=["linear"])  # doctest: +SKIP
    """
    check_grain(grain)
    facts = channel_facts(credit, journeys, leads, spend, grain=grain, models=models)
    sums = [_sum(pl.col(name), dtype).alias(name) for name, dtype in _FACTS.items()
            if name != "opportunities_touched"]
    by_group = facts.group_by("model", "period", "channel_group").agg(sums)
    total = (
        facts.group_by("model", "period").agg(sums)
        .with_columns(pl.lit(TOTAL).alias("channel_group"))
    )
    stacked = pl.concat([total, by_group.select(total.columns)])

    names = _models(credit, models)
    periods = stacked.get_column("period").drop_nulls()
    if periods.len():
        grid_periods = pl.date_range(periods.min(), periods.max(),  # type: ignore[arg-type]
                                     GRAINS[grain], eager=True)
    else:
        grid_periods = pl.Series("period", [], dtype=pl.Date)
    assert isinstance(grid_periods, pl.Series)  # eager=True above
    groups = stacked.select("channel_group").unique()
    grid = (
        pl.DataFrame({"model": names}, schema={"model": pl.String}).with_row_index("_model_order")
        .join(grid_periods.alias("period").to_frame(), how="cross")
        .join(groups, how="cross")
    )
    filled = grid.join(stacked, on=["model", "period", "channel_group"], how="left").with_columns(
        [pl.col(n).fill_null(0) for n in _FACTS if n != "opportunities_touched"]
    )
    rate = _ratio("opportunities", "leads")
    ordered = filled.sort(
        ["_model_order", pl.col("channel_group") != TOTAL, "channel_group", "period"]
    ).with_columns(rate.alias("_rate"))
    previous = [
        pl.col(c).shift(1).over("_model_order", "channel_group")
        for c in ("leads", "_rate", "opportunities")
    ]
    leads_prev, rate_prev, opps_prev = previous
    decomposable = pl.col("_rate").is_not_null() & rate_prev.is_not_null()
    ordered = ordered.with_columns(
        (pl.col("opportunities") - opps_prev).alias("opportunities_change"),
        pl.when(decomposable).then((pl.col("leads") - leads_prev) * rate_prev)
        .alias("volume_effect"),
        pl.when(decomposable).then(pl.col("leads") * (pl.col("_rate") - rate_prev))
        .alias("conversion_effect"),
    )
    result = ordered.with_columns(
        pl.col("pipeline_credit_cents").alias("pipeline_cents"),
        pl.col("revenue_credit_cents").alias("won_revenue_cents"),
        pl.col("_rate").alias("lead_to_opportunity"),
        _ratio("won_deals", "closed_deals").alias("win_rate"),
        _money_ratio("revenue_credit_cents", "won_deals").alias("avg_deal_size_cents"),
        _ratio("_won_days", "won_deals").alias("avg_cycle_days"),
        _ratio("revenue_credit_cents", "spend_cents").alias("roas"),
    ).sort(["_model_order", "period", pl.col("channel_group") != TOTAL, "channel_group"])
    return result.select([pl.col(n).cast(t) for n, t in SCORECARD_SCHEMA.items()])


def period_label(period: pl.Expr, grain: str) -> pl.Expr:
    """A period's start date as a reader names it: ``2025-Q1``, ``2025-01``, or the week's
    Monday (``2025-01-06``)."""
    if grain == "quarter":
        return pl.format("{}-Q{}", period.dt.year(), period.dt.quarter())
    if grain == "month":
        return period.dt.strftime("%Y-%m")
    return period.dt.strftime("%Y-%m-%d")


#: what a funnel period counts, said wherever the funnel is shown
PERIOD_BASIS = ("leads by their creation, opportunities and pipeline by the deal's creation, "
                "won deals and won revenue by the deal's close in the period")


__all__ = [
    "CHANNEL_SCORECARD_SCHEMA",
    "PERIOD_BASIS",
    "LEAD_SCHEMA",
    "SCORECARD_SCHEMA",
    "TOTAL",
    "channel_facts",
    "channel_scorecard",
    "first_touch_leads",
    "period_label",
    "scorecard",
]
