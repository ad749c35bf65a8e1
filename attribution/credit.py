"""Weights -> money: exact touch-level credit and the channel summary.

This is the only place a model's weights become money, so conservation holds for every model
by construction: each deal's amount (in minor units) is split over its weighted rows by the
largest-remainder method. Every row first gets ``floor(weight x amount)`` cents; the cents
left over go one each to the rows with the largest fractional parts, ties going to the earlier
touch (then the channel name). The credit of a deal therefore sums to its amount exactly,
and channel totals sum to total pipeline and total won revenue to the cent.

A deal with no touch in its window is credited whole to the ``(no touch)`` channel so that
totals always reconcile with the deals file.
"""

from __future__ import annotations

import polars as pl

from attribution.errors import ModelError
from attribution.journeys import Journeys, conform
from attribution.schema import (
    CREDIT_SCHEMA,
    DETAIL_COLUMNS,
    NO_TOUCH_CHANNEL,
    NO_TOUCH_GROUP,
    SUMMARY_SCHEMA,
    UTC_TIME,
)

WEIGHT_TOLERANCE = 1e-9


def channel_groups(journeys: Journeys) -> pl.LazyFrame:
    """Distinct ``channel -> channel_group`` pairs of the journeys (plus ``(no touch)``)."""
    return pl.concat(
        [
            journeys.touches.select("channel", "channel_group").unique(),
            pl.LazyFrame({"channel": [NO_TOUCH_CHANNEL], "channel_group": [NO_TOUCH_GROUP]}),
        ]
    ).unique(subset="channel", keep="first")


def _split_exact(frame: pl.LazyFrame, total: str, out: str) -> pl.LazyFrame:
    """Split ``total`` (Int64 minor units per journey) over rows by ``weight``, exactly.

    ``frame`` must be ordered by journey, then touch, then channel: the ordinal rank of the
    fractional parts inside each journey (``_j``) then breaks ties by that order, with no
    extra sort.
    """
    raw = pl.col("weight") * pl.col(total).cast(pl.Float64)
    base = raw.floor().cast(pl.Int64)
    residue = pl.col(total) - base.sum().over("_j")
    rank = (raw - raw.floor()).rank("ordinal", descending=True).over("_j")
    return frame.with_columns((base + (rank <= residue).cast(pl.Int64)).alias(out))


def allocate(journeys: Journeys, weights: pl.LazyFrame, model: str) -> pl.LazyFrame:
    """Touch-level credit (:data:`~attribution.schema.CREDIT_SCHEMA`) for one model's weights.

    Only journeys that carry money are credited: deals (won, lost, open) and path-table rows.
    ``pipeline_credit`` splits every deal's amount; ``revenue_credit`` splits won revenue;
    ``conversion_credit`` splits conversions (1 per won deal). The touch's id, time and channel
    group come with the weights when the model carried them (:data:`DETAIL_COLUMNS`), else
    from the journeys.

    Raises
    ------
    ModelError
        If the weights of a journey do not sum to 1 or a weight is negative.
    """
    money = (
        journeys.journeys.filter(pl.col("status") != "none")
        .select("journey_id", "deal_id", "account_id", "status", "amount", "revenue",
                "conversions", "n_touches")
        .with_row_index("_j")
    )
    carried = [c for c in DETAIL_COLUMNS if c in weights.collect_schema().names()]
    weighted = (
        weights.select("journey_id", "touch_index", "channel", "weight", *carried)
        .filter(pl.col("weight") != 0)  # zero-weight rows carry no money
        .join(money.drop("n_touches"), on="journey_id", how="inner", maintain_order="left")
    )
    no_touch = money.filter(pl.col("n_touches") == 0).drop("n_touches").with_columns(
        pl.lit(None, pl.UInt32).alias("touch_index"),
        pl.lit(NO_TOUCH_CHANNEL).alias("channel"),
        pl.lit(1.0).alias("weight"),
        pl.lit(None, pl.String).alias("touchpoint_id"),
        pl.lit(None, UTC_TIME).alias("timestamp"),
        pl.lit(NO_TOUCH_GROUP).alias("channel_group"),
    )
    touched = weighted.collect()
    untouched = no_touch.select(touched.columns).collect()
    _check_weights(pl.concat([touched, untouched]), money.select("_j", "journey_id").collect(),
                   model)
    # rows in the journeys' order (by journey_id for built journeys), by touch, then channel,
    # inside each journey; weights made from the journeys' touches come in that order already.
    # Deals without a touch (one row each) come last.
    order = ["_j", "touch_index", "channel"]
    if not _in_order(touched, order):
        touched = touched.sort(order, nulls_last=True, maintain_order=True)
    rows = pl.concat([touched, untouched.sort("_j")])
    if rows.select(((pl.col("revenue") != 0) & (pl.col("revenue") != pl.col("amount"))).any()).item():
        rows = _split_exact(_split_exact(rows.lazy(), "amount", "pipeline_credit"), "revenue",
                            "revenue_credit").collect()
    else:
        rows = _split_exact(rows.lazy(), "amount", "pipeline_credit").with_columns(
            pl.when(pl.col("revenue") == 0).then(0).otherwise(pl.col("pipeline_credit")).alias(
                "revenue_credit"
            )
        ).collect()
    rows = rows.with_columns(
        (pl.col("weight") * pl.col("conversions")).alias("conversion_credit"),
        pl.lit(model).alias("model"),
    )
    looked_up = [c for c in ("touchpoint_id", "timestamp") if c not in carried]
    if looked_up and rows.get_column("touch_index").null_count() == rows.height:
        rows = rows.with_columns(  # channel-level weights: no touch to look up
            pl.lit(None, CREDIT_SCHEMA[c]).alias(c) for c in looked_up
        )
    elif looked_up:
        details = journeys.touches.select("journey_id", "touch_index", *looked_up).collect()
        rows = rows.join(details, on=["journey_id", "touch_index"], how="left",
                         maintain_order="left")
    if "channel_group" not in carried:
        rows = rows.join(channel_groups(journeys).collect(), on="channel", how="left",
                         maintain_order="left")
    return conform(rows.lazy(), CREDIT_SCHEMA)


def _in_order(rows: pl.DataFrame, order: list[str]) -> bool:
    """Whether ``rows`` are sorted by the ``order`` columns (nulls last), without sorting."""
    later = pl.lit(False)
    for name in reversed(order):  # lexicographic: a column decides unless equal, then the next
        column = pl.col(name)
        previous = column.shift(1)
        greater = (column > previous).fill_null(column.is_null() & previous.is_not_null())
        equal = column.eq_missing(previous)
        later = greater | (equal & later)
    return bool(rows.select((later | (pl.int_range(pl.len()) == 0)).all()).item())


def _check_weights(rows: pl.DataFrame, money: pl.DataFrame, model: str) -> None:
    """Every journey that carries money has weights >= 0 summing to 1 (its nonzero ones in
    ``rows``)."""
    totals = rows.group_by("_j").agg(
        pl.col("journey_id").first(),
        pl.col("weight").sum().alias("total"),
        pl.col("weight").min().alias("lowest"),
    )
    bad = totals.filter(
        ((pl.col("total") - 1.0).abs() > WEIGHT_TOLERANCE)
        | (pl.col("lowest") < 0)
        | pl.col("total").is_nan()
    ).sort("journey_id")
    if bad.height:
        first = bad.row(0, named=True)
        raise ModelError(
            f"model {model!r} returned weights summing to {first['total']!r} "
            f"(lowest {first['lowest']!r}) for journey {first['journey_id']!r}; "
            "weights must be >= 0 and sum to 1 per journey"
        )
    if totals.height < money.height:
        missing = money.join(totals, on="_j", how="anti").sort("journey_id").row(0, named=True)
        raise ModelError(
            f"model {model!r} returned no weight above 0 for journey {missing['journey_id']!r}; "
            "weights must be >= 0 and sum to 1 per journey"
        )


def summarise(credit: pl.LazyFrame | pl.DataFrame, journeys: Journeys) -> pl.DataFrame:
    """Channel summary (:data:`~attribution.schema.SUMMARY_SCHEMA`) of a credit table.

    ``deals_touched`` counts the deals (path rows) on which the channel has at least one touch,
    whatever the model credited; shares are of the model's total revenue and pipeline.
    """
    credit = credit.lazy()
    money = journeys.journeys.filter(pl.col("status") != "none").select("journey_id", "n_touches")
    touched = (
        journeys.touches.select("journey_id", "channel")
        .join(money, on="journey_id", how="semi")  # first: most touches have no deal
        .unique()
        .group_by("channel")
        .agg(pl.len().cast(pl.UInt32).alias("deals_touched"))
    )
    untouched = money.filter(pl.col("n_touches") == 0).select(
        pl.lit(NO_TOUCH_CHANNEL).alias("channel"), pl.len().cast(pl.UInt32).alias("deals_touched")
    )
    touched = pl.concat([touched, untouched])
    models = credit.select("model").unique(maintain_order=True)
    summary = (
        credit.group_by("model", "channel", "channel_group")
        .agg(
            pl.col("pipeline_credit").sum(),
            pl.col("revenue_credit").sum(),
            pl.col("conversion_credit").sum(),
        )
        .join(touched, on="channel", how="left")
        .with_columns(
            _share("pipeline_credit"),
            _share("revenue_credit"),
            pl.col("deals_touched").fill_null(0),
        )
        .filter(
            (pl.col("pipeline_credit") != 0)
            | (pl.col("revenue_credit") != 0)
            | (pl.col("channel") != NO_TOUCH_CHANNEL)
        )
        .join(models.with_row_index("_model_order"), on="model", how="left")
        .sort(["_model_order", "revenue_credit", "pipeline_credit", "channel"],
              descending=[False, True, True, False])
        .drop("_model_order")
    )
    return conform(summary, SUMMARY_SCHEMA).collect()


def _share(column: str) -> pl.Expr:
    total = pl.col(column).sum().over("model")
    name = column.replace("_credit", "_share")
    return pl.when(total != 0).then(pl.col(column) / total).otherwise(0.0).alias(name)
