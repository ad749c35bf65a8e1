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

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import polars as pl

from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys
from attribution.models.base import (
    AttributionModel,
    Fit,
    FitInput,
    WeightedFits,
    journey_observations,
)
from attribution.models.priors import (
    ChannelPrior,
    calibrate,
    calibrate_scores,
    experiment_values,
    pattern_values,
)
from attribution.schema import DETAIL_COLUMNS, NO_TOUCH_CHANNEL, UNMAPPED_CHANNEL

if TYPE_CHECKING:
    from scipy import sparse

VALUES = ("revenue", "conversions")  # money: keep name

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
class _Pairs:
    """One entry per (journey, channel) of a first feature touch: the journey's row (in the
    journeys frame's order), the channel's code, its ``rank`` among the journey's distinct
    channels by first touch, and ``gap`` (their number less one)."""

    journey: np.ndarray
    channel: np.ndarray
    rank: np.ndarray
    gap: np.ndarray


@dataclass(frozen=True)
class IncrementalWeightedFits(WeightedFits):
    """The incremental model's fits under journey multiplicities (:class:`WeightedFits`).

    Between two weightings of the same journeys only sums change: which channels are present,
    their mean first-touch positions (so the time order), the patterns' summed observations
    and the weighted revenue credited. What each journey adds to those sums (its channel set,
    its channels' first-touch ranks, its observations, its even splits) is read from its rows
    once, here, in polars; a fit is then ``bincount`` calls over these arrays and the nested
    models on the pattern sums (:func:`_fit_nested`, shared with the plain fit). Whole-number
    weights make the sums exact, so the fit under ``weights`` is the plain fit on the journeys
    listed that many times, bit for bit (``tests/test_incremental.py``).

    A channel set is kept as a mask over ``names`` (every feature channel, by name); a
    weighting's time order only relabels the bits, so the sets are found once. Credit is keyed
    by ``channel_key`` (a touch without a channel is ``(unmapped)``), as the fit keys it.
    """

    model: IncrementalModel
    #: every feature channel of the journeys, by name (bit ``i`` of a set is ``names[i]``)
    names: tuple[str, ...]
    pairs: _Pairs
    #: per journey: its channel set (a row of ``sets``); -1 for a journey without a touch
    journey_set: np.ndarray
    #: the journeys fitted on (those with a touch) and their sets
    fitted_rows: np.ndarray
    fitted_set: np.ndarray
    #: per fitted journey: conversions, trials and revenue (:func:`journey_observations`)
    observed: tuple[np.ndarray, np.ndarray, np.ndarray]
    #: ``(sets, names)`` 0/1 matrix of the distinct channel sets
    sets: np.ndarray
    #: every touched channel (``channel_key``), by name: the credit's columns
    credit_names: tuple[str, ...]
    #: per feature channel (``names``), its column in ``credit_names``
    feature_column: np.ndarray
    #: per journey: revenue if it carries money (not a deal-less account), else 0
    money_revenue: np.ndarray
    #: per journey: carries money and has a feature touch (credited by scores where its set
    #: scores anything)
    scored: np.ndarray
    #: per journey: carries money and has no touch (credited to ``(no touch)``)
    untouched: np.ndarray
    #: ``(journeys, credit_names)``: each money journey's even split, over its feature touches
    #: when it has one, over all its touches otherwise
    even: sparse.csr_matrix
    #: ``(journeys, credit_names)``: touches of each money journey per channel
    seen: sparse.csr_matrix

    @classmethod
    def prepare(cls, model: AttributionModel, journeys: Journeys) -> IncrementalWeightedFits:
        from scipy import sparse  # here, not at the top: importing it slows every start-up

        if not isinstance(model, IncrementalModel):  # pragma: no cover - wired by weighted_type
            raise ModelError(f"model {model.name!r} is not the incremental model")
        if model.priors:  # calibrate_scores reads the journeys of each pattern
            raise ModelError("incremental: a model with experiment priors is refitted on "
                             "copied journeys, not under weights")
        frame = journeys.journeys.select(
            "journey_id", "status", "n_touches", pl.col("revenue_cents").fill_null(0)).collect()
        observed = journey_observations(journeys).collect()  # the same rows, the same order
        n_journeys = frame.height
        rows = frame.select("journey_id").with_row_index("_row")
        touches = (
            _feature_touches(journeys, model.before_creation)
            .select("journey_id", "touch_index", "channel_key", "feature")
            .collect()
            .join(rows, on="journey_id", how="inner", maintain_order="left")
        )
        first = (
            touches.filter(pl.col("feature"))
            .group_by("_row", "channel_key")
            .agg(pl.col("touch_index").min().alias("first"))
            .with_columns(
                (pl.col("first").rank("ordinal").over("_row") - 1).alias("rank"),
                (pl.len().over("_row") - 1).alias("gap"),
            )
        )
        names = sorted(first.get_column("channel_key").unique().to_list())
        _check_width(len(names))
        credit_names = sorted(touches.get_column("channel_key").unique().to_list())
        coded = first.join(_codes(names), on="channel_key", how="left")
        pairs = _Pairs(
            journey=coded.get_column("_row").to_numpy().astype(np.int64),
            channel=coded.get_column("_code").to_numpy().astype(np.int64),
            rank=coded.get_column("rank").to_numpy().astype(np.int64),
            gap=coded.get_column("gap").to_numpy().astype(np.int64),
        )
        masks = np.zeros(n_journeys, dtype=np.int64)
        np.bitwise_or.at(masks, pairs.journey, np.left_shift(1, pairs.channel))
        touched = frame.get_column("n_touches").to_numpy() > 0
        set_masks, inverse = np.unique(masks[touched], return_inverse=True)
        journey_set = np.full(n_journeys, -1, dtype=np.int64)
        journey_set[touched] = inverse

        money = (frame.get_column("status") != "none").to_numpy()
        row = touches.get_column("_row").to_numpy().astype(np.int64)
        column = touches.join(_codes(credit_names), on="channel_key", how="left",
                              maintain_order="left").get_column("_code").to_numpy()
        feature = touches.get_column("feature").to_numpy()
        features = np.bincount(row, weights=feature, minlength=n_journeys)
        every = np.bincount(row, minlength=n_journeys)
        has_feature = features > 0
        # a journey with a feature touch splits over those; one without, over all its touches
        split = money[row] & (feature | ~has_feature[row])
        share = 1.0 / np.where(has_feature, features, np.maximum(every, 1))[row]
        shape = (n_journeys, len(credit_names))

        def fitted(column: str) -> np.ndarray:
            return observed.get_column(column).filter(pl.Series(touched)).to_numpy().astype(float)

        return cls(
            model=model,
            names=tuple(names),
            pairs=pairs,
            journey_set=journey_set,
            fitted_rows=np.flatnonzero(touched),
            fitted_set=inverse.astype(np.int64),
            observed=(fitted("conversions"), fitted("trials"), fitted("revenue_cents")),
            sets=_bits(set_masks, len(names)).astype(np.int64),
            credit_names=tuple(credit_names),
            feature_column=np.searchsorted(credit_names, names).astype(np.int64),
            money_revenue=np.where(money, frame.get_column("revenue_cents").to_numpy(), 0)
            .astype(np.float64),
            scored=money & has_feature,
            untouched=money & ~touched,
            even=sparse.csr_matrix((share[split], (row[split], column[split])), shape=shape),
            seen=sparse.csr_matrix((np.ones(int(money[row].sum())),
                                    (row[money[row]], column[money[row]])), shape=shape),
        )

    def fit(self, weights: np.ndarray) -> IncrementalFit:
        """The fit's tables, as the plain fit on the copied journeys makes them."""
        found = self._fit(weights)
        effects, key_scores = _fit_tables(found.channels, found.position, found.sums,
                                          found.nested)
        return IncrementalFit(found.channels, self.model.before_creation, effects, key_scores)

    def revenue_credit(self, weights: np.ndarray) -> dict[str, float]:
        """What :meth:`IncrementalFit.weights` and :func:`~attribution.credit.allocate` give the
        copied money journeys by channel, before rounding: a journey's channel shares depend
        only on its set's scores (or its fixed even split), so they are summed per set."""
        found = self._fit(weights)
        revenue = found.weights * self.money_revenue
        scores = found.nested.scores
        total = scores.sum(axis=1)
        scoring = total > 0
        credit = np.zeros(len(self.credit_names))
        # a journey whose set scores anything: its set's channel shares, the same in every
        # journey of that set, times the set's weighted revenue
        in_set = np.bincount(self.journey_set[self.scored], weights=revenue[self.scored],
                             minlength=self.sets.shape[0])[found.kept]
        shares = scores[scoring] / total[scoring, None]
        np.add.at(credit, self.feature_column[found.codes],
                  shares.T @ in_set[scoring])
        # the others split evenly (over their feature touches, or all touches)
        evenly = np.ones(self.sets.shape[0], dtype=bool)
        evenly[found.kept] = ~scoring
        split = np.ones(self.journey_set.size, dtype=bool)
        split[self.scored] = evenly[self.journey_set[self.scored]]
        credit += self.even.T @ (revenue * split)
        listed = (self.seen.T @ found.weights) > 0
        found_credit = {name: float(credit[i]) for i, name in enumerate(self.credit_names)
                        if listed[i]}
        if (found.weights[self.untouched] > 0).any():
            found_credit[NO_TOUCH_CHANNEL] = float(revenue[self.untouched].sum())
        return found_credit

    def _fit(self, weights: np.ndarray) -> _WeightedFit:
        """The plain fit's steps on weighted sums: channels present, time order, pattern
        sums, nested models."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.journey_set.shape or (w < 0).any() or (w != np.rint(w)).any():
            raise ModelError(f"incremental: expected {self.journey_set.size} whole-number "
                             "journey weights >= 0")
        pairs = self.pairs
        pair_weight = w[pairs.journey]
        codes = np.flatnonzero(np.bincount(pairs.channel, weights=pair_weight,
                                           minlength=len(self.names)) > 0)
        present = [self.names[c] for c in codes]
        local = np.full(len(self.names), -1, dtype=np.int64)
        local[codes] = np.arange(codes.size)
        drawn = pair_weight > 0
        order, position = _time_order(present, local[pairs.channel[drawn]], pairs.rank[drawn],
                                      pairs.gap[drawn], pair_weight[drawn])
        # the fitted bit of each present channel is its place in the time order
        place = {name: i for i, name in enumerate(order)}
        bit = np.zeros(len(self.names), dtype=np.int64)
        places = np.array([place[name] for name in present], dtype=np.int64)
        bit[codes] = np.left_shift(1, places)
        ordered = codes[np.argsort(places)]

        where, n_sets = self.fitted_set, self.sets.shape[0]
        counted = w[self.fitted_rows]
        conversions, trials, revenue = self.observed
        kept = np.flatnonzero(np.bincount(where, weights=counted, minlength=n_sets) > 0)
        masks = self.sets[kept] @ bit
        kept, masks = kept[np.argsort(masks)], np.sort(masks)
        sums = _PatternSums(
            masks=masks,
            wins=np.bincount(where, weights=counted * conversions, minlength=n_sets)[kept],
            trials=np.bincount(where, weights=counted * trials, minlength=n_sets)[kept],
            revenue=np.bincount(where, weights=counted * revenue, minlength=n_sets)[kept],
        )
        nested = _fit_nested(sums, len(order), self.model.l2, self.model.value)
        return _WeightedFit(tuple(order), position, sums, nested, kept, ordered, w)


@dataclass(frozen=True)
class _WeightedFit:
    """One weighting's fit: what :meth:`IncrementalWeightedFits.fit` turns into tables and
    :meth:`~IncrementalWeightedFits.revenue_credit` into channel credit."""

    channels: tuple[str, ...]
    position: dict[str, float]
    sums: _PatternSums
    nested: _Nested
    #: the sets fitted (rows of ``IncrementalWeightedFits.sets``), in the patterns' order
    kept: np.ndarray
    #: the fitted channels' codes in ``names``, in the time order
    codes: np.ndarray
    weights: np.ndarray


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
    weighted_type: ClassVar[type[WeightedFits] | None] = IncrementalWeightedFits

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

    def reweights(self) -> bool:
        """Experiment priors calibrate on the journeys themselves: such a model is refitted
        on copies of the drawn journeys instead."""
        return not self.priors

    def fit(self, journeys: Journeys) -> IncrementalFit:
        """Order the channels, fit the nested models, score every journey's channels.

        The plain fit, in polars over the journeys' rows: the reference that
        :class:`IncrementalWeightedFits` (a fit under journey multiplicities, without copying
        a journey) is tested against."""
        self.check(journeys)
        touches = _feature_touches(journeys, self.before_creation)
        first = _first_touches(touches)
        order, position = _channel_order(first)
        channels = tuple(order)
        _check_width(len(channels))
        rank = {c: i for i, c in enumerate(channels)}
        patterns = _patterns(first, journeys, rank)
        sums = _PatternSums.of(patterns)
        nested = _fit_nested(sums, len(channels), self.l2, self.value)
        if self.priors:  # experiments calibrate the channels' effects (models.priors)
            nested = dataclasses.replace(nested, scores=calibrate_scores(
                nested.scores, nested.expected, patterns, journeys, channels, self.priors))
        effects, key_scores = _fit_tables(channels, position, sums, nested)
        masks = patterns.select("journey_ids", "mask").explode("journey_ids").rename(
            {"journey_ids": "journey_id"})
        weights = _weights(_money_touches(touches, journeys), masks, key_scores)
        return IncrementalFit(channels, self.before_creation, effects, key_scores,
                              _source=journeys, _source_weights=weights)

    def fits_from_tallies(self) -> bool:
        """The fit reads only sums: each channel's summed first-touch ranks (its time order),
        and per channel set (before creation) its summed observations and the values its
        deals give the experiments (the features are binary, so these are the regressions'
        sufficient statistics)."""
        return True

    def tally(self, journeys: Journeys) -> dict[str, pl.DataFrame]:
        """``positions`` (:data:`POSITION_TALLY_SCHEMA`: a row per channel and number of
        channels in a journey) and ``sets`` (:data:`SET_TALLY_SCHEMA` and two columns per
        prior: a row per distinct channel set) of the journeys, however many they are."""
        self.check(journeys)
        first = _first_touches(_feature_touches(journeys, self.before_creation))
        return {"positions": _position_tally(first),
                "sets": _set_tally(first, journeys, self.priors)}

    def fit_tallies(self, tallies: Mapping[str, pl.DataFrame]) -> IncrementalFit:
        """The fit from :meth:`tally` tables of disjoint sets of journeys, stacked: the time
        order from the summed ranks, the nested models on the summed channel sets (the same
        :func:`_fit_nested` on the same sums as :meth:`fit`, so the same bits)."""
        positions = _summed(tallies["positions"]).with_columns(pl.col("gap").cast(pl.Int64))
        sets = _summed(tallies["sets"])
        names = sorted(positions.get_column("channel_key").unique().to_list())
        code = _codes(names)
        coded = positions.join(code, on="channel_key", how="left")
        channel = coded.get_column("_code").to_numpy().astype(np.int64)
        gap = coded.get_column("gap").to_numpy().astype(np.int64)
        width = int(gap.max()) + 1 if gap.size else 1
        rank_sums = np.zeros((len(names), width), dtype=np.int64)
        np.add.at(rank_sums, (channel, gap), coded.get_column("ranks").to_numpy())
        several = gap > 0
        counts = np.bincount(channel[several], weights=coded.get_column("entries")
                             .to_numpy()[several].astype(np.float64), minlength=len(names))
        order, position = _order_of_sums(names, rank_sums, counts)
        channels = tuple(order)
        _check_width(len(channels))
        bits = pl.DataFrame(
            {"channel_key": list(channels), "_bit": [1 << i for i in range(len(channels))]},
            schema={"channel_key": pl.String, "_bit": pl.Int64},
        )
        masks = (
            sets.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_set"), "channels")
            .explode("channels")
            .join(bits, left_on="channels", right_on="channel_key", how="left")
            .group_by("_set")
            .agg(pl.col("_bit").sum().alias("mask"))
        )
        patterns = (
            sets.with_row_index("_set").with_columns(pl.col("_set").cast(pl.Int64))
            .join(masks, on="_set", how="left")
            .with_columns(pl.col("mask").fill_null(0))  # the empty set (explode drops it)
            .sort("mask")
        )
        sums = _PatternSums.of(patterns)
        nested = _fit_nested(sums, len(channels), self.l2, self.value)
        if self.priors:
            values = pattern_values(patterns.with_row_index("_pattern"), "_pattern",
                                    patterns.height, len(self.priors))
            nested = dataclasses.replace(nested, scores=calibrate(
                nested.scores, nested.expected, values, channels, self.priors))
        effects, key_scores = _fit_tables(channels, position, sums, nested)
        return IncrementalFit(channels, self.before_creation, effects, key_scores)


#: :meth:`IncrementalModel.tally` ``positions``: per channel and ``gap`` (the number of other
#: feature channels in the journey, as text: a key the sums are grouped by, not a count to
#: add up), the summed 0-based ranks of the channel's first touch among the journey's
#: channels, and how many journeys that is
POSITION_TALLY_SCHEMA = pl.Schema(
    {"channel_key": pl.String, "gap": pl.String, "ranks": pl.Int64, "entries": pl.Int64}
)
#: :meth:`IncrementalModel.tally` ``sets``: per distinct feature-channel set (sorted names;
#: empty for a journey whose touches all came after creation), its touched journeys and their
#: observations (:func:`~attribution.models.base.journey_observations`); a model with priors
#: adds :func:`~attribution.models.priors.experiment_values` summed, two columns per prior
SET_TALLY_SCHEMA = pl.Schema(
    [("channels", pl.List(pl.String)), ("journeys", pl.Int64()), ("conversions", pl.Int64()),
     ("trials", pl.Int64()), ("revenue_cents", pl.Int64())]
)


def _position_tally(first: pl.DataFrame) -> pl.DataFrame:
    """The ``positions`` tally of :func:`_first_touches` (the entries :func:`_time_order`
    sums, added up per channel and gap)."""
    return (
        first.with_columns(
            (pl.col("first").rank("ordinal").over("journey_id") - 1).alias("rank"),
            (pl.len().over("journey_id") - 1).alias("gap"),
        )
        .group_by("channel_key", "gap")
        .agg(pl.col("rank").sum().alias("ranks"), pl.len().alias("entries"))
        .sort("channel_key", "gap")
        .select(pl.col("channel_key"), pl.col("gap").cast(pl.String),
                pl.col("ranks", "entries").cast(pl.Int64))
    )


def _set_tally(first: pl.DataFrame, journeys: Journeys,
               priors: tuple[ChannelPrior, ...]) -> pl.DataFrame:
    """The ``sets`` tally: the touched journeys (those :func:`_patterns` fits on) grouped by
    their feature-channel set, with summed observations and experiment values."""
    sets = first.group_by("journey_id").agg(pl.col("channel_key").sort().alias("channels"))
    extra = [c for i in range(len(priors)) for c in (f"_prior{i}", f"_prior{i}_missing")]
    touched = (
        journeys.journeys.filter(pl.col("n_touches") > 0)
        .select("journey_id", *experiment_values(priors))
        .collect()
    )
    observed = journey_observations(journeys).collect()
    rows = (
        touched.join(observed, on="journey_id", how="left")
        .join(sets, on="journey_id", how="left")
        .with_columns(pl.col("channels").fill_null(pl.lit([], dtype=pl.List(pl.String))))
    )
    return (
        rows.group_by("channels")
        .agg(pl.len().alias("journeys"), pl.col("conversions", "trials", "revenue_cents",
                                                *extra).sum())
        .sort("channels")
        .select(*[pl.col(name).cast(dtype) for name, dtype in SET_TALLY_SCHEMA.items()],
                *[pl.col(name).cast(pl.Int64) for name in extra])
    )


def _summed(tally: pl.DataFrame) -> pl.DataFrame:
    """Stacked tallies of disjoint sets of journeys summed: integer columns added up, grouped
    by the others (sorted, so the result does not depend on the stacking order)."""
    keys = [name for name, dtype in tally.schema.items() if not dtype.is_integer()]
    counts = [name for name, dtype in tally.schema.items() if dtype.is_integer()]
    return tally.group_by(keys).agg(pl.col(counts).sum()).sort(keys).select(tally.columns)


@dataclass(frozen=True)
class _PatternSums:
    """The distinct channel sets fitted on (bit masks in the fitted time order, increasing)
    and their summed observations: all the nested models read."""

    masks: np.ndarray
    wins: np.ndarray
    trials: np.ndarray
    revenue: np.ndarray

    @classmethod
    def of(cls, patterns: pl.DataFrame) -> _PatternSums:
        """From a patterns table sorted by ``mask`` with the summed observations."""
        return cls(
            masks=patterns["mask"].to_numpy(),
            wins=patterns["conversions"].to_numpy().astype(float),
            trials=patterns["trials"].to_numpy().astype(float),
            revenue=patterns["revenue_cents"].to_numpy().astype(float),
        )


@dataclass(frozen=True)
class _Nested:
    """The nested outcome models' results: each pattern's score of each channel (columns in
    the fitted time order) and each channel's own coefficients (NaN: not fitted)."""

    scores: np.ndarray
    conversion_effect: np.ndarray
    value_effect: np.ndarray
    #: each pattern's expected value under the ``k``-th model, f_k(x) (read by the priors)
    expected: np.ndarray


def _check_width(n_channels: int) -> None:
    if n_channels > _MAX_CHANNELS:
        raise ModelError(
            f"model 'incremental' handles up to {_MAX_CHANNELS} channels; these journeys have "
            f"{n_channels}: map them to fewer channels with --channel-rules"
        )


def _fit_nested(sums: _PatternSums, n_channels: int, l2: float, value: str) -> _Nested:
    """Step 2 of the module docstring: for the ``k``-th channel, the models of the first
    ``k`` channels, and the channel's score in each pattern (its effect in context, clipped at
    0). Reads only the pattern sums, so equal sums give equal bits, however they were summed."""
    matrix = _bits(sums.masks, n_channels)
    wins, trials, revenue = sums.wins, sums.trials, sums.revenue
    scale = revenue.sum() / wins.sum() if wins.sum() > 0 and revenue.sum() > 0 else 1.0
    scores = np.zeros((sums.masks.size, n_channels))
    fitted_values = np.zeros((sums.masks.size, n_channels))
    conversion_effect = np.full(n_channels, np.nan)
    value_effect = np.full(n_channels, np.nan)
    fitted = trials.sum() > 0 and wins.sum() > 0
    for k in range(n_channels if fitted else 0):
        design = matrix[:, : k + 1]
        beta = _fit_logistic(design, wins, trials, l2)
        conversion_effect[k] = beta[-1]
        gamma = np.zeros(k + 2)
        if value == "revenue":
            gamma = _fit_log_value(design, revenue / scale, wins, l2)
            value_effect[k] = gamma[-1]
        without = design.copy()
        without[:, k] = 0.0
        expected = _expected(design, beta, gamma)
        baseline = _expected(without, beta, gamma)
        scores[:, k] = np.where(matrix[:, k] > 0, np.maximum(expected - baseline, 0.0), 0.0)
        fitted_values[:, k] = expected
    return _Nested(scores, conversion_effect, value_effect, fitted_values)


def _fit_tables(channels: tuple[str, ...], position: dict[str, float], sums: _PatternSums,
                nested: _Nested) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fit's effects table (:data:`EFFECT_SCHEMA`) and its ``mask, channel_key, score``
    lookup."""
    n_channels, scores, wins, trials = len(channels), nested.scores, sums.wins, sums.trials
    key_scores = pl.DataFrame(
        {
            "mask": np.repeat(sums.masks, n_channels),
            "channel_key": list(channels) * sums.masks.size,
            "score": scores.ravel(),
        },
        schema={"mask": pl.Int64, "channel_key": pl.String, "score": pl.Float64},
    )
    converting = wins > 0
    credit_score = (scores[converting] * wins[converting, None]).sum(axis=0)
    present = (_bits(sums.masks, n_channels) > 0) & (trials[:, None] > 0)
    effects = pl.DataFrame(
        {
            "channel": list(channels),
            "order": list(range(n_channels)),
            "position": [position[c] for c in channels],
            "conversion_effect": nested.conversion_effect.tolist(),
            "value_effect": nested.value_effect.tolist(),
            "journeys": (present * trials[:, None]).sum(axis=0).astype(np.int64).tolist(),
            "credit_score": credit_score.tolist(),
        },
        schema=EFFECT_SCHEMA,
    )
    return effects, key_scores


def _codes(names: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"channel_key": names, "_code": np.arange(len(names), dtype=np.int64)},
                        schema={"channel_key": pl.String, "_code": pl.Int64})


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
    """Channels by the mean relative position of their first touch (ties by name)."""
    ranked = first.with_columns(
        (pl.col("first").rank("ordinal").over("journey_id") - 1).alias("rank"),
        (pl.len().over("journey_id") - 1).alias("gap"),
    )
    channels = sorted(set(first["channel_key"].to_list()))
    code = {c: i for i, c in enumerate(channels)}
    codes = np.array([code[c] for c in ranked["channel_key"].to_list()], dtype=np.int64)
    return _time_order(channels, codes, ranked["rank"].to_numpy().astype(np.int64),
                       ranked["gap"].to_numpy().astype(np.int64), np.ones(codes.size))


def _time_order(names: list[str], channel: np.ndarray, rank: np.ndarray, gap: np.ndarray,
                weight: np.ndarray) -> tuple[list[str], dict[str, float]]:
    """``names`` (the channels present) by the mean relative position of their first touch,
    ties by name, and those positions (0.5 for a channel never in a journey of two or more).

    One entry per (journey, channel): the channel's code in ``names``, ``rank`` (0-based
    among the journey's distinct channels, by first touch), ``gap`` (their number less one;
    the relative position is ``rank / gap``) and ``weight`` (how often the journey counts; a
    whole number). The mean is an exact fraction of integer sums, so the order and the
    positions are the same bits however the entries are summed: a journey listed twice and one
    weighted 2 give one order, and a parallel group-by cannot change a last bit.
    """
    several = gap > 0
    width = int(gap.max()) + 1 if gap.size else 1
    sums = np.bincount(channel[several] * width + gap[several],
                       weights=(weight * rank)[several],
                       minlength=len(names) * width).reshape(len(names), width)
    counts = np.bincount(channel[several], weights=weight[several], minlength=len(names))
    return _order_of_sums(names, sums, counts)


def _order_of_sums(names: list[str], sums: np.ndarray,
                   counts: np.ndarray) -> tuple[list[str], dict[str, float]]:
    """:func:`_time_order` from its sums: ``sums[c, g]``, the summed ranks of channel ``c``'s
    entries with ``gap`` ``g`` (whole numbers), and ``counts[c]``, its entries with a gap."""
    means = {}
    for code, name in enumerate(names):
        if counts[code] > 0:
            # Python integers: numpy's would overflow in the fractions' cross products
            total = sum((Fraction(int(sums[code, g]), int(g))
                         for g in np.flatnonzero(sums[code])), Fraction(0))
            means[name] = total / int(counts[code])
        else:
            means[name] = Fraction(1, 2)
    order = sorted(names, key=lambda c: (means[c], c))
    return order, {c: float(means[c]) for c in names}


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
            pl.col("revenue_cents").cast(pl.Float64),
        )
    )
    masks = _masks(first, rank)
    return (
        observed.join(masks, on="journey_id", how="left")
        .with_columns(pl.col("mask").fill_null(0))
        .group_by("mask")
        .agg(
            pl.col("journey_id").alias("journey_ids"),
            pl.col("conversions", "trials", "revenue_cents").sum(),
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


def _mask_totals(key_scores: pl.DataFrame) -> pl.DataFrame:
    """``mask, _total``: per channel set, its channels' scores summed in one fixed order (by
    channel key). A journey's feature channels are its mask's channels, so this is the sum of
    each distinct channel's score over the journey, the same bits wherever it is taken."""
    ordered = key_scores.select("mask", "channel_key", "score").sort("mask", "channel_key")
    mask = ordered.get_column("mask")
    if not mask.len():
        return pl.DataFrame({"mask": mask, "_total": pl.Series([], dtype=pl.Float64)})
    codes = mask.to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    score = ordered.get_column("score").fill_null(0.0).to_numpy().astype(np.float64)
    return pl.DataFrame({"mask": mask.gather(starts),
                         "_total": np.add.reduceat(score, starts)})


def _weights(
    touches: pl.LazyFrame, masks: pl.DataFrame, key_scores: pl.DataFrame
) -> pl.LazyFrame:
    """Scores -> per-touch weights summing to 1 per journey (see the module docstring);
    ``masks`` holds ``journey_id, mask``."""
    scored = (
        touches.join(masks.lazy(), on="journey_id", how="left", maintain_order="left")
        .join(key_scores.lazy(), on=["mask", "channel_key"], how="left", maintain_order="left")
        .join(_mask_totals(key_scores).lazy(), on="mask", how="left", maintain_order="left")
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
    # each distinct channel's score once per journey, split over its touches; the total is
    # the journey's set's (:func:`_mask_totals`), not this column summed over the journey: a
    # float sum over a window adds in the order the engine groups the rows, which depends on
    # the other journeys in the frame, and a run a part of the journeys at a time
    # (attribution.partitioned, Spark) must give every journey the same bits
    channel_score = (
        pl.when(pl.col("feature")).then(pl.col("score") / pl.col("_channel_touches")).otherwise(0.0)
    )
    total = pl.col("_total").fill_null(0.0)
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


__all__ = ["EFFECT_SCHEMA", "POSITION_TALLY_SCHEMA", "SET_TALLY_SCHEMA", "VALUES", "IncrementalFit",
           "IncrementalModel", "IncrementalWeightedFits"]
