"""Shapley-value attribution: channels are players, coalitions are sets of channels.

Three games, chosen with ``variant``:

``simplified``
    Zhao, Mahboobi & Bagheri (2018), "Shapley value methods for attribution modeling in
    online advertising" (arXiv:1804.05327). A coalition ``S`` is worth the conversions (or
    revenue) of the converting journeys whose channel set is contained in ``S``. That game is a
    sum of unanimity games, one per journey, so its Shapley value reduces to the closed form

        phi_c = sum over converting journeys j with c in C_j of value_j / |C_j|

    i.e. *an even split of each journey's value over its distinct channels*. That is how it is
    computed here (no coalition is enumerated, so any number of channels works), and the weights
    are that split: ``1 / |C_j|`` per distinct channel, then evenly over the channel's touches.
    Summing the credit of converting journeys per channel gives back ``phi_c`` exactly.

``rate``
    Shao & Li (2011), "Data-driven multi-touch attribution models" (KDD), and Dalessandro,
    Perlich, Stitelman & Provost (2012), "Causally motivated attribution for online
    advertising" (ADKDD). A coalition ``S`` is worth the conversion rate (``value="conversions"``)
    or the revenue per journey (``value="revenue"``) of the journeys, converting *and not*,
    whose channel set lies in ``S``::

        v(S) = sum(conversions or revenue) / sum(conversions + nulls)   over j with C_j <= S
        v(S) = 0 when no journey has its channel set inside S

    so a channel present in many non-converting journeys earns less, and can earn a negative
    value. The values sum to ``v(N)``, the overall conversion rate (revenue per journey) of the
    journeys with touches. Journeys are first grouped by channel set; ``v`` is then built for
    all ``2**n`` coalitions with one subset-sum (zeta) transform over the sets that occur, and
    the Shapley formula is evaluated exactly, in ``O(n * 2**n)`` for ``n`` channels. Beyond
    ``max_channels`` channels that is refused with a :class:`ModelError` unless ``samples`` is
    set: then the values are estimated from ``samples`` random channel orders (Castro, Gomez &
    Tejada 2009) drawn with ``seed``, and :meth:`ShapleyFit.values` reports each value's
    standard error.

``ordered``
    The position-aware variant of Zhao et al. (2018): the credit a journey gives channel ``c``
    is counted at the position ``p`` (1-based) at which ``c`` first appears in the journey::

        phi_c^p = sum over converting journeys j where c first appears p-th of value_j / |C_j|

    (:meth:`ShapleyFit.position_values`; summed over ``p`` it is the simplified value).

From global values to per-journey weights
-----------------------------------------
Every journey with touches gets weights (open deals too: pipeline is split by the same weights),
built the same way for all three variants: each distinct channel ``c`` of journey ``j`` gets a
*score*; the journey's weight is split over its distinct channels in proportion to the scores,
then evenly over each channel's touches. Scores:

* ``simplified``: 1 for every channel (the even split above).
* ``rate``: ``max(phi_c, 0)``, the channel's global Shapley value. A channel whose value is
  negative (its journeys convert worse than those without it) gets no credit inside a journey;
  its signed value stays in :meth:`ShapleyFit.values`.
* ``ordered``: ``phi_c^p`` for the position ``p`` at which ``c`` first appears in *this*
  journey, so the same channel set in a different order is split differently.

A journey whose channels all score 0 (every value negative, or channels and positions never
seen in a converting journey) is split evenly over its distinct channels. Hence weights are
>= 0 and sum to 1 per journey. Channels that occur only in open journeys are not players of
the game and score 0.

What the channel totals mean: for ``simplified`` the credit of converting journeys per channel
*is* the Shapley value. For ``rate`` and ``ordered`` the per-channel credit totals are the
observed conversions (revenue) of each journey re-split by the global values; they are not
the Shapley values, which are in their own units (conversion rate, revenue per journey, or
conversions by position) and come from :meth:`ShapleyModel.fit`.

Which journeys are observations: a ``won`` deal is one conversion (revenue: its amount); a
``lost`` deal or a deal-less account (``none``) is one null; a ``path`` row brings its own
conversions, nulls and revenue; ``open`` deals are pipeline, not observations. Journeys
without touches take no part (they have no channel to credit).

>>> import polars as pl
>>> from attribution.journeys import Journeys
>>> touches = pl.DataFrame({"journey_id": ["d1", "d1", "d2", "d3"], "touch_index": [0, 1, 0, 0],
...                         "channel": ["search", "email", "search", "email"]})
>>> deals = pl.DataFrame({"journey_id": ["d1", "d2", "d3"], "status": ["won", "lost", "won"]})
>>> fit = ShapleyModel(variant="rate").fit(Journeys.from_frames(touches, deals))
>>> fit.values().select("channel", pl.col("shapley_value").round(4)).rows()
[('email', 0.8333), ('search', -0.1667)]
>>> # search's negative value earns it nothing
>>> fit.weights(Journeys.from_frames(touches, deals)).collect()["weight"].to_list()
[0.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from attribution.schema import DETAIL_COLUMNS, NO_TOUCH_CHANNEL, UNMAPPED_CHANNEL

if TYPE_CHECKING:
    from scipy import sparse

VARIANTS = ("simplified", "rate", "ordered")
VALUES = ("conversions", "revenue")  # money: keep name
#: the value columns of a fit with ``value="revenue"``: named by their unit, the run's minor
#: units (floats: a value is an estimate, not whole cents); the writers give them in major
#: units under the plain names (:data:`attribution.schema.MINOR_UNIT_ESTIMATES`)
REVENUE_NAMES = {"shapley_value": "shapley_value_cents", "standard_error": "standard_error_cents"}

#: channel-level Shapley values, one row per channel seen in a journey with touches
#: (``value="revenue"``: the value columns are :data:`REVENUE_NAMES`, minor units)
SHAPLEY_VALUE_SCHEMA = pl.Schema(
    {
        "channel": pl.String,
        "shapley_value": pl.Float64,  # conversions
        "share": pl.Float64,  # shapley_value / sum of all values (null when that sum is 0)
        "standard_error": pl.Float64,  # null when exact
    }
)

#: ordered Shapley values, one row per (channel, position of first appearance)
POSITION_VALUE_SCHEMA = pl.Schema(
    {
        "channel": pl.String,
        "position": pl.UInt32,  # 1-based order of the channel's first appearance in a journey
        "shapley_value": pl.Float64,
        "share": pl.Float64,
    }
)

# joins a journey's channels into one key; a channel name containing it is refused
_SEPARATOR = "\x1f"
# bound on the (permutations x set members) block held at once while sampling
_SAMPLING_BLOCK = 4_000_000


@dataclass(frozen=True)
class ShapleyFit(Fit):
    """The fitted game: channel values, and the per-journey weights they imply.

    Attributes
    ----------
    variant, value
        As on the model.
    method
        ``"closed_form"`` (simplified, ordered), ``"exact"`` or ``"sampled"`` (rate).
    samples
        Random channel orders drawn when ``method == "sampled"``, else 0.
    total
        What the values add up to: total conversions (revenue) of converting journeys for
        simplified and ordered, ``v(N)`` (overall conversion rate or revenue per journey)
        for rate. Revenue, here and in the values, is in the run's minor units (cents; the
        values then sit under :data:`REVENUE_NAMES`, ``shapley_value_cents``).
    channel_sets
        Distinct channel sets (channel sequences for ordered) among journeys with touches:
        the rows the game is played on.
    """

    variant: str
    value: str
    method: str
    samples: int
    total: float
    channel_sets: int
    _values: pl.DataFrame
    _position_values: pl.DataFrame | None
    _key_weights: pl.DataFrame
    #: the journeys the game was played on and their channel-set keys: scoring those same
    #: journeys (a local run) reuses the keys instead of deriving them again
    _source: Journeys | None = field(default=None, compare=False, repr=False)
    _source_keys: pl.DataFrame | None = field(default=None, compare=False, repr=False)

    transient: ClassVar[tuple[str, ...]] = ("_source", "_source_keys")

    def values(self) -> pl.DataFrame:
        """Channel Shapley values with :data:`SHAPLEY_VALUE_SCHEMA` (``value="revenue"``: its
        value columns named :data:`REVENUE_NAMES`, minor units), sorted by channel."""
        return self._values

    def position_values(self) -> pl.DataFrame:
        """Ordered Shapley values with :data:`POSITION_VALUE_SCHEMA` (``variant="ordered"``)."""
        if self._position_values is None:
            raise ModelError(
                f"position values exist only for the ordered Shapley variant, "
                f"not {self.variant!r}; use ShapleyModel(variant='ordered')"
            )
        return self._position_values

    def tables(self) -> dict[str, pl.DataFrame]:
        """``values``: the channel Shapley values."""
        return {"values": self.values()}

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        """Weights with :data:`~attribution.schema.WEIGHT_SCHEMA` for the journeys that carry
        money (deals, path rows), in the order of their touches, with the touches' details
        (:data:`~attribution.schema.DETAIL_COLUMNS`): each channel of a journey's set takes its
        value in the game, split evenly over the journey's touches of that channel. Deal-less
        accounts (status ``none``) take part in the game but have nothing to credit, so they
        get no rows: at scale they are most journeys."""
        if journeys is self._source and self._source_keys is not None:
            journey_keys = self._source_keys
            on_runs = _weights_on_runs(journeys, journey_keys, self._key_weights)
            if on_runs is not None:
                return on_runs.lazy()
        else:
            journey_keys = _journey_keys(journeys, ordered=self.variant == "ordered").collect()
            journey_keys = journey_keys.select("journey_id", "key")
        return _weights_by_joins(journeys, journey_keys, self._key_weights)


def _weights_by_joins(journeys: Journeys, journey_keys: pl.DataFrame,
                      key_weights: pl.DataFrame) -> pl.LazyFrame:
    """:meth:`ShapleyFit.weights` by joins on the journey ids and keys (any journeys; the
    plain definition :func:`_weights_on_runs` is compared with)."""
    money = journeys.touches.join(
        journeys.journeys.filter(pl.col("status") != "none").select("journey_id"),
        on="journey_id", how="semi", maintain_order="left",
    )
    details = [c for c in DETAIL_COLUMNS if c in money.collect_schema().names()]
    touches = money.select(
        "journey_id",
        "touch_index",
        "channel",
        *details,
        pl.col("channel").fill_null(UNMAPPED_CHANNEL).alias("channel_key"),
    ).with_columns(pl.len().over("journey_id", "channel_key").alias("channel_touches"))
    return (
        touches.join(journey_keys.lazy(), on="journey_id", how="left",
                     maintain_order="left")
        .join(key_weights.lazy(), on=["key", "channel_key"], how="left",
              maintain_order="left")
        .select(
            pl.col("journey_id").cast(pl.String),
            pl.col("touch_index").cast(pl.UInt32),
            pl.col("channel").cast(pl.String),
            (pl.col("channel_weight") / pl.col("channel_touches")).alias("weight"),
            *details,
        )
    )


def _weights_on_runs(journeys: Journeys, journey_keys: pl.DataFrame,
                     key_weights: pl.DataFrame) -> pl.DataFrame | None:
    """:func:`_weights_by_joins` read off the journeys' runs of touches, in numpy: which
    journeys carry money, their keys and the touches per (journey, channel) are taken a run
    at a time, and a touch's channel weight is looked up in a (key x channel) table, instead
    of joins and a window on the text ids of every touch.

    Relies on: built journeys (:attr:`Journeys.index`: the touches are the runs as they are,
    in the order the joins keep) and ``journey_keys`` listing the runs' journeys in run order
    (:func:`_set_keys`' order); None otherwise, or when a (key, channel) has no weight (the
    joins' null), and the caller takes the joins.
    """
    if journeys.index is None:
        return None
    runs = journeys.runs
    touches = runs.touches
    run_ids = touches.get_column("journey_id").gather(runs.starts)
    if not run_ids.equals(journey_keys.get_column("journey_id")):
        return None
    money_ids = (journeys.journeys.filter(pl.col("status") != "none")
                 .select("journey_id").collect().to_series())
    money_run = run_ids.is_in(money_ids.implode()).fill_null(False).to_numpy()
    sizes = runs.sizes[money_run]
    rows = touches.filter(pl.Series(np.repeat(money_run, runs.sizes)))
    details = [c for c in DETAIL_COLUMNS if c in touches.columns]
    channel_key = rows.get_column("channel").fill_null(UNMAPPED_CHANNEL)
    names = key_weights.get_column("channel_key").unique().sort()
    keys = key_weights.get_column("key").unique().sort()
    if channel_key.len() and not channel_key.is_in(names.implode()).all():
        return None
    channel = channel_key.cast(pl.Enum(names.to_list())).to_physical().to_numpy()
    key = (journey_keys.get_column("key").filter(pl.Series(money_run))
           .cast(pl.Enum(keys.to_list())).to_physical().to_numpy())
    table = np.full((keys.len(), names.len()), np.nan)
    table[key_weights.get_column("key").cast(pl.Enum(keys.to_list())).to_physical().to_numpy(),
          key_weights.get_column("channel_key").cast(pl.Enum(names.to_list()))
          .to_physical().to_numpy()] = key_weights.get_column("channel_weight").to_numpy()
    run = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    cell = run * names.len() + channel.astype(np.int64)
    channel_weight = table[key[run], channel]
    if np.isnan(channel_weight).any():
        return None
    channel_touches = np.bincount(cell, minlength=sizes.size * names.len())[cell]
    return pl.DataFrame([
        rows.get_column("journey_id").cast(pl.String),
        rows.get_column("touch_index").cast(pl.UInt32),
        rows.get_column("channel").cast(pl.String),
        pl.Series("weight", channel_weight / channel_touches.astype(np.float64)),
        *(rows.get_column(c) for c in details),
    ])


@dataclass(frozen=True)
class ShapleyWeightedFits(WeightedFits):
    """The Shapley game under journey multiplicities (:class:`WeightedFits`).

    The game reads only the distinct keys (channel sets, or sequences for ``ordered``) with
    their summed observations (:func:`_key_table`), and a journey's key never changes: a
    weighting's key table is a ``bincount`` of the journeys' observations over their keys,
    and each money journey's credit is its key's channel weights times its revenue. The keys
    are found once, here; the game itself is the plain fit's (:meth:`ShapleyModel._play_keys`),
    so the fit under whole-number weights is the fit on the journeys listed that many times.
    """

    model: ShapleyModel
    #: the distinct keys, sorted, with their channels
    keys: pl.DataFrame
    #: per journey with touches: its journeys-frame row, its key (row of ``keys``) and its
    #: conversions, trials and revenue
    rows: np.ndarray
    key: np.ndarray
    observed: tuple[np.ndarray, np.ndarray, np.ndarray]
    #: every (key, channel) member in key order: its key and its column in ``credit_names``
    member_key: np.ndarray
    member_column: np.ndarray
    #: every touched channel (``channel_key``), by name: the credit's columns
    credit_names: tuple[str, ...]
    #: per journey: revenue if it carries money (not a deal-less account), else 0
    money_revenue: np.ndarray
    #: per journey: carries money and has no touch (credited to ``(no touch)``)
    untouched: np.ndarray
    #: ``(journeys, credit_names)``: touches of each money journey per channel
    seen: sparse.csr_matrix

    @classmethod
    def prepare(cls, model: AttributionModel, journeys: Journeys) -> ShapleyWeightedFits:
        from scipy import sparse  # here, not at the top: importing it slows every start-up

        if not isinstance(model, ShapleyModel):  # pragma: no cover - wired by weighted_type
            raise ModelError(f"model {model.name!r} is not the Shapley model")
        frame = journeys.journeys.select(
            "journey_id", "status", "n_touches", pl.col("revenue_cents").fill_null(0)).collect()
        index = frame.select("journey_id").with_row_index("_row")
        journey_keys = (_journey_keys(journeys, ordered=model.variant == "ordered").collect()
                        .join(index, on="journey_id", how="inner"))
        keys = (journey_keys.group_by("key").agg(pl.col("channels").first()).sort("key")
                .with_row_index("_key"))
        coded = journey_keys.join(keys.select("key", "_key"), on="key", how="left")
        touches = journeys.touches.select(
            "journey_id", pl.col("channel").fill_null(UNMAPPED_CHANNEL).alias("channel_key"),
        ).collect().join(index, on="journey_id", how="inner")
        credit_names = sorted(touches.get_column("channel_key").unique().to_list())
        members = keys.select("_key", "channels").explode("channels")
        money = (frame.get_column("status") != "none").to_numpy()
        row = touches.get_column("_row").to_numpy().astype(np.int64)
        column = np.searchsorted(credit_names, touches.get_column("channel_key").to_numpy())
        on_money = money[row]
        return cls(
            model=model,
            keys=keys.drop("_key"),
            rows=coded.get_column("_row").to_numpy().astype(np.int64),
            key=coded.get_column("_key").to_numpy().astype(np.int64),
            observed=tuple(  # type: ignore[arg-type]
                coded.get_column(c).fill_null(0).to_numpy().astype(np.float64)
                for c in ("conversions", "trials", "revenue_cents")),
            member_key=members.get_column("_key").to_numpy().astype(np.int64),
            member_column=np.searchsorted(credit_names,
                                          members.get_column("channels").to_numpy()),
            credit_names=tuple(credit_names),
            money_revenue=np.where(money, frame.get_column("revenue_cents").to_numpy(), 0)
            .astype(np.float64),
            untouched=money & (frame.get_column("n_touches").to_numpy() == 0),
            seen=sparse.csr_matrix((np.ones(int(on_money.sum())),
                                    (row[on_money], column[on_money])),
                                   shape=(frame.height, len(credit_names))),
        )

    def fit(self, weights: np.ndarray) -> ShapleyFit:
        """The game on the weighted key table, as the plain fit on copied journeys plays it."""
        return self._fit(weights)[0]

    def revenue_credit(self, weights: np.ndarray) -> dict[str, float]:
        """The copied money journeys' credit by channel, before rounding: each journey's
        channels take their key's channel weights (split over the channel's touches, which
        sum back to the weight) of its revenue."""
        fit, w, kept = self._fit(weights)
        n_keys = self.keys.height
        revenue = np.bincount(self.key, weights=(w * self.money_revenue)[self.rows],
                              minlength=n_keys)
        member = np.isin(self.member_key, kept)  # kept keys' members, in the fit's order
        channel_weight = fit._key_weights.get_column("channel_weight").to_numpy()
        credit = np.bincount(self.member_column[member],
                             weights=channel_weight * revenue[self.member_key[member]],
                             minlength=len(self.credit_names))
        listed = (self.seen.T @ w) > 0
        found = {name: float(credit[i]) for i, name in enumerate(self.credit_names)
                 if listed[i]}
        if (w[self.untouched] > 0).any():
            found[NO_TOUCH_CHANNEL] = float((w * self.money_revenue)[self.untouched].sum())
        return found

    def _fit(self, weights: np.ndarray) -> tuple[ShapleyFit, np.ndarray, np.ndarray]:
        w = np.asarray(weights, dtype=np.float64)
        if (w.shape != self.money_revenue.shape or (w < 0).any()
                or (w != np.rint(w)).any()):
            raise ModelError(f"shapley: expected {self.money_revenue.size} whole-number "
                             "journey weights >= 0")
        n_keys = self.keys.height
        counted = w[self.rows]
        kept = np.flatnonzero(np.bincount(self.key, weights=counted, minlength=n_keys) > 0)

        def summed(values: np.ndarray | None) -> pl.Series:
            found = np.bincount(self.key, weights=counted if values is None else
                                counted * values, minlength=n_keys)[kept]
            return pl.Series(np.rint(found).astype(np.int64))

        conversions, trials, revenue = self.observed
        table = self.keys[kept].with_columns(
            summed(None).cast(pl.UInt32).alias("journeys"),
            summed(conversions).alias("conversions"),
            summed(trials).alias("trials"),
            summed(revenue).alias("revenue_cents"),
        )
        return self.model._play_keys(table), w, kept


@dataclass(frozen=True)
class ShapleyModel(AttributionModel):
    """Shapley-value attribution over channels (see the module docstring for the games).

    Parameters
    ----------
    variant
        ``"simplified"`` (Zhao et al. 2018: even split over a journey's distinct channels),
        ``"rate"`` (Shao & Li 2011; Dalessandro et al. 2012: coalitions valued by conversion
        rate, so non-converting journeys count) or ``"ordered"`` (Zhao et al. 2018: credit by
        the position at which a channel first appears).
    value
        ``"conversions"`` or ``"revenue"``: what a coalition is worth.
    max_channels
        Largest number of channels the rate variant computes exactly (cost ``n * 2**n``).
    samples
        Rate variant beyond ``max_channels``: estimate from this many random channel orders
        instead of raising :class:`ModelError`. ``None`` refuses.
    seed
        Seed of the random channel orders.

    Examples
    --------
    >>> ShapleyModel(variant="ordered").params()["variant"]
    'ordered'
    """

    name: ClassVar[str] = "shapley"
    label: ClassVar[str] = "Shapley value"
    summary: ClassVar[str] = (
        "cooperative-game credit over channel sets (simplified, conversion-rate or ordered)"
    )
    fit_input: ClassVar[FitInput | None] = FitInput.CHANNEL_SETS
    fit_type: ClassVar[type[Fit] | None] = ShapleyFit
    weighted_type: ClassVar[type[WeightedFits] | None] = ShapleyWeightedFits

    variant: str = "simplified"
    value: str = "conversions"
    max_channels: int = 20
    samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"shapley variant {self.variant!r} is not one of: {', '.join(VARIANTS)}"
            )
        if self.value not in VALUES:
            raise ConfigError(f"shapley value {self.value!r} is not one of: {', '.join(VALUES)}")
        if not 1 <= self.max_channels <= 30:
            raise ConfigError(
                f"shapley max_channels must be between 1 and 30, not {self.max_channels}"
            )
        if self.samples is not None and self.samples < 2:
            raise ConfigError(f"shapley samples must be at least 2, not {self.samples}")

    def fit(self, journeys: Journeys) -> ShapleyFit:
        """Play the game on ``journeys``: channel values plus the weights they imply."""
        self.check(journeys)
        journey_keys = _journey_keys(journeys, ordered=self.variant == "ordered").collect()
        return self._play_keys(_key_table(journey_keys), source=journeys,
                               source_keys=journey_keys.select("journey_id", "key"))

    def fits_from_tallies(self) -> bool:
        """The game reads only the distinct channel keys and their summed observations."""
        return True

    def tally(self, journeys: Journeys) -> dict[str, pl.DataFrame]:
        """``keys``: the journeys' distinct channel sets (sequences, for ordered) with their
        journeys, conversions, trials and revenue: a row per set, however many journeys."""
        self.check(journeys)
        journey_keys = _journey_keys(journeys, ordered=self.variant == "ordered").collect()
        table = _key_table(journey_keys)
        return {"keys": table.select([pl.col(name).cast(dtype)
                                      for name, dtype in KEY_TALLY_SCHEMA.items()])}

    def fit_tallies(self, tallies: Mapping[str, pl.DataFrame]) -> ShapleyFit:
        """The game on the summed :meth:`tally` keys: the fit on all their journeys."""
        keys = (
            tallies["keys"].group_by("key")
            .agg(pl.col("channels").first(),
                 pl.col("journeys", "conversions", "trials", "revenue_cents").sum())
            .sort("key")
        )
        return self._play_keys(keys)

    def _play_keys(self, keys: pl.DataFrame, *, source: Journeys | None = None,
                   source_keys: pl.DataFrame | None = None) -> ShapleyFit:
        """The game on a key table (:func:`_key_table`): all the fit reads."""
        sets = _ChannelSets.from_keys(keys, self.value)
        game = self._play_rate(sets) if self.variant == "rate" else self._play_closed_form(sets)
        key_weights = pl.DataFrame(
            {
                "key": sets.members["key"],
                "channel_key": sets.members["channels"],
                "channel_weight": _split(game.scores, sets.starts, sets.lengths),
            }
        )
        # revenue is played in the run's minor units (exact sums) and reported in them, under
        # names that say so: the model does not know the currency; the writers do
        names = REVENUE_NAMES if self.value == "revenue" else {}
        positions = game.position_values
        if positions is not None:
            positions = positions.rename(names, strict=False)
        return ShapleyFit(
            variant=self.variant,
            value=self.value,
            method=game.method,
            samples=game.samples,
            total=game.total,
            channel_sets=keys.height,
            _values=_value_frame(sets.channels, game.shapley,
                                 game.standard_error).rename(names, strict=False),
            _position_values=positions,
            _key_weights=key_weights,
            _source=source,
            _source_keys=source_keys,
        )

    def _play_closed_form(self, sets: _ChannelSets) -> _Game:
        """Simplified and ordered: each journey's value split evenly over its channels."""
        member_credit = np.repeat(sets.numerator / sets.lengths, sets.lengths)
        n_channels = len(sets.channels)
        shapley = np.bincount(sets.member_channel, weights=member_credit, minlength=n_channels)
        total = float(sets.numerator.sum())
        if self.variant == "simplified":
            return _Game(shapley, None, "closed_form", 0, total, np.ones(len(member_credit)))
        width = int(sets.lengths.max()) if len(sets.lengths) else 0
        cell = sets.member_channel * width + (_positions(sets.lengths) - 1)
        by_cell = np.bincount(cell, weights=member_credit, minlength=n_channels * width)
        positions = _position_frame(sets.channels, by_cell, width, total)
        return _Game(shapley, None, "closed_form", 0, total, by_cell[cell], positions)

    def _play_rate(self, sets: _ChannelSets) -> _Game:
        """Conversion-rate game over the channels of observed (non-open) journeys."""
        observed = sets.trials > 0
        observed_members = np.repeat(observed, sets.lengths)
        players = np.unique(sets.member_channel[observed_members])
        if len(players) > self.max_channels and self.samples is None:
            raise ModelError(
                f"the rate Shapley variant is exact for up to max_channels="
                f"{self.max_channels} channels; these journeys have {len(players)} "
                f"({', '.join(sets.channels[players])}). Pass samples=N for a seeded estimate "
                f"with standard errors, raise max_channels (cost doubles per channel), "
                f"or attribute channel groups instead"
            )
        # players renumbered 0..n-1; the observed sets' members laid end to end
        player_of = np.full(len(sets.channels), -1, dtype=np.int64)
        player_of[players] = np.arange(len(players))
        flat = player_of[sets.member_channel[observed_members]]
        lengths = sets.lengths[observed]
        starts = np.cumsum(lengths) - lengths
        numerator, trials = sets.numerator[observed], sets.trials[observed]

        shapley = np.zeros(len(sets.channels))
        standard_error = None
        if len(players) <= self.max_channels:
            shapley[players] = _rate_exact(flat, starts, numerator, trials, len(players))
            method, samples = "exact", 0
        else:
            assert self.samples is not None
            estimate, error = _rate_sampled(
                flat, starts, numerator, trials, len(players), self.samples, self.seed
            )
            shapley[players] = estimate
            standard_error = np.zeros(len(sets.channels))
            standard_error[players] = error
            method, samples = "sampled", self.samples
        total_trials = int(trials.sum())
        total = float(numerator.sum()) / total_trials if total_trials else 0.0
        scores = np.maximum(shapley, 0.0)[sets.member_channel]
        return _Game(shapley, standard_error, method, samples, total, scores)


@dataclass(frozen=True)
class _ChannelSets:
    """The distinct keys as arrays: members laid end to end, one count per key."""

    channels: np.ndarray  # sorted channel names (object)
    members: pl.DataFrame  # key, channels: one row per (key, channel) in key order
    member_channel: np.ndarray  # index into ``channels`` of every member
    lengths: np.ndarray  # channels per key
    starts: np.ndarray  # offset of each key's first member
    numerator: np.ndarray  # conversions or revenue per key
    trials: np.ndarray  # conversions + nulls per key

    @classmethod
    def from_keys(cls, keys: pl.DataFrame, value: str) -> _ChannelSets:
        channels = _channels(keys)
        members = keys.select("key", "channels").explode("channels")
        lengths = keys["channels"].list.len().to_numpy().astype(np.int64)
        return cls(
            channels=channels,
            members=members,
            member_channel=np.searchsorted(channels, members["channels"].to_numpy()),
            lengths=lengths,
            starts=np.cumsum(lengths) - lengths,
            numerator=keys["revenue_cents" if value == "revenue" else "conversions"].to_numpy(),
            trials=keys["trials"].to_numpy(),
        )


@dataclass(frozen=True)
class _Game:
    """What a variant computed: values per channel and a score per (key, channel) member."""

    shapley: np.ndarray
    standard_error: np.ndarray | None
    method: str
    samples: int
    total: float
    scores: np.ndarray
    position_values: pl.DataFrame | None = None


def _journey_keys(journeys: Journeys, *, ordered: bool) -> pl.LazyFrame:
    """One row per journey with touches: its channel key and observation counts.

    The key is the journey's distinct channels, sorted by name (a channel *set*) or, when
    ``ordered``, in the order of their first appearance.
    """
    if not ordered:
        keyed = _set_keys(journeys)
        if keyed is not None:
            return keyed
    by_channel = (
        journeys.touches.select(
            "journey_id",
            "touch_index",
            pl.col("channel").fill_null(UNMAPPED_CHANNEL).alias("channel_key"),
        )
        .group_by("journey_id", "channel_key")
        .agg(pl.col("touch_index").min().alias("first"))
    )
    order = pl.col("channel_key").sort_by("first") if ordered else pl.col("channel_key").sort()
    return (
        by_channel.group_by("journey_id")
        .agg(order.alias("channels"))
        .with_columns(pl.col("channels").list.join(_SEPARATOR).alias("key"))
        .join(journey_observations(journeys), on="journey_id", how="left")
        .with_columns(pl.col("conversions", "trials", "revenue_cents").fill_null(0))
    )


def _set_keys(journeys: Journeys) -> pl.LazyFrame | None:
    """:func:`_journey_keys` for channel sets, through one integer bit mask per journey (an OR
    of its channels' bits, taken over each journey's run of touches (:attr:`Journeys.runs`)
    with one ``reduceat``: no group-by and no text per journey). None beyond 62 channels, where
    a mask does not fit."""
    runs = journeys.runs  # each journey's touches one run of rows (null ids: the last run)
    channel_key = runs.touches.get_column("channel").fill_null(UNMAPPED_CHANNEL)
    names = channel_key.unique().sort()
    if names.len() > 62:
        return None
    code = channel_key.cast(pl.Enum(names.to_list())).to_physical()
    bit = np.left_shift(np.int64(1), code.to_numpy().astype(np.int64))
    starts = runs.starts
    masks = pl.DataFrame([
        runs.touches.get_column("journey_id").gather(starts),
        pl.Series("_mask", np.bitwise_or.reduceat(bit, starts) if starts.size else bit[:0]),
    ])
    distinct = masks.get_column("_mask").unique().sort()
    labels = names.to_list()  # (a list: a Series iterated by index is slow per element)
    members = [[name for b, name in enumerate(labels) if mask >> b & 1] for mask in distinct]
    sets = pl.DataFrame(
        {"_mask": distinct, "channels": members},
        schema={"_mask": pl.Int64, "channels": pl.List(pl.String)},
    ).with_columns(pl.col("channels").list.join(_SEPARATOR).alias("key"))
    return (  # the runs' order kept (what :func:`_weights_on_runs` relies on)
        masks.lazy()
        .join(sets.lazy(), on="_mask", maintain_order="left")
        .drop("_mask")
        .join(journey_observations(journeys), on="journey_id", how="left",
              maintain_order="left")
        .with_columns(pl.col("conversions", "trials", "revenue_cents").fill_null(0))
    )


#: :meth:`ShapleyModel.tally`: distinct channel keys with summed observations
KEY_TALLY_SCHEMA = pl.Schema(
    [("key", pl.String()), ("channels", pl.List(pl.String)), ("journeys", pl.Int64()),
     ("conversions", pl.Int64()), ("trials", pl.Int64()), ("revenue_cents", pl.Int64())]
)


def _key_table(journey_keys: pl.DataFrame) -> pl.DataFrame:
    """Distinct keys, sorted, with summed observations: the only table the game reads."""
    return (
        journey_keys.group_by("key")
        .agg(
            pl.col("channels").first(),
            pl.len().alias("journeys"),
            pl.col("conversions", "trials", "revenue_cents").sum(),
        )
        .sort("key")
    )


def _channels(keys: pl.DataFrame) -> np.ndarray:
    """Sorted distinct channel names (object array); refuses names holding the key separator."""
    names = keys["channels"].explode().unique().sort()
    if names.str.contains(_SEPARATOR, literal=True).any():
        raise ModelError(
            "a channel name contains the control character U+001F, which the Shapley model "
            "uses to join channel names; rename the channel"
        )
    return np.array(names.to_list(), dtype=object)


def _positions(lengths: np.ndarray) -> np.ndarray:
    """1-based position of every member in its key, for keys laid end to end."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts + 1


def _split(scores: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Normalise scores inside each key; a key whose scores are all 0 is split evenly."""
    if len(scores) == 0:
        return np.zeros(0)
    sums = np.add.reduceat(scores, starts)
    sums_each = np.repeat(sums, lengths)
    even = 1.0 / np.repeat(lengths, lengths)
    safe = np.where(sums_each > 0, sums_each, 1.0)
    return np.where(sums_each > 0, scores / safe, even)


def _shares(values: np.ndarray) -> list[float | None]:
    total = float(values.sum())
    if total == 0:
        return [None] * len(values)
    return (values / total).tolist()


def _value_frame(
    channels: np.ndarray, shapley: np.ndarray, standard_error: np.ndarray | None
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "channel": channels.tolist(),
            "shapley_value": shapley.tolist(),
            "share": _shares(shapley),
            "standard_error": (
                [None] * len(channels) if standard_error is None else standard_error.tolist()
            ),
        },
        schema=SHAPLEY_VALUE_SCHEMA,
    )


def _position_frame(
    channels: np.ndarray, by_cell: np.ndarray, width: int, total: float
) -> pl.DataFrame:
    cells = np.flatnonzero(by_cell)
    return pl.DataFrame(
        {
            "channel": channels[cells // width].tolist() if width else [],
            "position": (cells % width + 1).tolist() if width else [],
            "shapley_value": by_cell[cells].tolist(),
            "share": (by_cell[cells] / total).tolist() if total else [None] * len(cells),
        },
        schema=POSITION_VALUE_SCHEMA,
    )


def _shapley_coefficients(n: int) -> np.ndarray:
    """``|S|! (n - |S| - 1)! / n!`` for ``|S|`` = 0..n (0 at n, which never occurs)."""
    return np.array([1.0 / (n * math.comb(n - 1, size)) for size in range(n)] + [0.0])


def _rate_exact(
    flat: np.ndarray, starts: np.ndarray, numerator: np.ndarray, trials: np.ndarray, n: int
) -> np.ndarray:
    """Exact Shapley values of the conversion-rate game over ``n`` players.

    ``flat``/``starts`` list each observed channel set's players end to end. The numerator and
    trial counts of every coalition are subset sums over the sets that occur, built in integers
    with one zeta transform; then for each player ``i``,
    ``phi_i = sum over S without i of coef(|S|) * (v(S + i) - v(S))``.
    """
    if n == 0:
        return np.zeros(0)
    masks = np.bitwise_or.reduceat(np.left_shift(np.int64(1), flat.astype(np.int64)), starts)
    size = 1 << n
    numerator_of = np.zeros(size, dtype=np.int64)
    trials_of = np.zeros(size, dtype=np.int64)
    numerator_of[masks] = numerator  # sets are distinct, so masks are too
    trials_of[masks] = trials
    popcount = np.zeros(size, dtype=np.int8)
    for bit in range(n):
        step = 1 << bit
        for lattice in (numerator_of, trials_of):
            view = lattice.reshape(-1, 2, step)
            view[:, 1, :] += view[:, 0, :]
        popcount.reshape(-1, 2, step)[:, 1, :] += 1
    worth = np.zeros(size)
    np.divide(numerator_of, trials_of, out=worth, where=trials_of > 0)
    coefficient = _shapley_coefficients(n)[popcount]
    values = np.empty(n)
    for bit in range(n):
        step = 1 << bit
        pairs = worth.reshape(-1, 2, step)  # [:, 0]: coalitions without the player; [:, 1]: with
        without = coefficient.reshape(-1, 2, step)[:, 0, :]
        values[bit] = float(np.sum(without * (pairs[:, 1, :] - pairs[:, 0, :])))
    return values


def _rate_sampled(
    flat: np.ndarray,
    starts: np.ndarray,
    numerator: np.ndarray,
    trials: np.ndarray,
    n: int,
    samples: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo Shapley values of the rate game from ``samples`` random channel orders.

    In an order, a channel set joins the growing coalition at the position of its last
    member, so every prefix's worth comes from one bincount and a cumulative sum. Returns the
    mean marginal contribution per player and its standard error.
    """
    rng = np.random.default_rng(seed)
    block = max(1, min(samples, _SAMPLING_BLOCK // max(len(flat), 1)))
    total = np.zeros(n)
    total_squares = np.zeros(n)
    drawn = 0
    positions = np.arange(n)
    while drawn < samples:
        rows = min(block, samples - drawn)
        order = np.argsort(rng.random((rows, n)), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(positions, (rows, n)), axis=1)
        joins = np.maximum.reduceat(rank[:, flat], starts, axis=1)
        cells = (joins + n * np.arange(rows)[:, None]).ravel()
        numerator_at = np.bincount(cells, weights=np.tile(numerator, rows), minlength=rows * n)
        trials_at = np.bincount(cells, weights=np.tile(trials, rows), minlength=rows * n)
        numerator_prefix = np.cumsum(numerator_at.reshape(rows, n), axis=1)
        trials_prefix = np.cumsum(trials_at.reshape(rows, n), axis=1)
        worth = np.zeros((rows, n))
        np.divide(numerator_prefix, trials_prefix, out=worth, where=trials_prefix > 0)
        marginal_at = np.diff(worth, axis=1, prepend=0.0)
        marginal = np.take_along_axis(marginal_at, rank, axis=1)
        total += marginal.sum(axis=0)
        total_squares += np.square(marginal).sum(axis=0)
        drawn += rows
    mean = total / samples
    variance = np.maximum(total_squares / samples - np.square(mean), 0.0) * samples / (samples - 1)
    return mean, np.sqrt(variance / samples)


__all__ = [
    "POSITION_VALUE_SCHEMA",
    "SHAPLEY_VALUE_SCHEMA",
    "VALUES",
    "VARIANTS",
    "ShapleyFit",
    "ShapleyModel",
]
