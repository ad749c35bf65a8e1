"""Measured channel effects (holdout and lift experiments) as constraints on a fitted model.

Touches alone cannot tell a channel's effect from the intent of the accounts that see it:
when engaged accounts see more events, review sites and direct visits *and* buy more, the
``incremental`` model (which adjusts a channel only for the channels before it) reads their
intent as the channel's effect. An experiment measures exactly that effect, so
:func:`calibrate_scores` makes the fitted effects agree with it.

How, and why this way
---------------------
The incremental model scores channel ``c`` in a channel set ``x`` by
``f_k(x) - f_k(x without c)``: expected revenue, on the revenue scale an experiment measures.
``fraction_c(x) = score / f_k(x)`` is the share of a journey's expected revenue that would be
gone without ``c``, so the model's own estimate of what an experiment on ``c`` over a period
should find is

    estimate = sum over the experiment's deals of  value(deal) * fraction_c(x_deal)

(``value``: won revenue of deals closed in the period, or the amount of deals created in it,
as the experiment's ``metric`` says). Channel ``c``'s scores are multiplied by
``measured / estimate`` (several experiments on one channel: the summed lifts over the summed
estimates; a negative lift: 0), after which the model's implied lift equals the measured one
and every journey's credit is split by the calibrated scores.

Channels without an experiment are scaled by the tested channels' typical factor (the
geometric mean of their factors, each clipped to [0.05, 20]): the bias that unobserved intent
puts into the scores is a property of the accounts, shared by every channel they see, so the
tested channels' correction is the best estimate of the untested ones'. Calibrating only the
tested channels would move credit from them onto untested channels that are just as
inflated (in the evaluation's ``unobserved_intent`` world that made ``incremental`` worse).

A post-fit calibration of each experimented channel's effect scale, not a penalised re-fit
that shrinks the regression coefficients toward the measurement: the measurement is a revenue
total over a period, and the coefficients sit on the log-odds and log-amount scales of nested
models whose effect on that total also depends on every other channel (there is no
coefficient to pull toward a number in dollars). The score is the one quantity the model and
the experiment share units on. And the measurement gets all the weight, not a precision-weighted
share of it: the observational estimate's error here is a *bias* (unobserved intent), which
does not shrink with the number of journeys, so no sample size earns it weight against a
randomised test. An experiment restricted to a segment is not a constraint here (the journeys
carry no segment); ``attribution calibrate`` still scores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import polars as pl

from attribution.channels import channel_key
from attribution.journeys import Journeys


class ChannelPrior(NamedTuple):
    """One experiment's measured effect, as a model parameter (plain values, so a run's record
    can hold it): ``start`` and ``end`` are ISO dates (inclusive), ``lift`` minor units."""

    channel: str
    start: str
    end: str
    metric: str
    lift: int


def priors_of(experiments: pl.DataFrame) -> tuple[ChannelPrior, ...]:
    """The experiments of :data:`attribution.experiments.EXPERIMENT_SCHEMA` that constrain a
    model (those over every deal: no segment), in file order."""
    rows = experiments.filter(pl.col("segment").is_null())
    return tuple(
        ChannelPrior(r["channel"], r["start"].isoformat(), r["end"].isoformat(), r["metric"],
                     int(r["lift"]))
        for r in rows.iter_rows(named=True)
    )


def calibrate_scores(
    scores: np.ndarray,
    expected: np.ndarray,
    patterns: pl.DataFrame,
    journeys: Journeys,
    channels: Sequence[str],
    priors: Sequence[ChannelPrior],
) -> np.ndarray:
    """``scores`` (patterns x channels) with each experimented channel's column scaled so the
    model's implied lift equals the measured one (see the module docstring).

    ``expected`` holds ``f_k(x)`` of each pattern under channel ``k``'s nested model;
    ``patterns`` the fit's distinct channel sets (``journey_ids`` of each, in row order).
    Channels the fit does not know, and experiments whose deals the model gives no effect,
    leave the scores as they are. The journeys are read only for :func:`experiment_values`
    summed per pattern: :func:`calibrate` on those sums is the same calibration.
    """
    if not priors:
        return scores
    members = (
        patterns.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_pattern"), "journey_ids")
        .explode("journey_ids")
        .rename({"journey_ids": "journey_id"})
    )
    deals = (
        journeys.journeys.select("journey_id", *experiment_values(priors))
        .collect()
        .join(members, on="journey_id", how="inner")
    )
    values = pattern_values(deals, "_pattern", patterns.height, len(priors))
    return calibrate(scores, expected, values, channels, priors)


def experiment_values(priors: Sequence[ChannelPrior]) -> list[pl.Expr]:
    """Per journey (a row of :data:`~attribution.schema.JOURNEY_SCHEMA`) and prior ``i``, the
    columns ``_prior{i}``: the deal's value that experiment counts (the amount of a deal
    created in its period for ``pipeline``, the revenue of a deal won in it otherwise; 0 for a
    deal it does not count), and ``_prior{i}_missing``: 1 where it counts the deal but the
    value is missing. Integers, so their sums over any grouping of the journeys are exact
    (what :meth:`~attribution.models.incremental.IncrementalModel.tally` adds up)."""
    created = pl.col("created_at").dt.date()
    closed = pl.col("closed_at").dt.date()
    columns = []
    for i, prior in enumerate(priors):
        start, end = pl.lit(prior.start).str.to_date(), pl.lit(prior.end).str.to_date()
        if prior.metric == "pipeline":
            counted = (pl.col("status").is_in(["won", "lost", "open"])
                       & created.is_between(start, end))
            value = pl.col("amount_cents")
        else:
            counted = (pl.col("status") == "won") & closed.is_between(start, end)
            value = pl.col("revenue_cents")
        counted = counted.fill_null(False)
        columns += [
            pl.when(counted).then(value.fill_null(0)).otherwise(0).cast(pl.Int64)
            .alias(f"_prior{i}"),
            (counted & value.is_null()).cast(pl.Int64).alias(f"_prior{i}_missing"),
        ]
    return columns


def pattern_values(values: pl.DataFrame, pattern: str, n_patterns: int,
                   n_priors: int) -> np.ndarray:
    """(patterns x priors) sums of :func:`experiment_values` columns of ``values`` grouped by
    the 0-based ``pattern`` column, as floats; NaN where a counted deal's value is missing (the
    calibration then leaves that experiment's channel alone, as an estimate of NaN does)."""
    sums = np.zeros((n_patterns, n_priors))
    if not n_priors:
        return sums
    summed = values.group_by(pattern).agg(
        pl.col(*[f"_prior{i}" for i in range(n_priors)],
               *[f"_prior{i}_missing" for i in range(n_priors)]).sum())
    rows = summed.get_column(pattern).to_numpy().astype(np.int64)
    for i in range(n_priors):
        found = summed.get_column(f"_prior{i}").to_numpy().astype(np.float64)
        missing = summed.get_column(f"_prior{i}_missing").to_numpy() > 0
        sums[rows, i] = np.where(missing, np.nan, found)
    return sums


def calibrate(
    scores: np.ndarray,
    expected: np.ndarray,
    values: np.ndarray,
    channels: Sequence[str],
    priors: Sequence[ChannelPrior],
) -> np.ndarray:
    """:func:`calibrate_scores` from ``values`` (patterns x priors: the value each experiment
    counts, summed over each pattern's deals, :func:`pattern_values`). A pattern's deals share
    its fraction, so an experiment's estimate is the sum over patterns of value times
    fraction, in pattern order: the same bits however the journeys were grouped."""
    if not priors:
        return scores
    calibrated = scores.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(expected > 0, scores / expected, 0.0).clip(0.0, 1.0)
    # a prior names its channel as the user spelled it: matched by channel_key
    rank = {channel_key(c): i for i, c in enumerate(channels)}
    totals: dict[int, list[float]] = {}
    for i, prior in enumerate(priors):
        k = rank.get(channel_key(prior.channel), -1)
        if k < 0:
            continue
        counted = values[:, i] != 0
        estimate = float((values[counted, i] * fraction[counted, k]).sum())
        measured, estimated = totals.setdefault(k, [0.0, 0.0])
        totals[k] = [measured + prior.lift, estimated + estimate]
    for k, (measured, estimated) in totals.items():
        if estimated > 0:
            calibrated[:, k] = scores[:, k] * max(measured, 0.0) / estimated
    # the channels without an experiment: the tested channels' typical (geometric mean)
    # correction, each clipped to _POOL_RANGE so one channel with no effect (factor 0) does
    # not wipe out every untested channel's scores and with them their order
    factors = [max(m, 0.0) / e for m, e in totals.values() if e > 0]
    if factors:
        pooled = float(np.exp(np.mean(np.log(np.clip(factors, *_POOL_RANGE)))))
        for k in range(len(channels)):
            if k not in totals:
                calibrated[:, k] = scores[:, k] * pooled
    return calibrated

#: the range each tested channel's factor is clipped to before it is pooled for the untested
_POOL_RANGE = (0.05, 20.0)


__all__ = ["ChannelPrior", "calibrate", "calibrate_scores", "experiment_values", "pattern_values",
           "priors_of"]
