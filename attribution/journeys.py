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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from attribution.keys import lookup
from attribution.schema import ACCOUNT_JOURNEY_PREFIX, JOURNEY_SCHEMA, TOUCH_SCHEMA, UTC_TIME


@dataclass(frozen=True)
class Journeys:
    """The journeys every model reads.

    Attributes
    ----------
    touches
        Lazy frame with :data:`attribution.schema.TOUCH_SCHEMA`: one row per touch, ``touch_index``
        0..n-1 in time order inside each ``journey_id``. :func:`build_journeys` lists each
        journey's touches as consecutive rows in touch order, journeys in ``journeys``' order
        (models and credit then skip sorting; other layouts are sorted where needed).
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
    """

    touches: pl.LazyFrame
    journeys: pl.LazyFrame
    has_timestamps: bool = True
    has_milestones: bool = True
    as_of: datetime | None = None

    @cached_property
    def runs(self) -> TouchRuns:
        """The touches, collected, with each journey's rows as one run (:class:`TouchRuns`):
        taken once per ``Journeys`` and shared by the models that read it."""
        return TouchRuns.of(self.touches.collect())

    @cached_property
    def money(self) -> pl.DataFrame:
        """The journeys that carry money (deals and path rows: every status but ``none``),
        collected once, one chunk per column (gathers by row over many chunks, a filter's
        output, are slow)."""
        return self.journeys.filter(pl.col("status") != "none").collect().rechunk()

    @cached_property
    def shared(self) -> dict[str, object]:
        """What the models of a run work out once and share, for these journeys only (a new
        ``Journeys`` starts empty): :func:`attribution.credit.allocate` keeps its last gather of
        the deal columns by credit row here, as the touch-level models credit the same rows."""
        return {}

    def with_money_only(self) -> Journeys:
        """The journeys that carry money (deals and path rows), without deal-less accounts."""
        money = self.money
        return Journeys(
            # (a filter on a set of the money journeys: twice as fast as a semi join)
            touches=self.touches.filter(
                pl.col("journey_id").is_in(money.get_column("journey_id").implode())
            ).collect().rechunk().lazy(),
            journeys=money.lazy(),
            has_timestamps=self.has_timestamps,
            has_milestones=self.has_milestones,
            as_of=self.as_of,
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
    """Touches with each journey's rows together (one run of rows a journey), and where the
    runs begin: what per-journey sums, maxima and counts are taken over, in numpy (``reduceat``
    over the runs: several times faster than polars windows over the journey key).

    Built journeys list each journey's touches as one run already and are used as they are;
    any other layout is sorted by ``journey_id`` first (stably: rows keep their order inside a
    journey; null ids form the last run).
    """

    touches: pl.DataFrame
    #: row where each run begins (int64), in row order
    starts: np.ndarray
    #: rows in each run (int64)
    sizes: np.ndarray

    @classmethod
    def of(cls, touches: pl.DataFrame) -> TouchRuns:
        journey = touches.get_column("journey_id")
        begins = journey.ne_missing(journey.shift(1)).fill_null(True)
        runs = int(begins.sum())
        if runs and journey.filter(begins).n_unique() != runs:  # a journey in several runs
            touches = touches.sort("journey_id", maintain_order=True, nulls_last=True)
            journey = touches.get_column("journey_id")
            begins = journey.ne_missing(journey.shift(1)).fill_null(True)
        starts = np.flatnonzero(begins.to_numpy()).astype(np.int64)
        sizes = np.diff(np.r_[starts, touches.height]).astype(np.int64)
        return cls(touches, starts, sizes)

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
    if key is not None:  # one integer key: a single-column sort, about half the time of two
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
        same = lambda shift: (  # noqa: E731
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
    unit = next(u for u in (1_000_000, 1_000, 1) if u == 1 or ((time % u) == 0).all())
    width = int((high - low) // unit).bit_length()  # type: ignore[operator]
    groups = int(touches.get_column(within).max())  # type: ignore[arg-type]
    if groups.bit_length() + width > 62:
        return None
    return touches.get_column(within).cast(pl.Int64) * (1 << width) + (time - low) // unit


def _in_touch_order(pairs: pl.DataFrame, detail: pl.DataFrame) -> pl.DataFrame:
    """``pairs`` (``_i``, ``_jn``, ``timestamp``) in :func:`touch_order` by ``_jn``, the text
    columns of touch ``_i`` being ``detail``'s row ``_i``.

    Exports usually list their touches in time order. Then a touch's row number orders as its
    time does, so one Int64 per pair, ``(journey, row)``, orders as ``(journey, time)`` do and
    is distinct: the keys' values are sorted, no permutation (0.88 -> 0.48 s with the gathers
    after it, at 10^7 touchpoints), and the journey and the row are read back from them. Pairs that tie on
    journey and time are then ordered by the text columns, as in :func:`touch_order`. Touches
    out of time order, or too many rows and journeys for 63 bits: :func:`touch_order` itself.
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
    same = lambda shift: (  # noqa: E731
        (journey == journey.shift(shift)) & (time == time.shift(shift))).fill_null(False)
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
    seen = np.zeros(int(high) + 1, dtype=bool)  # type: ignore[arg-type]
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

    Joined on 64-bit hashes of the account ids (a third faster than on the text); every pair
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


def _release(frame: pl.DataFrame, keep: set[str]) -> None:
    """Drop from ``frame``, in place, every column not in ``keep`` (``build_journeys(consume=True)``)."""
    for name in [c for c in frame.columns if c not in keep]:
        frame.drop_in_place(name)


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
        ``deal_id, account_id, created_at, closed_at, status, amount`` (minor units).
    contacts
        ``contact_id, account_id, lead_created_at``.
    as_of
        Closes open deals and deal-less journeys; default: the latest instant in the data.
    consume
        Drop each column of ``touchpoints`` from it, in place, once the build has read it
        (``touchpoints`` is left without columns). A caller that hands over its only copy of
        the touchpoints frees them during the build rather than after it: at 10^7 touchpoints
        the build's peak is then about 1.4 GB lower.

    Returns
    -------
    (Journeys, JourneyStats)
    """
    if as_of is None:
        candidates = [
            touchpoints.get_column("timestamp").max(),
            deals.get_column("created_at").max(),
            deals.get_column("closed_at").max(),
        ]
        present = [c for c in candidates if c is not None]
        as_of = max(present) if present else datetime(1970, 1, 1, tzinfo=UTC)  # type: ignore[type-var]
    as_of_lit = pl.lit(as_of, dtype=UTC_TIME)
    lookback = timedelta(days=lookback_days)

    in_scope = deals.filter(pl.col("created_at") <= as_of_lit)
    deals_out = deals.height - in_scope.height
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
        (pl.col("created_at") - lookback).alias("_window_start"),
        pl.col("deal_id").alias("journey_id"),
    )

    # (group-bys and distinct values of millions of text keys: the streaming engine takes
    # about half the time of the in-memory one)
    lead_at = contacts.lazy().group_by("account_id").agg(
        pl.col("lead_created_at").min().alias("_lead_at")).collect(engine="streaming")
    # every journey, numbered 0.. in journey_id order: deals, and accounts touched (by the as-of
    # instant) without a deal. Touches carry the number, not the id, until the end.
    account_rows = (
        touchpoints.lazy().filter(pl.col("timestamp") <= as_of_lit).select("account_id").unique()
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
    listed = pl.concat(
        [deal_rows.select("journey_id", "account_id", "status", "created_at"), account_rows]
    )
    # journey numbers by position: the deal rows, then the account rows, each get the rank of
    # their journey_id (no join on the ids)
    by_id = listed.select(pl.arg_sort_by("journey_id", maintain_order=True)).to_series()
    rank = np.empty(listed.height, dtype=np.uint32)
    rank[by_id.to_numpy()] = np.arange(listed.height, dtype=np.uint32)
    deal_number = pl.Series("_jn", rank[:deal_rows.height])
    account_number = pl.Series("_jn", rank[deal_rows.height:])
    journey_table = listed[by_id].with_row_index("_jn")
    # each journey's buying group's earliest lead (a checked hash lookup of the account)
    found = lookup(journey_table.get_column("account_id"), lead_at.get_column("account_id"))
    journey_table = journey_table.with_columns(
        lead_at.get_column("_lead_at").gather(found)
    ).rechunk()  # gathered by touch below
    # every journey's window at its account (a deal-less account's runs to the as-of instant):
    # one join of the touches finds every (touch, journey) pair
    windows = pl.concat([
        deal_rows.select("account_id", deal_number, "_window_start", "end_at"),
        account_rows.select(
            "account_id", account_number, pl.lit(None, UTC_TIME).alias("_window_start"),
            as_of_lit.alias("end_at"),
        ),
    ])
    # (touch, journey) pairs on the key columns alone: the wide rows are gathered once, at the
    # end, in their final order (joining and reordering them whole cost 1.5x the time and held
    # two copies of the touches)
    pairs = _window_pairs(touchpoints, windows)
    rows_read = touchpoints.height
    wide = ["touchpoint_id", "timestamp", "contact_id", "channel", "channel_group", "touch_type",
            "campaign"]
    if consume:  # what the touch order, the repeats and the final gather no longer read
        _release(touchpoints, keep={*TOUCH_ORDER, *wide, "utm_source", "utm_medium"})
    # rows that fall in some journey's window (for the accounting); positions stand for rows
    windowed = _distinct_rows(pairs.get_column("_i"))
    # one order gives both the journey order and, within each (journey, person, channel), the
    # time order that repeat detection needs
    pairs = _in_touch_order(pairs, touchpoints)
    pairs = pairs.filter(~_repeats(pairs, touchpoints, dedup_minutes))
    gathered = [c for c in wide if c != "timestamp"]  # the pairs have the time, in order
    if consume:
        _release(touchpoints, keep=set(gathered))
    ordered = touchpoints.select(gathered)[pairs.get_column("_i")].with_columns(
        pairs.get_column("timestamp"), pairs.get_column("_jn"))
    if consume:
        _release(touchpoints, keep=set())
    used = _distinct_rows(pairs.get_column("_i"))
    del pairs
    journey_number = ordered.get_column("_jn").to_numpy()
    counts = np.bincount(journey_number, minlength=journey_table.height).astype(np.uint32)
    first_row = np.cumsum(counts, dtype=np.int64) - counts
    touch_index = np.arange(len(journey_number), dtype=np.int64) - first_row[journey_number]
    is_last = np.ones(len(journey_number), dtype=bool)
    is_last[:-1] = journey_number[1:] != journey_number[:-1]
    # row accounting: a row is used if some journey keeps it, deduplicated if it falls in some
    # journey's window but every such journey drops it as a repeat, else out of window
    duplicates = windowed - used

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
    touches = ordered.with_columns(
        pl.Series("touch_index", touch_index, dtype=pl.UInt32),
        *(journey_table.get_column(c).gather(ordered.get_column("_jn"))
          for c in ("journey_id", "account_id")),
        pl.Series("is_first", is_first),
        pl.Series("is_lead_creation", lead_touch),
        pl.Series("is_opportunity_creation", has_deal & created_touch),
        pl.Series("is_closed_won", won & is_last),
    )
    del has_deal, won
    del ordered
    deal_journeys = deal_rows.select(
        "journey_id", "account_id", "deal_id", "status", "amount", "created_at", "closed_at",
        "end_at", pl.Series("n_touches", counts[rank[:deal_rows.height]], dtype=pl.UInt32),
        (pl.col("status") == "won").cast(pl.Int64).alias("conversions"),
        (pl.col("status") == "lost").cast(pl.Int64).alias("nulls"),
        pl.when(pl.col("status") == "won").then(pl.col("amount")).otherwise(0).alias("revenue"),
    )
    account_journeys = account_rows.select(
        "journey_id", "account_id", pl.lit(None, pl.String).alias("deal_id"),
        pl.lit("none").alias("status"), pl.lit(0, pl.Int64).alias("amount"),
        pl.lit(None, UTC_TIME).alias("created_at"), pl.lit(None, UTC_TIME).alias("closed_at"),
        as_of_lit.alias("end_at"),
        pl.Series("n_touches", counts[rank[deal_rows.height:]], dtype=pl.UInt32),
        pl.lit(0, pl.Int64).alias("conversions"), pl.lit(1, pl.Int64).alias("nulls"),
        pl.lit(0, pl.Int64).alias("revenue"),
    )
    journey_frame = pl.concat(
        [conform(deal_journeys.lazy(), JOURNEY_SCHEMA), conform(account_journeys.lazy(), JOURNEY_SCHEMA)]
    ).collect()[by_id].rechunk()  # in journey_id order, as numbered
    stats = JourneyStats(
        touches_deduplicated=duplicates,
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
    )
    return journeys, stats
