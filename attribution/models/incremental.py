"""Time-ordered incremental attribution: each channel's *total* effect on expected revenue.

The textbook models read correlations in paths. When a brand channel (podcast, newsletter,
community) makes people search for the company later, the later paid click sits next to the
conversion and takes the credit: last-touch gives it all, and a regression or a Markov chain
that conditions on every channel at once sees that the podcast adds nothing *once the paid
click is known*. The paid click is a mediator of the podcast's effect, and conditioning on a
mediator removes exactly the effect we want to credit (Pearl, *Causality*, 2nd ed. 2009,
§3.3: the back-door criterion admits no descendant of the treatment; Robins 1986, the
g-computation formula for time-ordered treatments).

This model respects time order instead:

1. **Order.** Channels are ordered by where their first touch typically falls in a journey
   (the mean relative position of the channel's first touch among the journey's distinct
   channels; ties by name). A channel can be caused only by channels before it.
2. **Nested outcome models.** For the ``k``-th channel in that order, expected revenue is
   modelled from the first ``k`` channels only::

       f_k(x_1..x_k) = P(won | x_1..x_k) * E[amount | won, x_1..x_k]
       P(won | x)    = logistic(a_k + b_k . x)           (binomial, ridge ``l2``)
       E[amount | x] = exp(g_k + h_k . x)                (log link, quasi-Poisson, ridge ``l2``)

   fitted on every observed journey: won deals (conversions), lost deals and touched accounts
   without a deal (nulls); open deals are pipeline and not fitted. A deal's features are the
   channels it touched *up to its creation* (what comes after cannot have caused the deal),
   a deal-less account's are all its channels. Later channels are left out of ``f_k`` on
   purpose: they are marginalised, so the touches a channel causes count as its effect.
3. **Per-journey credit.** In journey ``j``, channel ``c`` (the ``k``-th) scores its
   incremental effect in context, ``f_k(x_j) - f_k(x_j with x_c = 0)`` (earlier channels as
   they were, later ones marginalised), clipped at 0. Scores are normalised over the
   journey's channels and each channel's share is split evenly over its touches up to the
   deal's creation. A journey whose channels all score 0 (or that has nothing to fit) is split
   evenly over those touches; a journey with no touch before creation, over all its touches.
   Weights are therefore >= 0 and sum to 1 per journey, and :mod:`attribution.credit` turns
   them into exact cents.

This is the "causally motivated" programme of Dalessandro, Perlich, Stitelman & Provost
(2012, ADKDD) — credit by a channel's causal effect on conversion, not its correlation —
with the effect estimated by sequential (g-computation style) regressions rather than a
model that conditions on every channel at once (Shao & Li 2011, KDD, fit the latter).

Assumptions, and where it fails
-------------------------------
* The typical first-touch order is the causal order, and there is no unmeasured
  confounding: conditional on the channels before it, being exposed to a channel is as good
  as random. Accounts that are simply more engaged see more channels *and* buy more; an
  early channel then absorbs that engagement (it is adjusted for nothing) and is
  over-credited. ``attribution.evaluate`` includes a world built for exactly that.
* Effects add on the log-odds and log-amount scales within each nested model.
* Touches after a deal's creation get no credit unless the deal has no earlier touch.

>>> IncrementalModel().params()
{'l2': 1.0, 'value': 'revenue', 'before_creation': True, 'priors': ()}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys
from attribution.models.base import AttributionModel, Fit, FitInput, journey_observations
from attribution.models.priors import ChannelPrior, calibrate_scores
from attribution.schema import DETAIL_COLUMNS, UNMAPPED_CHANNEL

VALUES = ("revenue", "conversions")

#: the fitted channel effects, one row per channel in causal (time) order
EFFECT_SCHEMA = pl.Schema(
    {
        "channel": pl.String,
        "order": pl.UInt32,  # 0-based position in the fitted time order
        "position": pl.Float64,  # mean relative position of the channel's first touch
        "conversion_effect": pl.Float64,  # log-odds coefficient in its nested model
        "value_effect": pl.Float64,  # log-amount coefficient in its nested model
        "journeys": pl.UInt32,  # observed journeys with the channel (before creation)
        "credit_score": pl.Float64,  # summed per-journey scores over converting journeys
    }
)

_NEWTON_STEPS = 50
_MAX_CHANNELS = 62  # channel sets are Int64 bit masks


@dataclass(frozen=True)
class IncrementalFit(Fit):
    """The fitted nested models: each channel's score in each channel set it was seen in.

    Attributes
    ----------
    channels
        The channels in the fitted time order (bit ``i`` of a set's mask is ``channels[i]``).
    before_creation
        As on the model: which touches are a journey's features.
    """

    channels: tuple[str, ...]
    before_creation: bool
    _effects: pl.DataFrame
    #: ``mask, channel_key, score``: a channel's score in each fitted channel set
    _key_scores: pl.DataFrame
    #: the journeys fitted on and their weights (reused when those same journeys are scored)
    _source: Journeys | None = field(default=None, compare=False, repr=False)
    _source_weights: pl.LazyFrame | None = field(default=None, compare=False, repr=False)

    transient: ClassVar[tuple[str, ...]] = ("_source", "_source_weights")

    def effects(self) -> pl.DataFrame:
        """Channel effects with :data:`EFFECT_SCHEMA`, in the fitted time order."""
        return self._effects

    def tables(self) -> dict[str, pl.DataFrame]:
        """``effects``: each channel's fitted effects (:data:`EFFECT_SCHEMA`)."""
        return {"effects": self.effects()}

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        """Weights with :data:`~attribution.schema.WEIGHT_SCHEMA` of the journeys that carry
        money: each journey's feature channels by their score in its channel set. A set the fit
        never saw scores nothing, so its journey's features share evenly."""
        if journeys is self._source and self._source_weights is not None:
            return self._source_weights
        touches = _feature_touches(journeys, self.before_creation)
        first = _first_touches(touches)
        rank = {c: i for i, c in enumerate(self.channels)}
        return _weights(_money_touches(touches, journeys), _masks(first, rank), self._key_scores)


@dataclass(frozen=True)
class IncrementalModel(AttributionModel):
    """Time-ordered incremental-effect attribution (see the module docstring).

    Parameters
    ----------
    l2
        Ridge penalty on every channel coefficient (not the intercepts), in units of
        observed journeys; keeps rare channels from getting extreme effects.
    value
        ``"revenue"``: score channels by their effect on expected revenue (conversion
        probability times expected amount); ``"conversions"``: on conversion probability only.
    before_creation
        Use only the touches up to each deal's creation as its features and credit them;
        ``False`` uses every touch of the journey.
    priors
        Measured channel effects (experiments, :mod:`attribution.models.priors`) that the
        fitted effects are calibrated to; set by ``--experiments``, empty by default.
    """

    name: ClassVar[str] = "incremental"
    label: ClassVar[str] = "Incremental (time-ordered)"
    summary: ClassVar[str] = (
        "each channel's total effect on expected revenue, adjusting only for earlier channels"
    )
    fit_input: ClassVar[FitInput | None] = FitInput.JOURNEYS
    fit_type: ClassVar[type[Fit] | None] = IncrementalFit

    l2: float = 1.0
    value: str = "revenue"
    before_creation: bool = True
    priors: tuple[ChannelPrior, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "l2", float(self.l2))
        object.__setattr__(self, "priors", tuple(ChannelPrior(*p) for p in self.priors))
        if not self.l2 >= 0:
            raise ConfigError(f"incremental: l2 must be >= 0, not {self.l2}")
        if self.value not in VALUES:
            raise ConfigError(
                f"incremental: value {self.value!r} is not one of: {', '.join(VALUES)}"
            )

    def fit(self, journeys: Journeys) -> IncrementalFit:
        """Order the channels, fit the nested models, score every journey's channels."""
        self.check(journeys)
        touches = _feature_touches(journeys, self.before_creation)
        first = _first_touches(touches)
        order, position = _channel_order(first)
        channels = tuple(order)
        if len(channels) > _MAX_CHANNELS:
            raise ModelError(
                f"model 'incremental' handles up to {_MAX_CHANNELS} channels; these journeys have "
                f"{len(channels)}: map them to fewer channels with --channel-rules"
            )
        rank = {c: i for i, c in enumerate(channels)}
        patterns = _patterns(first, journeys, rank)
        n_channels = len(channels)
        matrix = _bits(patterns["mask"].to_numpy(), n_channels)
        wins = patterns["conversions"].to_numpy().astype(float)
        trials = patterns["trials"].to_numpy().astype(float)
        revenue = patterns["revenue"].to_numpy().astype(float)
        scale = revenue.sum() / wins.sum() if wins.sum() > 0 and revenue.sum() > 0 else 1.0

        scores = np.zeros((patterns.height, n_channels))
        fitted_values = np.zeros((patterns.height, n_channels))  # f_k(x), for the priors
        conversion_effect = np.full(n_channels, np.nan)
        value_effect = np.full(n_channels, np.nan)
        fitted = trials.sum() > 0 and wins.sum() > 0
        for k in range(n_channels if fitted else 0):
            design = matrix[:, : k + 1]
            beta = _fit_logistic(design, wins, trials, self.l2)
            conversion_effect[k] = beta[-1]
            gamma = np.zeros(k + 2)
            if self.value == "revenue":
                gamma = _fit_log_value(design, revenue / scale, wins, self.l2)
                value_effect[k] = gamma[-1]
            without = design.copy()
            without[:, k] = 0.0
            expected = _expected(design, beta, gamma)
            baseline = _expected(without, beta, gamma)
            scores[:, k] = np.where(matrix[:, k] > 0, np.maximum(expected - baseline, 0.0), 0.0)
            fitted_values[:, k] = expected
        # experiments calibrate the experimented channels' effects (attribution.models.priors)
        scores = calibrate_scores(scores, fitted_values, patterns, journeys, channels,
                                  self.priors)

        key_scores = pl.DataFrame(
            {
                "mask": np.repeat(patterns["mask"].to_numpy(), n_channels),
                "channel_key": list(channels) * patterns.height,
                "score": scores.ravel(),
            },
            schema={"mask": pl.Int64, "channel_key": pl.String, "score": pl.Float64},
        )
        converting = wins > 0
        credit_score = (scores[converting] * wins[converting, None]).sum(axis=0)
        present = (matrix > 0) & (trials[:, None] > 0)
        effects = pl.DataFrame(
            {
                "channel": list(channels),
                "order": list(range(n_channels)),
                "position": [position[c] for c in channels],
                "conversion_effect": conversion_effect.tolist(),
                "value_effect": value_effect.tolist(),
                "journeys": (present * trials[:, None]).sum(axis=0).astype(np.int64).tolist(),
                "credit_score": credit_score.tolist(),
            },
            schema=EFFECT_SCHEMA,
        )
        masks = patterns.select("journey_ids", "mask").explode("journey_ids").rename(
            {"journey_ids": "journey_id"})
        weights = _weights(_money_touches(touches, journeys), masks, key_scores)
        return IncrementalFit(channels, self.before_creation, effects, key_scores,
                              _source=journeys, _source_weights=weights)


def _first_touches(touches: pl.LazyFrame) -> pl.DataFrame:
    """``journey_id, channel_key, first``: each journey's first feature touch per channel."""
    return (
        touches.filter(pl.col("feature"))
        .group_by("journey_id", "channel_key")
        .agg(pl.col("touch_index").min().alias("first"))
        .collect()
    )


def _money_touches(touches: pl.LazyFrame, journeys: Journeys) -> pl.LazyFrame:
    """The touches of journeys that carry money: deal-less accounts take part in the fit but
    have nothing to credit, so they get no weight rows."""
    money = journeys.journeys.filter(pl.col("status") != "none").select("journey_id")
    return touches.join(money, on="journey_id", how="semi", maintain_order="left")


def _masks(first: pl.DataFrame, rank: dict[str, int]) -> pl.DataFrame:
    """``journey_id, mask``: each journey's fitted channels as a bit mask (channels the fit
    does not know set no bit)."""
    bits = pl.DataFrame(
        {"channel_key": list(rank), "_bit": [1 << i for i in rank.values()]},
        schema={"channel_key": pl.String, "_bit": pl.Int64},
    )
    return (
        first.join(bits, on="channel_key", how="inner")
        .group_by("journey_id")
        .agg(pl.col("_bit").sum().alias("mask"))
    )


def _feature_touches(journeys: Journeys, before_creation: bool) -> pl.LazyFrame:
    """Touches with ``channel_key`` and ``feature``: may the touch have caused the deal?"""
    created = journeys.journeys.select("journey_id", "created_at")
    feature = pl.lit(True)
    if before_creation:
        feature = (
            pl.col("created_at").is_null()
            | pl.col("timestamp").is_null()
            | (pl.col("timestamp") <= pl.col("created_at"))
        )
    names = journeys.touches.collect_schema().names()
    details = [c for c in ("touchpoint_id", "channel_group") if c in names]
    return (
        journeys.touches.select("journey_id", "touch_index", "channel", "timestamp", *details)
        .join(created, on="journey_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("channel").fill_null(UNMAPPED_CHANNEL).alias("channel_key"),
            feature.alias("feature"),
        )
        .drop("created_at")
    )


def _channel_order(first: pl.DataFrame) -> tuple[list[str], dict[str, float]]:
    """Channels by the mean relative position of their first touch (ties by name).

    The mean is summed in a fixed row order (by channel, then journey), not by a parallel
    group-by whose float sums can differ in their last bits from run to run: the order and
    the positions written to the effects table must be the same bytes every time.
    """
    ranked = (
        first.with_columns(
            (pl.col("first").rank("ordinal").over("journey_id") - 1).alias("rank"),
            pl.len().over("journey_id").alias("width"),
        )
        .filter(pl.col("width") > 1)
        .select("channel_key", "journey_id",
                (pl.col("rank") / (pl.col("width") - 1)).alias("relative"))
        .sort("channel_key", "journey_id")
    )
    channels = sorted(set(first["channel_key"].to_list()))
    code = {c: i for i, c in enumerate(channels)}
    codes = np.array([code[c] for c in ranked["channel_key"].to_list()], dtype=np.int64)
    sums = np.bincount(codes, weights=ranked["relative"].to_numpy(), minlength=len(channels))
    counts = np.bincount(codes, minlength=len(channels))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.5)
    position = {c: float(means[code[c]]) for c in channels}
    order = sorted(channels, key=lambda c: (position[c], c))
    return order, position


def _patterns(first: pl.DataFrame, journeys: Journeys, rank: dict[str, int]) -> pl.DataFrame:
    """Distinct channel sets (bit masks in time order) with summed observations."""
    # eager on purpose: these frames are small (one row per journey or channel set), and a
    # lazy left join against an empty frame panics in polars 2.1's streaming engine
    touched = journeys.journeys.filter(pl.col("n_touches") > 0).select("journey_id").collect()
    observed = (
        journey_observations(journeys)
        .collect()
        .join(touched, on="journey_id", how="semi", maintain_order="left")
        .select(
            "journey_id",
            pl.col("conversions").cast(pl.Float64),
            pl.col("trials").cast(pl.Float64),
            pl.col("revenue").cast(pl.Float64),
        )
    )
    masks = _masks(first, rank)
    return (
        observed.join(masks, on="journey_id", how="left")
        .with_columns(pl.col("mask").fill_null(0))
        .group_by("mask")
        .agg(
            pl.col("journey_id").alias("journey_ids"),
            pl.col("conversions", "trials", "revenue").sum(),
        )
        .sort("mask")
    )


def _bits(masks: np.ndarray, width: int) -> np.ndarray:
    """(patterns, width) 0/1 matrix of bit masks."""
    return ((masks[:, None] >> np.arange(width)) & 1).astype(float)


def _design(x: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((x.shape[0], 1)), x])


def _newton(
    design: np.ndarray,
    gradient_hessian: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    l2: float,
) -> np.ndarray:
    """Penalised Newton steps from 0 (no penalty on the intercept, column 0)."""
    coef = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(_NEWTON_STEPS):
        gradient, hessian = gradient_hessian(coef)
        gradient = gradient - penalty * coef
        hessian = hessian + np.diag(penalty) + 1e-9 * np.eye(len(coef))
        step = np.linalg.solve(hessian, gradient)
        coef = coef + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return coef


def _fit_logistic(x: np.ndarray, wins: np.ndarray, trials: np.ndarray, l2: float) -> np.ndarray:
    """Ridge binomial regression of ``wins`` out of ``trials`` on ``x``."""
    from scipy.special import expit  # here, not at the top: importing it slows every start-up

    design = _design(x)
    keep = trials > 0
    design, wins, trials = design[keep], wins[keep], trials[keep]
    rate = wins.sum() / trials.sum()

    def gradient_hessian(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = expit(design @ coef)
        return design.T @ (wins - trials * p), (design.T * (trials * p * (1 - p))) @ design

    start = np.log(rate / (1 - rate)) if 0 < rate < 1 else 0.0
    coef = _newton(design, gradient_hessian, l2)
    if not np.all(np.isfinite(coef)):  # pragma: no cover - separable data without a penalty
        coef = np.zeros(design.shape[1])
        coef[0] = start
    return coef


def _fit_log_value(x: np.ndarray, value: np.ndarray, wins: np.ndarray, l2: float) -> np.ndarray:
    """Ridge log-link regression of the mean amount per conversion (quasi-Poisson)."""
    design = _design(x)
    keep = wins > 0
    design, value, wins = design[keep], value[keep], wins[keep]
    if not keep.any():
        return np.zeros(design.shape[1])

    def gradient_hessian(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = wins * np.exp(np.clip(design @ coef, -30, 30))
        return design.T @ (value - mean), (design.T * mean) @ design

    coef = _newton(design, gradient_hessian, l2)
    return coef if np.all(np.isfinite(coef)) else np.zeros(design.shape[1])


def _expected(x: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # (see _fit_logistic)

    design = _design(x)
    return expit(design @ beta) * np.exp(np.clip(design @ gamma, -30, 30))


def _weights(
    touches: pl.LazyFrame, masks: pl.DataFrame, key_scores: pl.DataFrame
) -> pl.LazyFrame:
    """Scores -> per-touch weights summing to 1 per journey (see the module docstring);
    ``masks`` holds ``journey_id, mask``."""
    scored = (
        touches.join(masks.lazy(), on="journey_id", how="left", maintain_order="left")
        .join(key_scores.lazy(), on=["mask", "channel_key"], how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("feature"))
            .then(pl.col("score").fill_null(0.0))
            .otherwise(0.0)
            .alias("score"),
        )
        .with_columns(
            pl.col("feature").any().over("journey_id").alias("_any_feature"),
            pl.col("feature").sum().over("journey_id").alias("_features"),
            pl.col("feature").sum().over("journey_id", "channel_key").alias("_channel_touches"),
        )
    )
    # each distinct channel's score once per journey
    channel_score = (
        pl.when(pl.col("feature")).then(pl.col("score") / pl.col("_channel_touches")).otherwise(0.0)
    )
    total = channel_score.sum().over("journey_id")
    weight = (
        pl.when(~pl.col("_any_feature"))
        .then(1.0 / pl.len().over("journey_id"))
        .when(total > 0)
        .then(pl.when(pl.col("feature")).then(channel_score / total).otherwise(0.0))
        .otherwise(pl.when(pl.col("feature")).then(1.0 / pl.col("_features")).otherwise(0.0))
    )
    # in the touches' order, with their details (allocate then has nothing to look up)
    details = [c for c in DETAIL_COLUMNS if c in scored.collect_schema().names()]
    return scored.select(
        pl.col("journey_id").cast(pl.String),
        pl.col("touch_index").cast(pl.UInt32),
        pl.col("channel").cast(pl.String),
        weight.cast(pl.Float64).alias("weight"),
        *details,
    )


__all__ = ["EFFECT_SCHEMA", "VALUES", "IncrementalFit", "IncrementalModel"]
