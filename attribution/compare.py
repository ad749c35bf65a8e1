"""Last-touch next to every other model: who gains and who loses credit.

For each model and channel the comparison holds the model's revenue and pipeline credit, the
revenue share, last-touch's revenue credit and share for the same channel, and the shift:
``revenue_shift`` (model minus last-touch, minor units), ``revenue_shift_pct`` (relative to
last-touch; null where last-touch gave the channel nothing) and ``share_shift`` (share points).

When the summary carries bootstrap intervals (:mod:`attribution.intervals`), the comparison
carries them too (:data:`INTERVAL_EXTRA`): the model's credit and share bounds, last-touch's
share bounds, and ``won_deals_touched`` / ``sufficient``.
"""

from __future__ import annotations

import polars as pl

from attribution.errors import ModelError

BASELINE = "last_touch"

COMPARISON_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "revenue_credit_cents": pl.Int64,
        "pipeline_credit_cents": pl.Int64,
        "revenue_share": pl.Float64,
        "pipeline_share": pl.Float64,
        "last_touch_revenue_credit_cents": pl.Int64,
        "last_touch_revenue_share": pl.Float64,
        "revenue_shift_cents": pl.Int64,
        "revenue_shift_pct": pl.Float64,
        "share_shift": pl.Float64,
    }
)


#: columns a summary with intervals adds to the comparison, in this order
INTERVAL_EXTRA = ("revenue_credit_low_cents", "revenue_credit_high_cents", "revenue_share_low",
                  "revenue_share_high", "last_touch_revenue_share_low",
                  "last_touch_revenue_share_high", "won_deals_touched", "sufficient")


def compare(summary: pl.DataFrame, baseline: str = BASELINE) -> pl.DataFrame:
    """Every model's channel credit beside the baseline model's (last-touch by default).

    Every (model, channel) pair that any model credits appears, with zeros where a model gave
    the channel nothing. Rows are ordered by model (as in ``summary``), then by the shift,
    largest gain first.
    """
    if summary.is_empty():  # no deal to credit: an empty comparison, not a missing model
        probe = pl.DataFrame({c: [None] for c in summary.columns}, schema=summary.schema)
        probe = probe.with_columns(pl.lit(baseline).alias("model"), pl.lit("").alias("channel"))
        return compare(probe, baseline).clear()
    models = summary.select("model").unique(maintain_order=True)
    if baseline not in models.get_column("model").to_list():
        raise ModelError(
            f"the comparison needs the {baseline!r} model in the run; add --model {baseline}"
        )
    channels = summary.select("channel", "channel_group").unique(subset="channel", keep="first")
    grid = models.join(channels, how="cross")
    filled = grid.join(
        summary.select(
            "model", "channel", "revenue_credit_cents", "pipeline_credit_cents", "revenue_share",
            "pipeline_share",
        ),
        on=["model", "channel"],
        how="left",
    ).with_columns(
        pl.col("revenue_credit_cents", "pipeline_credit_cents").fill_null(0),
        pl.col("revenue_share", "pipeline_share").fill_null(0.0),
    )
    base = filled.filter(pl.col("model") == baseline).select(
        "channel",
        pl.col("revenue_credit_cents").alias("last_touch_revenue_credit_cents"),
        pl.col("revenue_share").alias("last_touch_revenue_share"),
    )
    result = (
        filled.join(base, on="channel", how="left")
        .with_columns(
            (pl.col("revenue_credit_cents") - pl.col("last_touch_revenue_credit_cents"))
            .alias("revenue_shift_cents"),
            (pl.col("revenue_share") - pl.col("last_touch_revenue_share")).alias("share_shift"),
        )
        .with_columns(
            pl.when(pl.col("last_touch_revenue_credit_cents") != 0)
            .then(pl.col("revenue_shift_cents") / pl.col("last_touch_revenue_credit_cents"))
            .otherwise(None)
            .alias("revenue_shift_pct")
        )
        .join(models.with_row_index("_order"), on="model")
        .sort(["_order", "revenue_shift_cents", "channel"], descending=[False, True, False])
        .drop("_order")
    )
    result = result.select([pl.col(n).cast(t) for n, t in COMPARISON_SCHEMA.items()])
    if "revenue_share_low" not in summary.columns:
        return result
    bounds = summary.select("model", "channel", "revenue_credit_low_cents",
                            "revenue_credit_high_cents",
                            "revenue_share_low", "revenue_share_high",
                            *[c for c in ("won_deals_touched", "sufficient")
                              if c in summary.columns])
    base_bounds = bounds.filter(pl.col("model") == baseline).select(
        "channel",
        pl.col("revenue_share_low").alias("last_touch_revenue_share_low"),
        pl.col("revenue_share_high").alias("last_touch_revenue_share_high"),
    )
    # a (model, channel) the model did not credit: no credit in any resample either
    extra = (result.join(bounds, on=["model", "channel"], how="left", maintain_order="left")
             .join(base_bounds, on="channel", how="left", maintain_order="left")
             .with_columns(pl.col("revenue_credit_low_cents", "revenue_credit_high_cents",
                                  "revenue_share_low", "revenue_share_high",
                                  "last_touch_revenue_share_low",
                                  "last_touch_revenue_share_high").fill_null(0)))
    if "sufficient" in extra.columns:
        # the won deals a channel touched do not depend on the model: a channel a model gave
        # nothing still touched them (the last-touch side of the comparison lists it)
        touched = bounds.group_by("channel").agg(
            pl.col("won_deals_touched").max().alias("_touched"))
        extra = (extra.join(touched, on="channel", how="left", maintain_order="left")
                 .with_columns(pl.coalesce("won_deals_touched", "_touched", pl.lit(0))
                               .alias("won_deals_touched"),
                               pl.col("sufficient").fill_null(False))
                 .drop("_touched"))
    return extra.select(*COMPARISON_SCHEMA, *[c for c in INTERVAL_EXTRA if c in extra.columns])
