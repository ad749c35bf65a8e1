"""Models checked against the user's own experiments: which model do they favour?

A holdout or lift test measures what a channel really added over a period, with an interval
(:mod:`attribution.experiments`). For every experiment and every model of a run,
:func:`calibrate` sets the model's credit for that channel and period beside it:

* ``revenue`` experiments: the model's ``revenue_credit`` to the channel from won deals
  *closed* in [start, end] (both days inclusive, UTC dates);
* ``pipeline`` experiments: its ``pipeline_credit`` from deals *created* in [start, end];
* an experiment with a ``segment``: only deals of that segment (the deals export's
  ``segment`` column).

Each pair gets ``model_credit``, ``inside`` (``lower <= model_credit <= upper``),
``credit_error`` (``model_credit - lift``, minor units) and ``relative_error``
(``|credit_error| / |lift|``; null when the lift is 0). Each model is
scored by its mean relative error over the experiments, then by how many experiments its
credit falls inside, then by its mean absolute error (which alone decides when every lift is
0), then by name; the first is the model the experiments favour. Credit is only read here,
never changed: money stays exact.

>>> import polars as pl  # doctest: +SKIP
>>> calibration = calibrate(result, experiments.rows)  # doctest: +SKIP
>>> calibration.favoured  # doctest: +SKIP
'incremental'
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from attribution.errors import ConfigError
from attribution.experiments import EXPERIMENT_SCHEMA
from attribution.pipeline import RunResult

#: one row per (experiment, model); money in minor units
CALIBRATION_SCHEMA = pl.Schema(
    {
        "experiment": pl.Int64,  # the experiment's data row in its file
        "channel": pl.String,
        "start": pl.Date,
        "end": pl.Date,
        "metric": pl.String,
        "segment": pl.String,
        "model": pl.String,
        "model_credit_cents": pl.Int64,  # the model's credit to the channel in the period
        "lift_cents": pl.Int64,  # measured
        "lift_lower_cents": pl.Int64,
        "lift_upper_cents": pl.Int64,
        "inside": pl.Boolean,
        "credit_error_cents": pl.Int64,  # model_credit - lift
        "relative_error": pl.Float64,  # |credit_error| / |lift|; null when the lift is 0
    }
)

#: fewer experiments than this make a weak verdict (:attr:`Calibration.caution`)
FEW_EXPERIMENTS = 3
#: a runner-up closer than this in mean relative error ties with the favourite
CLOSE_ERROR = 0.02

#: one row per model, the favoured first
SCORE_SCHEMA = pl.Schema(
    {
        "rank": pl.UInt32,
        "model": pl.String,
        "experiments": pl.UInt32,
        "inside": pl.UInt32,  # experiments whose interval holds the model's credit
        "mean_relative_error": pl.Float64,  # over experiments with a non-zero lift
        "mean_absolute_error_cents": pl.Int64,  # minor units, rounded half to even
    }
)


@dataclass(frozen=True)
class Calibration:
    """Every model's credit beside every experiment, the models' scores and the favourite.

    Attributes
    ----------
    table
        :data:`CALIBRATION_SCHEMA`, by experiment then in the run's model order.
    scores
        :data:`SCORE_SCHEMA`, best first.
    favoured
        The model the experiments favour (the first of ``scores``).
    """

    table: pl.DataFrame
    scores: pl.DataFrame
    favoured: str

    @property
    def caution(self) -> str | None:
        """Why the verdict is weak, or None: fewer than :data:`FEW_EXPERIMENTS` experiments,
        or a runner-up within :data:`CLOSE_ERROR` of the favourite's mean relative error
        (the small-sample rule of the rest of the report, for experiments)."""
        experiments = self.table.get_column("experiment").n_unique()
        if experiments < FEW_EXPERIMENTS:
            return (f"based on {experiments} experiment{'s' if experiments != 1 else ''}: a "
                    f"weak signal; run at least {FEW_EXPERIMENTS} before acting on it")
        errors = self.scores.get_column("mean_relative_error").drop_nulls()
        if errors.len() >= 2 and errors[1] - errors[0] < CLOSE_ERROR:
            runner_up = self.scores.get_column("model")[1]
            return (f"{runner_up} is within {CLOSE_ERROR:.0%} of its mean relative error: "
                    "too close to choose between them by these experiments")
        return None


def credit_in_periods(result: RunResult, experiments: pl.DataFrame,
                      segments: pl.DataFrame | None = None) -> pl.DataFrame:
    """``experiment, model, credit``: each model's credit to each experiment's channel over
    its deals (see the module docstring), 0 where it gave none. ``segments`` holds
    ``deal_id, segment`` (needed only when an experiment names a segment)."""
    if result.models and result.credit.is_empty() and not result.summary.is_empty():
        raise ConfigError("this run let its credit go (keep_credit=False); calibrating reads "
                          "it: run with keep_credit=True")
    deals = result.journeys.journeys.select(
        "journey_id", "deal_id",
        pl.col("created_at").dt.date().alias("_created"),
        pl.col("closed_at").dt.date().alias("_closed"),
    ).collect()
    if segments is not None:
        deals = deals.join(segments.select("deal_id", "segment").unique("deal_id", keep="first"),
                           on="deal_id", how="left")
    else:
        deals = deals.with_columns(pl.lit(None, pl.String).alias("segment"))
    wanted = experiments.select("experiment", "channel", "start", "end", "metric",
                                pl.col("segment").alias("_segment"))
    credit = (
        result.credit.lazy()
        .select("model", "journey_id", "status", "channel", "revenue_credit_cents",
                "pipeline_credit_cents")
        .join(wanted.lazy(), on="channel", how="inner")
        .join(deals.lazy(), on="journey_id", how="left")
        .filter(pl.col("_segment").is_null() | (pl.col("segment") == pl.col("_segment")))
        .filter(
            pl.when(pl.col("metric") == "pipeline")
            .then(pl.col("status").is_in(["won", "lost", "open"])
                  & pl.col("_created").is_between(pl.col("start"), pl.col("end")))
            .otherwise((pl.col("status") == "won")
                       & pl.col("_closed").is_between(pl.col("start"), pl.col("end")))
        )
        .group_by("experiment", "model")
        .agg(pl.when(pl.col("metric") == "pipeline").then(pl.col("pipeline_credit_cents"))
             .otherwise(pl.col("revenue_credit_cents")).sum().alias("credit"))
        .collect()
    )
    names = pl.DataFrame({"model": [m.name for m in result.models]}, schema={"model": pl.String})
    return (
        experiments.select("experiment").join(names, how="cross")
        .join(credit, on=["experiment", "model"], how="left")
        .with_columns(pl.col("credit").fill_null(0).cast(pl.Int64))
    )


def calibrate(result: RunResult, experiments: pl.DataFrame,
              segments: pl.DataFrame | None = None) -> Calibration:
    """Score every model of ``result`` (a run that kept its credit) against ``experiments``
    (:data:`~attribution.experiments.EXPERIMENT_SCHEMA` rows); see the module docstring."""
    if experiments.is_empty():
        raise ConfigError("no experiments to calibrate against: every row was rejected or "
                          "the file is empty")
    if not result.models:
        raise ConfigError("no models to calibrate: the run has none")
    experiments = experiments.cast(dict(EXPERIMENT_SCHEMA))  # type: ignore[arg-type]
    credit = credit_in_periods(result, experiments, segments)
    order = {m.name: i for i, m in enumerate(result.models)}
    table = (
        credit.join(experiments, on="experiment", how="left")
        .rename({"credit": "model_credit_cents", "lift": "lift_cents",  # money: keep name
                 "lower": "lift_lower_cents", "upper": "lift_upper_cents"})
        .with_columns(
            ((pl.col("model_credit_cents") >= pl.col("lift_lower_cents"))
             & (pl.col("model_credit_cents") <= pl.col("lift_upper_cents"))).alias("inside"),
            (pl.col("model_credit_cents") - pl.col("lift_cents")).alias("credit_error_cents"),
        )
        .with_columns(
            pl.when(pl.col("lift_cents") != 0)
            .then(pl.col("credit_error_cents").abs().cast(pl.Float64)
                  / pl.col("lift_cents").abs().cast(pl.Float64))
            .otherwise(None)
            .alias("relative_error"),
            pl.col("model").replace_strict(order, return_dtype=pl.Int64).alias("_order"),
        )
        .sort("experiment", "_order")
        .select(list(CALIBRATION_SCHEMA))
        .cast(dict(CALIBRATION_SCHEMA))  # type: ignore[arg-type]
    )
    scores = (
        table.group_by("model")
        .agg(
            pl.len().cast(pl.UInt32).alias("experiments"),
            pl.col("inside").sum().cast(pl.UInt32),
            pl.col("relative_error").mean().alias("mean_relative_error"),
            # a mean of cents, rounded half to even once (the sum is an exact integer)
            (pl.col("credit_error_cents").abs().sum().cast(pl.Float64) / pl.len())
            .round(0).cast(pl.Int64).alias("mean_absolute_error_cents"),
        )
        # error first: "inside" is pass/fail at an interval's edge (with a few experiments it
        # ties most models, and a model just inside a wide interval would outrank one just
        # outside a narrow one however far off it is elsewhere); the relative error uses every
        # experiment's whole distance. The intervals break ties.
        .sort(["mean_relative_error", "inside", "mean_absolute_error_cents", "model"],
              descending=[False, True, False, False], nulls_last=True)
        .with_row_index("rank", offset=1)
        .select(list(SCORE_SCHEMA))
        .cast(dict(SCORE_SCHEMA))  # type: ignore[arg-type]
    )
    return Calibration(table, scores, str(scores.get_column("model")[0]))


__all__ = ["CALIBRATION_SCHEMA", "SCORE_SCHEMA", "Calibration", "calibrate", "credit_in_periods"]
