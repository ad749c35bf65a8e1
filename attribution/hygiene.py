"""Pipeline hygiene: flag deals that look created by a machine, not by a buyer.

CRMs often open a deal automatically - on a trial sign-up, a form fill, a bulk import. Such
deals inflate opportunity counts and usually drag the win rate down (or, when sales only
converts the good ones by hand, up), and they credit whatever touch happened to come first.
This module flags them and shows the deal counts and win rate with and without them. It is a
**report only**: flags never change any credit.

Rules (:class:`HygieneRules`, both on by default)
-------------------------------------------------
no_prior_touch
    No touch by anyone in the buying group (the deal's account) at or before the deal's
    ``created_at`` within ``window_days`` before it. ``window_days=None`` uses the run's
    lookback (every journey touch up to creation); the window can only be narrower than the
    lookback, since touches before it are not in the journeys.
signup
    The deal was created within ``signup_minutes`` (either side) of a touch whose
    ``touch_type`` matches one of ``signup_touch_types`` (globs, case-insensitive:
    ``trial*``, ``signup*``, ...), and no sales touch came after that sign-up: no later touch
    whose channel group is in ``sales_groups`` or whose touch type matches
    ``sales_touch_types``. A sign-up that sales then worked is a real opportunity.

Journeys from a path table have no timestamps: nothing is flagged there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from attribution.channels import globs_to_regex
from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.schema import DEAL_STATUSES, UTC_TIME, schema_of


@dataclass(frozen=True)
class HygieneRules:
    """Which deals count as auto-created; every field is a documented default.

    Parameters
    ----------
    no_prior_touch
        Flag deals with no buying-group touch before creation.
    window_days
        How far before creation a touch must be to count (``None``: the run's lookback).
    signup
        Flag deals created right at a sign-up touch that sales never followed.
    signup_minutes
        How close to the sign-up touch the creation must be, in minutes.
    signup_touch_types
        Touch types that are sign-ups (globs).
    sales_groups
        Channel groups whose touches are sales touches.
    sales_touch_types
        Touch types that are sales touches (globs), whatever their channel.
    """

    no_prior_touch: bool = True
    window_days: float | None = None
    signup: bool = True
    signup_minutes: float = 10.0
    signup_touch_types: tuple[str, ...] = ("trial*", "signup*", "sign_up*", "sign-up*",
                                           "free_trial*")
    sales_groups: tuple[str, ...] = ("sales",)
    sales_touch_types: tuple[str, ...] = (
        "sales*", "call*", "meeting*", "demo*", "outbound*", "sdr*", "bdr*",
    )

    def __post_init__(self) -> None:
        for name in ("signup_touch_types", "sales_groups", "sales_touch_types"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.window_days is not None and self.window_days < 0:
            raise ConfigError(f"hygiene window_days must be >= 0, not {self.window_days}")
        if self.signup_minutes < 0:
            raise ConfigError(f"hygiene signup_minutes must be >= 0, not {self.signup_minutes}")


#: one row per deal
FLAG_SCHEMA = schema_of(
    {
        "journey_id": pl.String,
        "deal_id": pl.String,
        "account_id": pl.String,
        "status": pl.String,
        "amount_cents": pl.Int64,
        "created_at": UTC_TIME,
        "no_prior_touch": pl.Boolean,
        "signup": pl.Boolean,
        "flagged": pl.Boolean,
        "reason": pl.String,  # "; "-joined rule names, null when clean
    }
)

#: deal counts and win rate of all deals, deals not flagged, and flagged deals
HYGIENE_REPORT_SCHEMA = pl.Schema(
    {
        "deals_in": pl.String,  # "all" | "not flagged" | "flagged" | "flagged: <rule>"
        "deals": pl.Int64,
        "open": pl.Int64,
        "won": pl.Int64,
        "lost": pl.Int64,
        "win_rate": pl.Float64,  # won / (won + lost)
        "pipeline_cents": pl.Int64,
        "won_revenue_cents": pl.Int64,
    }
)

#: per model and channel: credited win rate with and without the flagged deals
CHANNEL_HYGIENE_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "opportunities": pl.Float64,
        "flagged_opportunities": pl.Float64,
        "win_rate": pl.Float64,
        "win_rate_not_flagged": pl.Float64,
    }
)


def _matches(column: pl.Expr, patterns: Sequence[str]) -> pl.Expr:
    if not patterns:
        return pl.lit(False)
    return column.fill_null("").str.strip_chars().str.to_lowercase().str.contains(
        globs_to_regex(tuple(patterns))
    )


def flag_deals(journeys: Journeys, rules: HygieneRules | None = None) -> pl.DataFrame:
    """One row per deal (:data:`FLAG_SCHEMA`) saying which hygiene rules it trips.

    Examples
    --------
    >>> flags = flag_deals(result.journeys, HygieneRules(signup_minutes=5))  # doctest: +SKIP
    >>> flags.filter(pl.col("flagged")).select("deal_id", "reason")          # doctest: +SKIP
    """
    rules = rules or HygieneRules()
    deals = journeys.journeys.filter(pl.col("status").is_in(DEAL_STATUSES)).select(
        "journey_id", "deal_id", "account_id", "status", "amount_cents", "created_at"
    )
    touches = journeys.touches.select(
        "journey_id", "timestamp", "channel_group", "touch_type"
    ).join(deals.select("journey_id", "created_at"), on="journey_id", how="inner")
    timed = journeys.has_timestamps

    before = pl.col("timestamp") <= pl.col("created_at")
    if rules.window_days is not None:
        window = timedelta(days=rules.window_days)
        before = before & (pl.col("timestamp") >= pl.col("created_at") - window)
    prior = touches.filter(before).select("journey_id").unique().with_columns(
        pl.lit(True).alias("_prior")
    )

    is_sales = pl.col("channel_group").is_in(list(rules.sales_groups)) | _matches(
        pl.col("touch_type"), rules.sales_touch_types
    )
    last_sales = touches.filter(is_sales).group_by("journey_id").agg(
        pl.col("timestamp").max().alias("_last_sales")
    )
    near = timedelta(minutes=rules.signup_minutes)
    signups = (
        touches.filter(
            _matches(pl.col("touch_type"), rules.signup_touch_types)
            & ((pl.col("created_at") - pl.col("timestamp")).abs() <= near)
        )
        .join(last_sales, on="journey_id", how="left")
        .filter(pl.col("_last_sales").is_null() | (pl.col("_last_sales") <= pl.col("timestamp")))
        .select("journey_id")
        .unique()
        .with_columns(pl.lit(True).alias("_signup"))
    )
    flagged = (
        deals.join(prior, on="journey_id", how="left")
        .join(signups, on="journey_id", how="left")
        .with_columns(
            (pl.lit(rules.no_prior_touch and timed) & pl.col("_prior").is_null())
            .alias("no_prior_touch"),
            (pl.lit(rules.signup and timed) & pl.col("_signup").fill_null(False)).alias("signup"),
        )
        .with_columns(
            (pl.col("no_prior_touch") | pl.col("signup")).alias("flagged"),
            pl.concat_str(
                [
                    pl.when(pl.col("no_prior_touch")).then(pl.lit("no_prior_touch")),
                    pl.when(pl.col("signup")).then(pl.lit("signup")),
                ],
                separator="; ",
                ignore_nulls=True,
            ).alias("reason"),
        )
        .with_columns(pl.when(pl.col("flagged")).then(pl.col("reason")).alias("reason"))
        .sort("journey_id")
    )
    return flagged.select([pl.col(n).cast(t) for n, t in FLAG_SCHEMA.items()]).collect()


def _counts(deals: pl.DataFrame, label: str) -> dict[str, object]:
    won = int((deals["status"] == "won").sum())
    lost = int((deals["status"] == "lost").sum())
    return {
        "deals_in": label,
        "deals": deals.height,
        "open": int((deals["status"] == "open").sum()),
        "won": won,
        "lost": lost,
        "win_rate": won / (won + lost) if won + lost else None,
        "pipeline_cents": int(deals["amount_cents"].sum()),
        "won_revenue_cents": int(deals.filter(pl.col("status") == "won")["amount_cents"].sum()),
    }


def hygiene_report(flags: pl.DataFrame) -> pl.DataFrame:
    """Deal counts and win rate (won / closed) of all deals, those not flagged, and those flagged.

    Rows (:data:`HYGIENE_REPORT_SCHEMA`): ``all``, ``not flagged``, ``flagged``, then
    ``flagged: <rule>`` for each rule (a deal may trip both).
    """
    rows = [
        _counts(flags, "all"),
        _counts(flags.filter(~pl.col("flagged")), "not flagged"),
        _counts(flags.filter(pl.col("flagged")), "flagged"),
        _counts(flags.filter(pl.col("no_prior_touch")), "flagged: no_prior_touch"),
        _counts(flags.filter(pl.col("signup")), "flagged: signup"),
    ]
    return pl.DataFrame(rows, schema=HYGIENE_REPORT_SCHEMA, orient="row")


def channel_hygiene(credit: pl.DataFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """Per model and channel: credited opportunities, how many are flagged, and the credited
    win rate (won / closed weight) with and without the flagged deals."""
    rows = credit.filter(pl.col("status").is_in(DEAL_STATUSES)).join(
        flags.select("journey_id", "flagged"), on="journey_id", how="left"
    ).with_columns(pl.col("flagged").fill_null(False))
    closed = pl.col("status").is_in(["won", "lost"])
    won = pl.col("status") == "won"
    clean = ~pl.col("flagged")
    weight = pl.col("weight")
    summary = rows.group_by("model", "channel", "channel_group", maintain_order=True).agg(
        weight.sum().alias("opportunities"),
        weight.filter(pl.col("flagged")).sum().alias("flagged_opportunities"),
        weight.filter(won).sum().alias("_won"),
        weight.filter(closed).sum().alias("_closed"),
        weight.filter(won & clean).sum().alias("_won_clean"),
        weight.filter(closed & clean).sum().alias("_closed_clean"),
    ).with_columns(
        pl.when(pl.col("_closed") > 0).then(pl.col("_won") / pl.col("_closed")).alias("win_rate"),
        pl.when(pl.col("_closed_clean") > 0)
        .then(pl.col("_won_clean") / pl.col("_closed_clean"))
        .alias("win_rate_not_flagged"),
    )
    models = credit.select("model").unique(maintain_order=True).with_row_index("_order")
    return (
        summary.join(models, on="model")
        .sort(["_order", "opportunities", "channel"], descending=[False, True, False])
        .select([pl.col(n).cast(t) for n, t in CHANNEL_HYGIENE_SCHEMA.items()])
    )


__all__ = [
    "CHANNEL_HYGIENE_SCHEMA",
    "FLAG_SCHEMA",
    "HYGIENE_REPORT_SCHEMA",
    "HygieneRules",
    "channel_hygiene",
    "flag_deals",
    "hygiene_report",
]
