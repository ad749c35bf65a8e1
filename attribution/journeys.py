"""Buying-group journeys: every touch of every contact at a deal's account, in time order.

A deal's journey holds every touch by any contact of the deal's account (the buying group,
not one lead) between ``created_at - lookback`` and the deal's close (the as-of instant for an
open deal), both ends included. Touches are ordered by time, ties broken by contact, channel,
touch type, campaign and touchpoint id, so the order never depends on the order of input rows.

Inside each journey, touches of the same contact (the account, for touches without one) and
channel that follow the previous one within ``dedup_minutes`` count once (the first is kept): a
chain rule, so a burst of clicks a minute apart is one touch. Deduplicating inside the journey's
window means a touch just inside the window is never dropped for repeating one just outside it.

Milestones of each journey (W-shaped and full-path read them):

* first touch: the earliest touch;
* lead creation: the last touch at or before the earliest ``lead_created_at`` of the buying
  group; the first touch when there is none (no lead date, or every touch came later);
* opportunity creation: the last touch at or before the deal's ``created_at``; the first
  touch when every touch came later;
* closed won: the last touch of a won deal (every touch is at or before its close).

Accounts touched without any deal give non-converting journeys (status ``none``), closed at
the as-of instant. Everything here depends only on each account's own rows and the as-of
instant, so with a given ``as_of`` any split of the data by account gives the same journeys. The
default ``as_of`` is the latest instant in the data given, so a part may close its open and
deal-less journeys earlier (``end_at``); which touches each journey holds does not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from attribution.keys import lookup
from attribution.schema import ACCOUNT_JOURNEY_PREFIX, JOURNEY_SCHEMA, TOUCH_SCHEMA, UTC_TIME


@dataclass(frozen=True)
class JourneyIndex:
    """Where each journey's touches are in a frame of touches: the layout fast code reads.

    A *run* is a block of consecutive rows with one ``journey_id`` (nulls equal to each other);
    ``starts[k]`` is the first row of run ``k`` and ``sizes[k]`` its number of rows, runs in row
    order. :func:`build_journeys` lists each journey's touches as one run, journeys in the order
    of the ``journeys`` frame (the journeys without a touch have no run), ``touch_index`` 0, 1,
    ... along each run, and hands that index over as :attr:`Journeys.index`: per-journey sums,
    maxima and flags are then ``reduceat`` over the runs, path keys are read off the rows, and
    credit checks its order in one pass instead of sorting.

    :meth:`of` is the one definition of a run for any other frame (a model's weights, a
    hand-built journey); ``tests/test_journeys.py`` fails when built journeys lose the layout.
    """

    #: row where each run begins (int64), increasing
    starts: np.ndarray
    #: rows in each run (int64, >= 1)
    sizes: np.ndarray
    #: ``touch_index`` strictly increases along every run (and is never null): touch order
    touch_ordered: bool = False
    #: ``touch_index`` is 0, 1, 2, ... along every run: a run's k-th row is its journey's touch k
    positional: bool = False

    @classmethod
    def of(cls, journey_id: pl.Series, touch_index: pl.Series | None = None) -> JourneyIndex:
        """The runs of equal ``journey_id`` (any dtype) in row order, and whether
        ``touch_index`` (when given) is in touch order along them."""
        rows = journey_id.len()
        begins = np.ones(rows, dtype=bool)
        if rows > 1:  # (slices compared: no shifted copy of the ids)
            begins[1:] = journey_id.slice(1).ne_missing(journey_id.slice(0, rows - 1)).to_numpy()
        starts = np.flatnonzero(begins).astype(np.int64)
        sizes = np.diff(np.r_[starts, rows]).astype(np.int64)
        touch_ordered = positional = rows == 0
        if rows and touch_index is not None and not touch_index.null_count():
            index = touch_index.to_numpy()
            touch_ordered = not (~begins[1:] & (index[1:] <= index[:-1])).any()
            positional = touch_ordered and bool(
                (index[starts] == 0).all() and (index[starts + sizes - 1] == sizes - 1).all())
        return cls(starts, sizes, touch_ordered, positional)

    @classmethod
    def of_sizes(cls, sizes: np.ndarray, *, touch_ordered: bool = False,
                 positional: bool = False) -> JourneyIndex:
        """Runs of ``sizes`` rows (zeros skipped: a journey without rows has no run), back to
        back from row 0."""
        sizes = np.asarray(sizes, dtype=np.int64)
        sizes = sizes[sizes > 0]
        return cls(np.cumsum(sizes) - sizes, sizes, touch_ordered, positional)

    @property
    def runs(self) -> int:
        """How many runs there are."""
        return int(self.starts.size)

    @property
    def rows(self) -> int:
        """How many rows the runs cover."""
        return int(self.sizes.sum())

    def run_of_rows(self) -> np.ndarray:
        """Each row's run number (int64)."""
        return np.repeat(np.arange(self.runs, dtype=np.int64), self.sizes)

    def keys(self, journey_id: pl.Series) -> pl.Series:
        """Each run's key: ``journey_id`` (a column of the indexed rows) at the run's first row."""
        return journey_id.gather(self.starts)

    def select(self, keep: np.ndarray) -> JourneyIndex:
        """The index of the rows ``keep`` marks once the others are filtered out (rows keep
        their order; a run left empty goes). A filter keeps touch order, and the positions when
        it keeps or drops whole runs."""
        kept = self.total(np.asarray(keep, dtype=np.int64))
        whole = bool(((kept == 0) | (kept == self.sizes)).all())
        return JourneyIndex.of_sizes(kept, touch_ordered=self.touch_ordered,
                                     positional=self.positional and whole)

    def followed_by(self, other: JourneyIndex) -> JourneyIndex:
        """This index with ``other``'s runs after it (the rows of two frames concatenated,
        their runs apart)."""
        return JourneyIndex(
            np.r_[self.starts, other.starts + self.rows].astype(np.int64),
            np.r_[self.sizes, other.sizes].astype(np.int64),
            self.touch_ordered and other.touch_ordered,
            self.positional and other.positional,
        )

    def spread(self, per_run: np.ndarray) -> np.ndarray:
        """A value per run repeated along its rows."""
        return np.repeat(per_run, self.sizes)

    def total(self, values: np.ndarray) -> np.ndarray:
        """Each run's sum of ``values`` (in row order)."""
        return np.add.reduceat(values, self.starts) if len(values) else values[:0]

    def any(self, flags: np.ndarray) -> np.ndarray:
        """Whether any row of each run is flagged."""
        return np.logical_or.reduceat(flags, self.starts) if len(flags) else flags[:0]

    def max(self, values: np.ndarray) -> np.ndarray:
        """Each run's largest value."""
        return np.maximum.reduceat(values, self.starts) if len(values) else values[:0]


@dataclass
class DealGather:
    """The deal columns :func:`attribution.credit.allocate` last gathered by credit row, kept
    for the next model of the run that credits the same rows (the touch-level models all
    credit every money touch). Belongs to one :class:`Journeys`; a new one starts empty."""

    #: each credit row's money journey (row of :attr:`Journeys.money`)
    rows: np.ndarray | None = None
    #: ``deal_id``, ``account_id``, ``status``, ``conversions`` of those rows
    columns: pl.DataFrame | None = None


@dataclass(frozen=True)
class Journeys:
    """The journeys every model reads.

    Attributes
    ----------
    touches
        Lazy frame with :data:`attribution.schema.TOUCH_SCHEMA`: one row per touch, ``touch_index``
        0..n-1 in time order inside each ``journey_id``.
    journeys
        Lazy frame with :data:`attribution.schema.JOURNEY_SCHEMA`: one row per journey (deal,
        deal-less account, or path-table row). Journeys with no touch have ``n_touches == 0``
        and no rows in ``touches``.
    has_timestamps
        False when built from an aggregated path table (no time-decay model then).
    has_milestones
        False when built from a path table (no W-shaped / full-path then).
    as_of
        The as-of instant used to close open journeys, if any.
    index
        The layout of ``touches`` (:class:`JourneyIndex`) when it is known: given by
        :func:`build_journeys` (each journey one run in touch order, journeys in
        ``journeys``' order). None for frames of another origin: :attr:`runs` derives it once.
        It describes ``touches``: a ``Journeys`` made with other touches gets its own (or
        None), never this one.
    stated
        The self-reported source of each deal journey whose buying group answered "How did
        you hear about us?" with an answer the ``[self_reported]`` rules map: ``journey_id,
        channel, channel_group`` (:func:`attribution.self_reported.stated_channels`); None when
        the exports carry no self-reported column (the ``self_reported`` and ``blended``
        models then refuse the journeys).
    deal_gather
        What :func:`attribution.credit.allocate` keeps between the models of a run.
    """

    touches: pl.LazyFrame
    journeys: pl.LazyFrame
    has_timestamps: bool = True
    has_milestones: bool = True
    as_of: datetime | None = None
    index: JourneyIndex | None = field(default=None, compare=False)
    stated: pl.DataFrame | None = field(default=None, compare=False)
    #: (not an argument: a new ``Journeys``, ``dataclasses.replace`` included, starts empty)
    deal_gather: DealGather = field(default_factory=DealGather, init=False, compare=False,
                                    repr=False)

    @cached_property
    def runs(self) -> TouchRuns:
        """The touches, collected, with each journey's rows as one run (:class:`TouchRuns`):
        taken once per ``Journeys`` and shared by the models that read it."""
        return TouchRuns.of(self.touches.collect(), self.index)

    @cached_property
    def money(self) -> pl.DataFrame:
        """The journeys that carry money (deals and path rows: every status but ``none``),
        collected once, one chunk per column (gathers by row over many chunks, a filter's
        output, are slow)."""
        return self.journeys.filter(pl.col("status") != "none").collect().rechunk()

    def with_money_only(self) -> Journeys:
        """The journeys that carry money (deals and path rows), without deal-less accounts."""
        money = self.money
        if money.height == self.journeys.select(pl.len()).collect().item():
            # every journey carries money (a path table, deals without deal-less accounts):
            # the touches as they are, not filtered and copied
            return Journeys(touches=self.touches, journeys=money.lazy(),
                            has_timestamps=self.has_timestamps,
                            has_milestones=self.has_milestones, as_of=self.as_of,
                            index=self.index)
        touches = self.touches.collect()
        # a filter on a set of the money journeys' ids (a semi join takes longer)
        keep = touches.get_column("journey_id").is_in(
            money.get_column("journey_id").implode()).fill_null(False)
        return Journeys(
            touches=touches.filter(keep).rechunk().lazy(),
            journeys=money.lazy(),
            has_timestamps=self.has_timestamps,
            has_milestones=self.has_milestones,
            as_of=self.as_of,
            index=None if self.index is None else self.index.select(keep.to_numpy()),
            stated=self.stated,
        )

    @classmethod
    def from_frames(
        cls,
        touches: pl.DataFrame | pl.LazyFrame,
        journeys: pl.DataFrame | pl.LazyFrame,
        *,
        has_timestamps: bool = True,
        has_milestones: bool = True,
        as_of: datetime | None = None,
    ) -> Journeys:
        """Wrap frames, adding any missing contract column as null and casting to the schema."""
        return cls(
            touches=conform(touches.lazy(), TOUCH_SCHEMA),
            journeys=conform(journeys.lazy(), JOURNEY_SCHEMA),
            has_timestamps=has_timestamps,
            has_milestones=has_milestones,
            as_of=as_of,
        )


@dataclass(frozen=True)
class TouchRuns:
    """Touches with each journey's rows together (one run of rows a journey) and their
    :class:`JourneyIndex`: what per-journey sums, maxima and counts are taken over, in numpy
    (``reduceat`` over the runs rather than polars windows over the journey key).

    Built journeys come with their index and are used as they are; any other layout is
    indexed by :meth:`JourneyIndex.of`, and sorted by ``journey_id`` first when a journey is in
    several runs (stably: rows keep their order inside a journey; null ids form the last run).
    """

    touches: pl.DataFrame
    index: JourneyIndex

    @classmethod
    def of(cls, touches: pl.DataFrame, index: JourneyIndex | None = None) -> TouchRuns:
        """``touches`` in runs: as they are with the ``index`` that describes them, else
        indexed (and grouped when they must be) here."""
        if index is not None:
            return cls(touches, index)
        journey = touches.get_column("journey_id")
        ordered = "touch_index" in touches.columns
        touch_index = touches.get_column("touch_index") if ordered else None
        index = JourneyIndex.of(journey, touch_index)
        if index.runs and index.keys(journey).n_unique() != index.runs:  # a journey split up
            touches = touches.sort("journey_id", maintain_order=True, nulls_last=True)
            touch_index = touches.get_column("touch_index") if touch_index is not None else None
            index = JourneyIndex.of(touches.get_column("journey_id"), touch_index)
        return cls(touches, index)

    @property
    def starts(self) -> np.ndarray:
        """Row where each run begins (int64)."""
        return self.index.starts

    @property
    def sizes(self) -> np.ndarray:
        """Rows in each run (int64)."""
        return self.index.sizes

    def spread(self, per_run: np.ndarray) -> np.ndarray:
        """A value per run repeated along its rows."""
        return self.index.spread(per_run)

    def total(self, values: np.ndarray) -> np.ndarray:
        """Each run's sum of ``values`` (in row order)."""
        return self.index.total(values)

    def any(self, flags: np.ndarray) -> np.ndarray:
        """Whether any row of each run is flagged."""
        return self.index.any(flags)

    def max(self, values: np.ndarray) -> np.ndarray:
        """Each run's largest value."""
        return self.index.max(values)


def channel_group_of(touches: pl.LazyFrame) -> pl.LazyFrame:
    """``channel, channel_group``: each channel of the touches once, with its group (the group
    of one of its touches: a channel has one group under the channel rules)."""
    return touches.group_by("channel").agg(pl.col("channel_group").first())


def conform(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """Select exactly ``schema``'s columns, in order, with its dtypes (missing ones as null)."""
    present = set(frame.collect_schema().names())
    return frame.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


@dataclass(frozen=True)
class JourneyStats:
    """What journey building did with the rows it was given."""

    touches_deduplicated: int
    touches_out_of_window: int
    touches_used: int
    deals_out_of_window: int
    deals_without_touch: int
    deal_journeys: int
    account_journeys: int
    as_of: datetime


#: order of touches inside a journey (content only, never input row order)
TOUCH_ORDER = ["timestamp", "contact_id", "channel", "touch_type", "campaign", "touchpoint_id"]


def touch_order(touches: pl.DataFrame, within: str,
                detail: pl.DataFrame | None = None) -> pl.Series:
    """Row numbers of ``touches`` grouped by ``within`` (an integer journey number) and, inside
    each group, ordered by :data:`TOUCH_ORDER` (then utm source and medium).

    Sorting millions of wide rows on many text columns is the slowest step of a run, so only
    the two fixed-width keys (the group and the timestamp) are sorted; the rare rows that tie on
    both are then ordered by the text columns among themselves. The caller gathers the rows
    once, in this order. With ``detail``, ``touches`` holds only ``within``, ``timestamp`` and
    ``_i``, and the text columns of a row are ``detail``'s row ``_i``.
    """
    key = _group_time_key(touches, within)
    if key is not None:  # (journey, time) fit in one integer: a single-column sort
        order = key.to_frame("_key").select(
            pl.int_range(pl.len(), dtype=pl.UInt32).sort_by("_key", maintain_order=True)
        ).to_series()
        ranked = key.gather(order)
        tied = ((ranked == ranked.shift(1)).fill_null(False)
                | (ranked == ranked.shift(-1)).fill_null(False)).arg_true()
    else:
        keys = touches.select(within, "timestamp",
                              pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"))
        keys = keys.sort([within, "timestamp"])  # validated timestamps: never null

        def same(shift: int) -> pl.Expr:
            return (
                (pl.col(within) == pl.col(within).shift(shift))
                & pl.col("timestamp").eq_missing(pl.col("timestamp").shift(shift))
            ).fill_null(False)

        tied = keys.select(pl.arg_where(same(1) | same(-1))).to_series()
        order = keys.get_column("_i")
    if tied.len():
        wanted = [within, *TOUCH_ORDER, "utm_source", "utm_medium"]
        source = touches if detail is None else detail
        columns = [c for c in wanted if c in source.columns or c in (within, "timestamp")]
        rows = order.gather(tied)
        if detail is None:
            block = touches.select(columns)[rows]
        else:
            keys = touches.select(within, "timestamp", "_i")[rows]
            block = detail.select(c for c in columns if c not in (within, "timestamp"))[
                keys.get_column("_i")
            ].with_columns(keys.get_column(within), keys.get_column("timestamp")).select(columns)
        block = block.with_columns(rows.alias("_i"))
        block = block.sort(columns, nulls_last=True, maintain_order=True)
        order = order.scatter(tied, block.get_column("_i"))
    return order


def _group_time_key(touches: pl.DataFrame, within: str) -> pl.Series | None:
    """One Int64 per row that orders as (``within``, ``timestamp``) do, or None when the group
    number and the time span (in the coarsest unit every timestamp is a whole multiple of:
    seconds, milliseconds or microseconds) do not fit in 62 bits together."""
    if touches.height == 0:
        return None
    time = touches.get_column("timestamp").dt.epoch("us")
    low, high = time.min(), time.max()
    assert isinstance(low, int) and isinstance(high, int)  # Int64 epochs, never null, >= 1 row
    unit = next(u for u in (1_000_000, 1_000, 1) if u == 1 or ((time % u) == 0).all())
    width = int((high - low) // unit).bit_length()
    groups = int(touches.get_column(within).max())  # type: ignore[arg-type]
    if groups.bit_length() + width > 62:
        return None
    return touches.get_column(within).cast(pl.Int64) * (1 << width) + (time - low) // unit


def _in_touch_order(pairs: pl.DataFrame, detail: pl.DataFrame) -> pl.DataFrame:
    """``pairs`` (``_i``, ``_jn``, ``timestamp``) in :func:`touch_order` by ``_jn``, the text
    columns of touch ``_i`` being ``detail``'s row ``_i``.

    Exports usually list their touches in time order. Then a touch's row number orders as its
    time does, so one Int64 per pair, ``(journey, row)``, orders as ``(journey, time)`` do and
    is distinct: the keys' values are sorted (no permutation to gather) and the journey and the
    row are read back from them. Pairs that tie on journey and time are then ordered by the text
    columns, as in :func:`touch_order`. The condition: the touches' rows in time order, and the
    journey numbers and row numbers fitting in 63 bits together; otherwise :func:`touch_order`
    itself.
    """
    row_bits = max(detail.height - 1, 1).bit_length()
    times = detail.get_column("timestamp")
    journeys = int(pairs.get_column("_jn").max() or 0)  # type: ignore[arg-type]
    if pairs.height == 0 or journeys.bit_length() + row_bits > 63 or not times.is_sorted():
        return pairs[touch_order(pairs, "_jn", detail=detail)]
    key = (pairs.get_column("_jn").cast(pl.Int64) * (1 << row_bits)
           + pairs.get_column("_i").cast(pl.Int64)).sort()
    rows = (key % (1 << row_bits)).cast(pl.UInt32).alias("_i")
    journey = (key // (1 << row_bits)).cast(pairs.schema["_jn"]).alias("_jn")
    del key
    time = times.gather(rows).alias("timestamp")

    def same(shift: int) -> pl.Series:
        return ((journey == journey.shift(shift)) & (time == time.shift(shift))).fill_null(False)

    tied = (same(1) | same(-1)).arg_true()
    if tied.len():  # a tied run's journey and time are one: only its rows change places
        wanted = ["_jn", *TOUCH_ORDER, "utm_source", "utm_medium"]
        columns = [c for c in wanted if c in detail.columns or c == "_jn"]
        tied_rows = rows.gather(tied)
        block = detail.select(c for c in columns if c != "_jn")[tied_rows].with_columns(
            journey.gather(tied), tied_rows)
        block = block.sort(columns, nulls_last=True, maintain_order=True)
        rows = rows.scatter(tied, block.get_column("_i"))
    return pl.DataFrame([rows, journey, time])


def _distinct_rows(rows: pl.Series) -> int:
    """How many distinct input row numbers ``rows`` holds: marked in a bitmap when they are
    small non-negative integers (file row numbers are), a hash count otherwise."""
    if rows.len() == 0 or rows.null_count():
        return rows.n_unique()
    low, high = rows.min(), rows.max()
    if low < 0 or high > 4 * rows.len() + 1_000_000:  # type: ignore[operator]
        return rows.n_unique()
    seen = np.zeros(int(high) + 1, dtype=np.bool_)  # type: ignore[arg-type]
    seen[rows.to_numpy()] = True
    return int(np.count_nonzero(seen))


def _last_at_or_before(times: np.ndarray, journey: np.ndarray, is_first: np.ndarray,
                       is_last: np.ndarray, moments: pl.Series) -> np.ndarray:
    """Per touch, whether it is its journey's last touch at or before the journey's moment
    (``moments`` by journey number); the journey's first touch when none is, or there is no
    moment.

    Touches come grouped by journey (``is_first``, ``is_last``: a journey's first and last
    rows) and in time order inside each, so the touches at or before the moment are a prefix
    of the journey: the last of them is the one not followed by another in the same journey
    (flags on the rows, no per-journey counts spread back over them).
    """
    physical = moments.cast(UTC_TIME).to_physical()
    at_or_before = times <= physical.fill_null(0).to_numpy()[journey]
    if physical.null_count():
        at_or_before &= physical.is_not_null().to_numpy()[journey]
    followed = np.zeros(len(at_or_before), dtype=bool)
    followed[:-1] = at_or_before[1:] & ~is_last[:-1]
    return (at_or_before & ~followed) | (is_first & ~at_or_before)


#: one hash per (contact, channel) of a touch: within a journey, the touches of a person (the
#: account, for touches without a contact) on one channel
PERSON = pl.struct(pl.coalesce("contact_id", pl.lit("")), "channel").hash(seed=11)


def repeat_flags(ordered: pl.DataFrame, within: str, dedup_minutes: float) -> pl.Series:
    """``_duplicate`` for touches in :func:`touch_order`: the previous touch of the same person
    (contact, else the account) and channel in that order came less than ``dedup_minutes``
    earlier (a chain: a burst of clicks a minute apart is one touch). ``ordered`` holds
    ``within``, ``timestamp`` and either ``_person`` (:data:`PERSON`) or the contact and channel.
    """
    if dedup_minutes <= 0 or ordered.height == 0:
        return pl.Series("_duplicate", [False] * ordered.height, dtype=pl.Boolean)
    person = pl.col("_person") if "_person" in ordered.columns else PERSON
    by_person = ordered.select(
        pl.col(within).alias("_group"),
        person.alias("_person"),
        "timestamp",
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_position"),
    ).sort(["_group", "_person"], maintain_order=True)  # stable: positions stay in order
    same = (pl.col("_group") == pl.col("_group").shift(1)) & (
        pl.col("_person") == pl.col("_person").shift(1)
    )
    gap = pl.col("timestamp") - pl.col("timestamp").shift(1)
    flags = by_person.select(
        "_position", (same & (gap < timedelta(minutes=dedup_minutes))).fill_null(False).alias("f")
    )
    result = np.zeros(ordered.height, dtype=bool)
    result[flags["_position"].to_numpy()] = flags["f"].to_numpy()
    return pl.Series("_duplicate", result)


def _repeats(pairs: pl.DataFrame, touchpoints: pl.DataFrame, dedup_minutes: float) -> pl.Series:
    """:func:`repeat_flags` of ``pairs`` (``_i``, ``_jn``, ``timestamp``, in touch order), looked
    for only among the touches that can repeat or be repeated: the runs of a journey's touches
    each less than ``dedup_minutes`` after the one before (a few percent of them).

    A touch's previous touch of the same person and channel, when it came less than
    ``dedup_minutes`` earlier, is in its run: every touch between the two is closer than that
    to the one before it. A touch whose journey's previous touch came that long before (or
    that begins its journey) begins a run, and a run of one touch holds no repeat. So the runs
    stand for the journeys, and the people and channels of only their touches are read.
    """
    none = pl.Series("_duplicate", np.zeros(pairs.height, dtype=bool))
    if dedup_minutes <= 0 or pairs.height == 0:
        return none
    within = timedelta(minutes=dedup_minutes) // timedelta(microseconds=1)
    journey = pairs.get_column("_jn").to_numpy()
    times = pairs.get_column("timestamp").cast(UTC_TIME).to_physical().to_numpy()
    close = np.zeros(pairs.height, dtype=bool)  # less than dedup_minutes after the touch before
    close[1:] = (journey[1:] == journey[:-1]) & (times[1:] - times[:-1] < within)
    del journey, times
    if not close.any():
        return none
    member = close.copy()
    member[:-1] |= close[1:]  # a run's first touch (the one before a close one) is in it too
    rows = np.flatnonzero(member)
    runs = pl.Series("_run", np.cumsum(~close[rows]), dtype=pl.UInt32)
    candidates = pairs[rows]
    people = touchpoints.select("contact_id", "channel")[candidates.get_column("_i")]
    flags = repeat_flags(
        pl.DataFrame([runs, people.select(PERSON.alias("_person")).to_series(),
                      candidates.get_column("timestamp")]),
        "_run", dedup_minutes,
    )
    result = np.zeros(pairs.height, dtype=bool)
    result[rows] = flags.to_numpy()
    return pl.Series("_duplicate", result)


def _window_pairs(touchpoints: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """``_i`` (touch row), ``_jn`` (journey number) and ``timestamp`` of every touch in a
    window (``account_id``, ``_window_start``, ``end_at``) at its account.

    Joined on 64-bit hashes of the account ids (fixed-width keys, not text); every pair
    is then checked against the text, and any pair of different accounts whose hashes
    collide sends it back to the join on the text: the pairs are always the text join's.
    """
    in_window = (
        ((pl.col("timestamp") >= pl.col("_window_start")) | pl.col("_window_start").is_null())
        & (pl.col("timestamp") <= pl.col("end_at"))
    )
    rows = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i")
    hashed = _account_hash().alias("_account")
    pairs = (
        touchpoints.lazy()
        .select(rows, hashed, "timestamp")
        .join(windows.lazy().with_columns(hashed), on="_account", how="inner")
        .filter(in_window)
        .select("_i", "_jn", "timestamp", "account_id")
        .collect()
    )
    touch_account = touchpoints.get_column("account_id").rechunk().gather(pairs.get_column("_i"))
    if (touch_account == pairs.get_column("account_id")).fill_null(False).all():
        return pairs.drop("account_id").rechunk()
    return (  # hashes of two accounts collide: the text join itself
        touchpoints.lazy()
        .select(rows, "account_id", "timestamp")
        .join(windows.lazy(), on="account_id", how="inner")
        .filter(in_window)
        .select("_i", "_jn", "timestamp")
        .collect()
        .rechunk()
    )


def _account_hash() -> pl.Expr:
    """The 64-bit hash :func:`_window_pairs` joins accounts on (null for a null account, which
    joins nothing, as in the text join)."""
    account = pl.col("account_id")
    return pl.when(account.is_not_null()).then(account.hash(seed=23))


#: the touchpoint columns gathered onto the built touches (the time comes with the pairs)
_GATHERED = ["touchpoint_id", "contact_id", "channel", "channel_group", "touch_type", "campaign"]
#: the release-memory policy of ``build_journeys(consume=True)``: after each stage, the
#: touchpoint columns the later stages still read (every other column is dropped from the
#: caller's frame, so its memory goes during the build rather than after it)
_STILL_READ = {
    "window pairs": {*TOUCH_ORDER, *_GATHERED, "utm_source", "utm_medium"},
    "touch order": set(_GATHERED),
    "gather": set(),
}


class _Release:
    """Carries out :data:`_STILL_READ` on the touchpoints when the build consumes them."""

    def __init__(self, touchpoints: pl.DataFrame, consume: bool) -> None:
        self.touchpoints = touchpoints
        self.consume = consume

    def after(self, stage: str) -> None:
        if self.consume:
            keep = _STILL_READ[stage]
            for name in [c for c in self.touchpoints.columns if c not in keep]:
                self.touchpoints.drop_in_place(name)


@dataclass(frozen=True)
class _Numbered:
    """Every journey numbered 0.. in ``journey_id`` order (deals, then deal-less accounts, as
    listed): the touches carry the number, not the id, until the end."""

    #: ``_jn, journey_id, account_id, status, created_at, _lead_at``, in number order
    table: pl.DataFrame
    #: rows of the listing (deal rows, then account rows) in number order
    by_id: pl.Series
    #: each listed row's number
    rank: np.ndarray
    #: how many of the listed rows are deals
    deals: int


def build_journeys(
    touchpoints: pl.DataFrame,
    deals: pl.DataFrame,
    contacts: pl.DataFrame,
    *,
    lookback_days: int = 180,
    dedup_minutes: float = 30.0,
    as_of: datetime | None = None,
    consume: bool = False,
) -> tuple[Journeys, JourneyStats]:
    """Build buying-group journeys from validated inputs (see :mod:`attribution.loading`).

    Parameters
    ----------
    touchpoints
        ``touchpoint_id, timestamp, contact_id, account_id, channel, channel_group,
        touch_type, campaign`` (utm source and medium optional: they break ties in the touch
        order), one row per input row (the row accounting counts positions).
    deals
        ``deal_id, account_id, created_at, closed_at, status, amount_cents`` (minor units).
    contacts
        ``contact_id, account_id, lead_created_at``.
    as_of
        Closes open deals and deal-less journeys; default: the latest instant in the data.
    consume
        Drop each column of ``touchpoints`` from it, in place, once the build has read it
        (``touchpoints`` is left without columns; :data:`_STILL_READ`). A caller that hands
        over its only copy of the touchpoints frees them during the build rather than after
        it (bench/RESULTS.md has the peak it saves).

    Returns
    -------
    (Journeys, JourneyStats)
        The journeys come with their :class:`JourneyIndex`: each journey's touches one run of
        rows in touch order, journeys in ``journey_id`` order.
    """
    as_of = _default_as_of(touchpoints, deals) if as_of is None else as_of
    release = _Release(touchpoints, consume)
    deal_rows, deals_out = _deal_windows(deals, as_of, lookback_days)
    account_rows = _accounts_without_deal(touchpoints, deal_rows, as_of)
    numbered = _number_journeys(deal_rows, account_rows, contacts)
    rows_read = touchpoints.height
    # (touch, journey) pairs on the key columns alone: the wide rows are gathered once, at the
    # end, in their final order
    pairs = _window_pairs(touchpoints, _windows(deal_rows, account_rows, numbered, as_of))
    release.after("window pairs")
    windowed = _distinct_rows(pairs.get_column("_i"))  # rows in some journey's window
    # one order gives both the journey order and, within each (journey, person, channel), the
    # time order that repeat detection needs
    pairs = _in_touch_order(pairs, touchpoints)
    pairs = pairs.filter(~_repeats(pairs, touchpoints, dedup_minutes))
    release.after("touch order")
    ordered = touchpoints.select(_GATHERED)[pairs.get_column("_i")].with_columns(
        pairs.get_column("timestamp"), pairs.get_column("_jn"))
    release.after("gather")
    used = _distinct_rows(pairs.get_column("_i"))
    del pairs
    counts = np.bincount(ordered.get_column("_jn").to_numpy(),
                         minlength=numbered.table.height).astype(np.uint32)
    touches = _with_milestones(ordered, numbered.table, counts)
    del ordered
    journey_frame = _journey_frame(deal_rows, account_rows, numbered, counts, as_of)
    stats = JourneyStats(
        # row accounting: a row is used if some journey keeps it, deduplicated if it falls in
        # some journey's window but every such journey drops it as a repeat, else out of window
        touches_deduplicated=windowed - used,
        touches_out_of_window=rows_read - windowed,
        touches_used=used,
        deals_out_of_window=deals_out,
        deals_without_touch=int(
            journey_frame.filter((pl.col("status") != "none") & (pl.col("n_touches") == 0)).height
        ),
        deal_journeys=deal_rows.height,
        account_journeys=account_rows.height,
        as_of=as_of,
    )
    journeys = Journeys(
        touches=conform(touches.lazy(), TOUCH_SCHEMA).collect().lazy(),
        journeys=journey_frame.lazy(),
        as_of=as_of,
        # the touches are in journey number order (= the journey frame's), touch_index 0.. in
        # each: the journeys with touches are the runs, of their counts
        index=JourneyIndex.of_sizes(counts, touch_ordered=True, positional=True),
    )
    return journeys, stats


def _default_as_of(touchpoints: pl.DataFrame, deals: pl.DataFrame) -> datetime:
    """The latest instant in the data (1970-01-01 when there is none)."""
    candidates = [
        touchpoints.get_column("timestamp").max(),
        deals.get_column("created_at").max(),
        deals.get_column("closed_at").max(),
    ]
    present: list[datetime] = [c for c in candidates if c is not None]  # type: ignore[misc]
    return max(present) if present else datetime(1970, 1, 1, tzinfo=UTC)


def _deal_windows(deals: pl.DataFrame, as_of: datetime,
                  lookback_days: int) -> tuple[pl.DataFrame, int]:
    """The deals created by ``as_of`` with their status as of then (closed later: open),
    ``end_at`` (the close, else ``as_of``), ``_window_start`` and ``journey_id``; and how many
    deals were created later."""
    as_of_lit = pl.lit(as_of, dtype=UTC_TIME)
    in_scope = deals.filter(pl.col("created_at") <= as_of_lit)
    deal_rows = in_scope.with_columns(
        # a deal closed after the as-of instant is still open as of then
        pl.when(pl.col("closed_at") > as_of_lit)
        .then(pl.lit("open"))
        .otherwise(pl.col("status"))
        .alias("status"),
    ).with_columns(
        pl.when(pl.col("status") == "open").then(None).otherwise(pl.col("closed_at")).alias(
            "closed_at"
        ),
    ).with_columns(
        pl.coalesce("closed_at", as_of_lit).alias("end_at"),
        (pl.col("created_at") - timedelta(days=lookback_days)).alias("_window_start"),
        pl.col("deal_id").alias("journey_id"),
    )
    return deal_rows, deals.height - in_scope.height


def _accounts_without_deal(touchpoints: pl.DataFrame, deal_rows: pl.DataFrame,
                           as_of: datetime) -> pl.DataFrame:
    """``journey_id, account_id, status, created_at`` of each account touched by ``as_of``
    without a deal: a non-converting journey."""
    # (distinct values of millions of text keys: the streaming engine is the faster one)
    return (
        touchpoints.lazy()
        .filter(pl.col("timestamp") <= pl.lit(as_of, dtype=UTC_TIME))
        .select("account_id").unique()
        .join(deal_rows.lazy().select("account_id"), on="account_id", how="anti")
        .select(
            pl.concat_str(pl.lit(ACCOUNT_JOURNEY_PREFIX), pl.col("account_id"))
            .alias("journey_id"),
            "account_id",
            pl.lit("none").alias("status"),
            pl.lit(None, UTC_TIME).alias("created_at"),
        )
        .collect(engine="streaming")
    )


def _number_journeys(deal_rows: pl.DataFrame, account_rows: pl.DataFrame,
                     contacts: pl.DataFrame) -> _Numbered:
    """Every journey numbered in ``journey_id`` order, with its buying group's earliest lead."""
    lead_at = contacts.lazy().group_by("account_id").agg(
        pl.col("lead_created_at").min().alias("_lead_at")).collect(engine="streaming")
    listed = pl.concat(
        [deal_rows.select("journey_id", "account_id", "status", "created_at"), account_rows]
    )
    # journey numbers by position: each listed row gets the rank of its journey_id (no join
    # on the ids)
    by_id = listed.select(pl.arg_sort_by("journey_id", maintain_order=True)).to_series()
    rank = np.empty(listed.height, dtype=np.uint32)
    rank[by_id.to_numpy()] = np.arange(listed.height, dtype=np.uint32)
    table = listed[by_id].with_row_index("_jn")
    # each journey's buying group's earliest lead (a checked hash lookup of the account)
    found = lookup(table.get_column("account_id"), lead_at.get_column("account_id"))
    table = table.with_columns(
        lead_at.get_column("_lead_at").gather(found)
    ).rechunk()  # gathered by touch later
    return _Numbered(table, by_id, rank, deal_rows.height)


def _windows(deal_rows: pl.DataFrame, account_rows: pl.DataFrame, numbered: _Numbered,
             as_of: datetime) -> pl.DataFrame:
    """Every journey's window at its account (``account_id, _jn, _window_start, end_at``): a
    deal's lookback to its end, a deal-less account's everything to the as-of instant."""
    return pl.concat([
        deal_rows.select("account_id", pl.Series("_jn", numbered.rank[:numbered.deals]),
                         "_window_start", "end_at"),
        account_rows.select(
            "account_id", pl.Series("_jn", numbered.rank[numbered.deals:]),
            pl.lit(None, UTC_TIME).alias("_window_start"),
            pl.lit(as_of, dtype=UTC_TIME).alias("end_at"),
        ),
    ])


def _with_milestones(ordered: pl.DataFrame, journey_table: pl.DataFrame,
                     counts: np.ndarray) -> pl.DataFrame:
    """The touches (``ordered``: grouped by journey number ``_jn`` in number order, in touch
    order inside each) with ``touch_index``, their journey's ids and the milestone flags."""
    journey_number = ordered.get_column("_jn").to_numpy()
    first_row = np.cumsum(counts, dtype=np.int64) - counts
    touch_index = np.arange(len(journey_number), dtype=np.int64) - first_row[journey_number]
    is_last = np.ones(len(journey_number), dtype=bool)
    is_last[:-1] = journey_number[1:] != journey_number[:-1]
    times = ordered.get_column("timestamp").cast(UTC_TIME).to_physical().to_numpy()
    is_first = touch_index == 0
    lead_touch = _last_at_or_before(times, journey_number, is_first, is_last,
                                    journey_table.get_column("_lead_at"))
    created_touch = _last_at_or_before(times, journey_number, is_first, is_last,
                                       journey_table.get_column("created_at"))
    del times
    # the journey's status read per journey and spread as booleans (not as text per touch)
    status = journey_table.get_column("status")
    has_deal = (status != "none").to_numpy()[journey_number]
    won = (status == "won").to_numpy()[journey_number]
    return ordered.with_columns(
        pl.Series("touch_index", touch_index, dtype=pl.UInt32),
        *(journey_table.get_column(c).gather(ordered.get_column("_jn"))
          for c in ("journey_id", "account_id")),
        pl.Series("is_first", is_first),
        pl.Series("is_lead_creation", lead_touch),
        pl.Series("is_opportunity_creation", has_deal & created_touch),
        pl.Series("is_closed_won", won & is_last),
    )


def _journey_frame(deal_rows: pl.DataFrame, account_rows: pl.DataFrame, numbered: _Numbered,
                   counts: np.ndarray, as_of: datetime) -> pl.DataFrame:
    """The journeys (:data:`JOURNEY_SCHEMA`) in ``journey_id`` order, as numbered, with their
    touch ``counts`` (by number) and outcomes."""
    as_of_lit = pl.lit(as_of, dtype=UTC_TIME)
    deal_journeys = deal_rows.select(
        "journey_id", "account_id", "deal_id", "status", "amount_cents", "created_at",
        "closed_at", "end_at",
        pl.Series("n_touches", counts[numbered.rank[:numbered.deals]], dtype=pl.UInt32),
        (pl.col("status") == "won").cast(pl.Int64).alias("conversions"),
        (pl.col("status") == "lost").cast(pl.Int64).alias("nulls"),
        pl.when(pl.col("status") == "won").then(pl.col("amount_cents")).otherwise(0)
        .alias("revenue_cents"),
    )
    account_journeys = account_rows.select(
        "journey_id", "account_id", pl.lit(None, pl.String).alias("deal_id"),
        pl.lit("none").alias("status"), pl.lit(0, pl.Int64).alias("amount_cents"),
        pl.lit(None, UTC_TIME).alias("created_at"), pl.lit(None, UTC_TIME).alias("closed_at"),
        as_of_lit.alias("end_at"),
        pl.Series("n_touches", counts[numbered.rank[numbered.deals:]], dtype=pl.UInt32),
        pl.lit(0, pl.Int64).alias("conversions"), pl.lit(1, pl.Int64).alias("nulls"),
        pl.lit(0, pl.Int64).alias("revenue_cents"),
    )
    return pl.concat(
        [conform(deal_journeys.lazy(), JOURNEY_SCHEMA),
         conform(account_journeys.lazy(), JOURNEY_SCHEMA)]
    ).collect()[numbered.by_id].rechunk()
