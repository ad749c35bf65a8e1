"""The path graph: journeys as a Markov chain of channels (or channel windows), in aggregate.

Counting is polars work over all journeys: journeys are first reduced to *distinct paths* (one
row per distinct sequence of channels, with its conversions, nulls and conversion value), and
only those are turned into states and transitions. The graph holds aggregates, never one node
per touch.

Outcomes (the absorbing nodes ``(conversion)`` and ``(null)``):

* a won deal is one conversion carrying its revenue; a lost deal and a deal-less account
  (status ``none``) are one null; a path-table row (status ``path``) brings its own
  ``conversions``, ``nulls`` and ``revenue_cents``;
* open deals are pipeline, neither converted nor lost: left out unless ``include_open=True``,
  which counts them as nulls (not converted yet);
* journeys without touches have no path and are left out.

States for ``order`` k follow ChannelAttribution (Altomare & Loris): a state is a window of k
consecutive channels, ``a > b > c > d`` at order 2 being ``(start) → a > b → b > c → c > d``;
a journey shorter than k is a single state made of its whole path. At order 1 a state is a
channel. Removing a channel removes every state that contains it.

Public pieces: :func:`distinct_paths`, :func:`state_chain`, :func:`transition_table`,
:func:`path_graph` (networkx), the statistics :func:`top_paths`,
:func:`path_length_distribution`, :func:`time_to_close_distribution`, and the exports
:func:`write_graphml` / :func:`read_graphml` / :func:`to_node_link_json` /
:func:`from_node_link_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from attribution.errors import ConfigError, InputError
from attribution.journeys import JourneyIndex, Journeys
from attribution.schema import schema_of

if TYPE_CHECKING:  # imported where a graph is made or read: slow to import, rarely needed
    import networkx as nx
    import scipy.sparse as sp

START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"
#: separator of channels inside a state's display name (order > 1)
STATE_SEPARATOR = " > "
#: separator used internally to join a journey's channels into one key
_KEY_SEPARATOR = "\x1f"
MAX_ORDER = 4

DISTINCT_PATH_SCHEMA = schema_of(
    {
        "path_id": pl.UInt32,
        "channels": pl.List(pl.String),
        "conversions": pl.Int64,
        "nulls": pl.Int64,
        "revenue_cents": pl.Int64,
    }
)


# -- outcomes and distinct paths ---------------------------------------------------------------
def journey_outcomes(journeys: Journeys, *, include_open: bool = False) -> pl.LazyFrame:
    """One row per counted journey: ``journey_id, status, conversions, nulls, revenue_cents``
    (Int64).

    See the module docstring for which statuses count as what.
    """
    return journeys.journeys.filter(_counted(include_open)).select(
        "journey_id", "status", *_outcome_columns()
    )


def _counted(include_open: bool) -> pl.Expr:
    """Whether a journey counts (see :func:`journey_outcomes`)."""
    null_statuses = ["lost", "none", "open"] if include_open else ["lost", "none"]
    return pl.col("status").is_in(["won", "path", *null_statuses]).fill_null(False)


def _outcome_columns() -> list[pl.Expr]:
    """``conversions, nulls, revenue_cents`` of a counted journey: a path row's own counts, else by
    its status (a won deal: one conversion carrying its revenue; any other: one null)."""
    status = pl.col("status")

    def by_status(name: str, won: int | pl.Expr, other: int) -> pl.Expr:
        return (pl.when(status == "path").then(pl.col(name).fill_null(0))
                .when(status == "won").then(won).otherwise(other).cast(pl.Int64).alias(name))

    return [by_status("conversions", 1, 0), by_status("nulls", 0, 1),
            by_status("revenue_cents", pl.coalesce("revenue_cents", "amount_cents", pl.lit(0)), 0)]


def distinct_paths(journeys: Journeys, *, include_open: bool = False) -> pl.DataFrame:
    """Reduce journeys to distinct paths with their outcome counts.

    Returns
    -------
    polars.DataFrame
        :data:`DISTINCT_PATH_SCHEMA`: ``path_id`` (0.. in path order), ``channels`` (list),
        ``conversions``, ``nulls``, ``revenue_cents`` (minor units). Sorted by path, so the same
        journeys always give the same ids.
    """
    coded = path_codes(journeys, include_open=include_open)
    lists = _channel_lists(coded.codes, coded.lengths, coded.channels)
    return (
        pl.DataFrame(
            {
                "channels": lists,
                "conversions": coded.conversions,
                "nulls": coded.nulls,
                "revenue_cents": coded.revenue,
            }
        )
        .with_columns(pl.col("channels").list.join(_KEY_SEPARATOR).alias("_sort"))
        .sort("_sort")
        .select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("path_id"),
            pl.col("channels").cast(pl.List(pl.String)),
            pl.col("conversions").cast(pl.Int64),
            pl.col("nulls").cast(pl.Int64),
            pl.col("revenue_cents").cast(pl.Int64),
        )
    )


@dataclass(frozen=True)
class PathCodes:
    """Distinct paths as integer channel codes: what :func:`state_chain` encodes.

    Attributes
    ----------
    channels
        Sorted distinct channels; code ``c`` (1..n) stands for ``channels[c - 1]``.
    codes
        Every path's channel codes back to back, in touch order (int64).
    lengths
        Each path's number of touches (int64, >= 1).
    conversions, nulls, revenue
        Each path's outcome counts and conversion value (minor units), int64.
    """

    channels: list[str]
    codes: np.ndarray
    lengths: np.ndarray
    conversions: np.ndarray
    nulls: np.ndarray
    revenue: np.ndarray

    @classmethod
    def from_paths(cls, paths: pl.DataFrame) -> PathCodes:
        """Codes of a :func:`distinct_paths` table (or any table with its columns)."""
        flat = paths["channels"].explode(empty_as_null=False)
        channels = sorted(flat.drop_nulls().unique().to_list())
        codes = flat.cast(pl.Enum(channels)).to_physical().to_numpy().astype(np.int64) + 1
        return cls(
            channels=channels,
            codes=codes,
            lengths=paths["channels"].list.len().to_numpy().astype(np.int64),
            conversions=paths["conversions"].to_numpy().astype(np.int64),
            nulls=paths["nulls"].to_numpy().astype(np.int64),
            revenue=paths["revenue_cents"].to_numpy().astype(np.int64),
        )


def path_codes(journeys: Journeys, *, include_open: bool = False) -> PathCodes:
    """Reduce journeys to distinct paths, as integer codes (see :func:`distinct_paths`).

    A journey's path becomes one exact integer key, ``sum(code_i * base ** i)`` over its
    touches (channel codes 1..n in bijective base ``n + 1``, so every path has its own key),
    which makes finding the distinct paths an integer group-by. The keys are sums over each
    journey's run of rows and a path's codes are read off the rows of any of its journeys,
    which needs each journey's touches as one run in touch order: the layout
    :func:`~attribution.journeys.build_journeys` gives (``journeys.index``); touches in any
    other layout are sorted into it first (by journey, then ``touch_index``; a touch's position
    in its run stands for its place in the path). Paths too long for a 63-bit key are grouped
    by their codes as bytes. Paths come ordered by key (the long ones last, by path): the same
    journeys always give the same order.
    """
    touches = journeys.touches.select(
        "journey_id", "touch_index", pl.col("channel").fill_null("")
    ).collect()
    index = journeys.index or JourneyIndex.of(touches.get_column("journey_id"),
                                              touches.get_column("touch_index"))
    if not index.positional:
        touches = touches.sort("journey_id", "touch_index", nulls_last=True, maintain_order=True)
        index = JourneyIndex.of(touches.get_column("journey_id"))
    channels = touches.get_column("channel").unique().sort().to_list()
    base = len(channels) + 1
    max_length = max(1, int(62 // np.log2(max(base, 2))))
    code = touches.get_column("channel").cast(pl.Enum(channels)).to_physical().to_numpy()
    code = code.astype(np.int64) + 1
    keyed = _journey_keys(touches, index, code, base, max_length)
    per_journey = _with_outcomes(keyed, journeys, include_open)
    sums = [pl.col(name).sum() for name in PATH_SUMS]
    # any journey of a path shows its codes: its run of rows, from ``_start``
    short = (
        per_journey.filter(pl.col("_length") <= max_length)
        .group_by("_key")
        .agg(*sums, pl.col("_length").first(), pl.col("_start").first())
        .sort("_key")
    )
    short_lengths = short["_length"].to_numpy().astype(np.int64)
    short_codes = code[_spans(short["_start"].to_numpy(), short_lengths)]
    long_ids = per_journey.filter(pl.col("_length") > max_length)
    long = short.select(*PATH_SUMS).clear().with_columns(
        pl.lit(None, pl.List(pl.String)).alias("channels")
    )
    if long_ids.height:  # rare: paths too long for an integer key, grouped by their codes as
        # bytes; lists made for the distinct ones only
        lengths = long_ids["_length"].to_numpy().astype(np.int64)
        path = _code_bytes(code[_spans(long_ids["_start"].to_numpy(), lengths)], lengths)
        distinct = (
            long_ids.select(*PATH_SUMS, "_length", "_start").with_columns(path.alias("_path"))
            .group_by("_path").agg(*sums, pl.col("_length").first(), pl.col("_start").first())
        )
        lengths = distinct["_length"].to_numpy().astype(np.int64)
        lists = _channel_lists(code[_spans(distinct["_start"].to_numpy(), lengths)], lengths,
                               channels)
        long = (distinct.select(*PATH_SUMS).with_columns(lists.alias("channels"))
                .sort(pl.col("channels").list.join(_KEY_SEPARATOR)))
    long_codes = long["channels"].explode().cast(pl.Enum(channels)).to_physical().to_numpy()
    frame = pl.concat([short.select(long.drop("channels").columns), long.drop("channels")])
    codes = np.concatenate([short_codes, long_codes.astype(np.int64) + 1])
    # only the channels of counted journeys (open deals may bring others), renumbered 1..m
    present = np.bincount(codes, minlength=base) > 0
    present[0] = False
    renumber = np.cumsum(present)
    return PathCodes(
        channels=[c for c, keep in zip(channels, present[1:], strict=True) if keep],
        codes=renumber[codes],
        lengths=np.concatenate([short_lengths, long["channels"].list.len().to_numpy()]).astype(
            np.int64
        ),
        conversions=frame["conversions"].to_numpy().astype(np.int64),
        nulls=frame["nulls"].to_numpy().astype(np.int64),
        revenue=frame["revenue_cents"].to_numpy().astype(np.int64),
    )


PATH_SUMS = ("conversions", "nulls", "revenue_cents")


def _code_bytes(codes: np.ndarray, lengths: np.ndarray) -> pl.Series:
    """Paths of channel codes (back to back, ``lengths`` each) as one binary value a path,
    equal exactly when the paths are (what grouping the long paths needs)."""
    import pyarrow as pa  # here: only paths too long for an integer key need it

    data = codes.astype("<u4").view(np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths) * 4]).astype(np.int64)
    array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pl.Series(pl.from_arrow(array))


def _journey_keys(
    touches: pl.DataFrame, index: JourneyIndex, code: np.ndarray, base: int, max_length: int
) -> pl.DataFrame:
    """``journey_id, _key, _length, _start`` per run of ``index`` (each journey's touches one
    run in touch order): the path's key (only exact up to ``max_length`` touches), its length
    and the row of its first touch. A touch's place in the path is its position in the run."""
    powers = np.zeros(max_length + 1, dtype=np.int64)
    powers[:max_length] = np.int64(base) ** np.arange(max_length, dtype=np.int64)
    position = np.arange(len(code), dtype=np.int64) - index.spread(index.starts)
    term = code * powers[np.minimum(position, max_length)]
    return pl.DataFrame(
        {
            "journey_id": index.keys(touches.get_column("journey_id")),
            "_key": index.total(term),
            "_length": index.sizes,
            "_start": index.starts,
        }
    )


def _with_outcomes(keyed: pl.DataFrame, journeys: Journeys, include_open: bool) -> pl.DataFrame:
    """``keyed`` (a row per journey with touches) with the outcomes of its counted journeys
    (:func:`journey_outcomes`; the others dropped). Side by side, without a join, when the
    journeys with touches are ``keyed``'s, in its order (as built)."""
    ids = keyed.get_column("journey_id")
    touched = journeys.journeys.filter(pl.col("n_touches") > 0).collect()
    if touched.get_column("journey_id").equals(ids):
        outcomes = touched.select(_counted(include_open).alias("_counted"), *_outcome_columns())
        return (pl.concat([keyed, outcomes], how="horizontal")
                .filter(pl.col("_counted")).drop("_counted"))
    outcomes = journey_outcomes(journeys, include_open=include_open).collect()
    return keyed.join(outcomes.drop("status"), on="journey_id")


def _channel_lists(codes: np.ndarray, lengths: np.ndarray, channels: list[str]) -> pl.Series:
    """Channel codes (1..n, back to back) as one list of channel names per path."""
    import pyarrow as pa  # here: only paths too long for an integer key need it

    # arrays made by polars, not pa.array: that imports pandas when it is installed
    values = pl.Series(channels, dtype=pl.String).gather(codes - 1).to_arrow()
    offsets = pl.Series(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)).to_arrow()
    return pl.Series(pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values)))


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row numbers ``start, start + 1, ..., start + length - 1`` of each span, back to back."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


# -- the state chain ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StateChain:
    """Distinct paths encoded as walks over integer states, ready for counting and solving.

    Node ids: 0 is ``(start)``, 1..S the states (sorted by their channels); the absorbing
    nodes are not numbered. Per-path arrays are indexed by ``path_id``.

    Attributes
    ----------
    order
        Markov order k.
    states
        Display name of state i+1 at position i (``"a > b"`` at order 2).
    channels
        Sorted distinct channels.
    contains
        Boolean matrix (S+1, n_channels): node i contains channel j (row 0, the start: none).
    edge_from, edge_to
        The distinct transient transitions (start→state and state→state).
    incidence
        Sparse (n_edges, n_paths): how many times each path makes each transition.
    last_state
        Node id of each path's last state (where its conversions and nulls leave from).
    conversions, nulls, revenue
        Each distinct path's outcome counts and conversion value (minor units), int64.
    """

    order: int
    states: list[str]
    channels: list[str]
    contains: np.ndarray
    edge_from: np.ndarray
    edge_to: np.ndarray
    incidence: sp.csc_matrix
    last_state: np.ndarray
    conversions: np.ndarray
    nulls: np.ndarray
    revenue: np.ndarray
    #: the channels of state i+1 at position i (what ``states`` names, without joining them)
    windows: tuple[tuple[str, ...], ...] = ()

    @property
    def n_nodes(self) -> int:
        """Transient nodes: the start and every state."""
        return len(self.states) + 1

    def node_names(self) -> list[str]:
        return [START, *self.states]

    def counts(
        self,
        conversions: np.ndarray | None = None,
        nulls: np.ndarray | None = None,
        revenue: np.ndarray | None = None,
    ) -> TransitionCounts:
        """Transition counts for these per-path outcomes (the chain's own by default)."""
        conversions = self.conversions if conversions is None else conversions
        nulls = self.nulls if nulls is None else nulls
        revenue = self.revenue if revenue is None else revenue
        weight = (conversions + nulls).astype(np.float64)
        n = self.n_nodes
        return TransitionCounts(
            edge=self.incidence @ weight,
            edge_conversions=self.incidence @ conversions.astype(np.float64),
            edge_value=self.incidence @ revenue.astype(np.float64),
            conversion=np.bincount(self.last_state, weights=conversions, minlength=n),
            null=np.bincount(self.last_state, weights=nulls, minlength=n),
            value=np.bincount(self.last_state, weights=revenue, minlength=n),
        )


@dataclass(frozen=True)
class TransitionCounts:
    """Counts on a :class:`StateChain`: transient edges, and per node the absorbing exits."""

    edge: np.ndarray  # journeys making each transient transition (with repeats)
    edge_conversions: np.ndarray  # of which converting journeys
    edge_value: np.ndarray  # their conversion value
    conversion: np.ndarray  # per node: journeys converting from it
    null: np.ndarray  # per node: journeys ending without conversion from it
    value: np.ndarray  # per node: conversion value leaving to (conversion)


def state_chain(paths: pl.DataFrame | PathCodes, order: int = 1) -> StateChain:
    """Encode distinct paths (from :func:`distinct_paths` or :func:`path_codes`) as walks over
    order-``order`` states.

    Vectorised with numpy: a window of ``order`` channel codes becomes one int64 key (base
    ``n_channels + 1`` digits, 0 padding short windows), so finding the distinct states is one
    integer sort.
    """
    check_order(order)
    coded = paths if isinstance(paths, PathCodes) else PathCodes.from_paths(paths)
    n_paths = len(coded.lengths)
    channels = coded.channels
    base = len(channels) + 1
    if base ** order >= 2**62:
        raise ConfigError(f"too many channels ({len(channels)}) for Markov order {order}")
    codes, lengths = coded.codes, coded.lengths
    # a walk of k-channel windows: every window that starts a full k channels from the end,
    # and the whole path as one state when it is shorter than k; path i's walk is the
    # ``steps[i]`` keys from ``walk_starts[i]`` on
    steps = np.maximum(lengths - order + 1, 1)
    walk_starts = np.cumsum(steps) - steps
    if order == 1:  # the windows are the codes themselves
        key = codes
    else:
        total = int(lengths.sum())
        path_of = np.repeat(np.arange(n_paths, dtype=np.int64), lengths)
        position = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths,
                                                                 lengths)
        key = codes.copy()
        for step in range(1, order):  # the channel ``step`` touches ahead, 0 past the path's end
            same = path_of[step:] == path_of[:-step]
            digit = np.zeros(total, dtype=np.int64)
            digit[:-step][same] = codes[step:][same]
            key = key * base + digit
        key = key[position < np.repeat(steps, lengths)]
        del path_of, position
    state_key, node = _unique(key, base**order)
    node += 1  # (a fresh array: numbered in place, as are the edges below, to spare memory)
    n_nodes = len(state_key) + 1

    contains = np.zeros((n_nodes, len(channels)), dtype=bool)
    names = np.array(channels + [""], dtype=object)
    parts = []
    for step in range(order):
        digit = (state_key // base ** (order - 1 - step)) % base
        present = digit > 0
        contains[np.flatnonzero(present) + 1, digit[present] - 1] = True
        # typed: an object array whose names are all "" is not read as text by polars
        named = pl.Series(names[digit - 1], dtype=pl.String)
        parts.append(named.replace("", None) if step else named)
    states = (
        pl.DataFrame({f"c{i}": part for i, part in enumerate(parts)},
                     schema={f"c{i}": pl.String for i in range(order)})
        .select(pl.concat_str(pl.all(), separator=STATE_SEPARATOR, ignore_nulls=True))
        .to_series()
        .to_list()
        if len(state_key)
        else []
    )
    # by the digits, not the names: a null channel is named "" in a path's codes
    digits = [((state_key // base ** (order - 1 - step)) % base).tolist()
              for step in range(order)]
    windows = tuple(
        tuple(channels[d - 1] for d in window if d > 0) for window in zip(*digits, strict=True)
    )

    edges = np.empty_like(node)  # (previous state, state) as one key: 0 before a walk
    edges[1:] = node[:-1]
    edges[walk_starts] = 0
    edges *= n_nodes
    edges += node
    edge_key, edge_index = _unique(edges, n_nodes * n_nodes)
    del edges
    # one column per path, its walk's steps in order (repeats are summed by the products)
    import scipy.sparse as sp  # here: slow to import, and only chains need it

    incidence = sp.csc_matrix(
        (np.ones(len(node)), edge_index, np.concatenate([[0], np.cumsum(steps)])),
        shape=(len(edge_key), n_paths),
    )
    last_state = node[walk_starts + steps - 1].astype(np.int64)
    return StateChain(
        order=order,
        states=states,
        channels=channels,
        contains=contains,
        edge_from=edge_key // n_nodes,
        edge_to=edge_key % n_nodes,
        incidence=incidence,
        last_state=last_state,
        conversions=coded.conversions,
        nulls=coded.nulls,
        revenue=coded.revenue,
        windows=windows,
    )


#: a chain's transient transitions keyed by their states' channels, and its exits per state:
#: sums over disjoint sets of journeys add up to the whole's (:func:`chain_tallies`)
CHAIN_EDGE_SCHEMA = pl.Schema(
    [("from_window", pl.List(pl.String)), ("to_window", pl.List(pl.String)),
     ("edge", pl.Int64()), ("edge_conversions", pl.Int64()), ("edge_value", pl.Int64())]
)
CHAIN_EXIT_SCHEMA = pl.Schema(
    [("window", pl.List(pl.String)), ("conversion", pl.Int64()), ("null", pl.Int64()),
     ("value", pl.Int64())]
)


def chain_tallies(chain: StateChain) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The chain's :class:`TransitionCounts` keyed by state windows instead of node numbers
    (``CHAIN_EDGE_SCHEMA``, ``CHAIN_EXIT_SCHEMA``; the start is the empty window).

    Node numbers depend on which states a set of journeys has; windows do not, so the tallies
    of disjoint sets of journeys add up (:func:`chain_from_tallies`). Their size is bounded by
    the chain (states and transitions), not by the journeys.
    """
    counts = chain.counts()
    windows: list[list[str]] = [[], *[list(w) for w in chain.windows]]
    edges = pl.DataFrame(
        {
            "from_window": [windows[i] for i in chain.edge_from],
            "to_window": [windows[i] for i in chain.edge_to],
            "edge": np.rint(counts.edge).astype(np.int64),
            "edge_conversions": np.rint(counts.edge_conversions).astype(np.int64),
            "edge_value": np.rint(counts.edge_value).astype(np.int64),
        },
        schema=CHAIN_EDGE_SCHEMA,
    )
    exits = pl.DataFrame(
        {
            "window": windows,
            "conversion": np.rint(counts.conversion).astype(np.int64),
            "null": np.rint(counts.null).astype(np.int64),
            "value": np.rint(counts.value).astype(np.int64),
        },
        schema=CHAIN_EXIT_SCHEMA,
    ).filter((pl.col("conversion") != 0) | (pl.col("null") != 0) | (pl.col("value") != 0))
    return edges, exits


def chain_from_tallies(order: int, edges: pl.DataFrame,
                       exits: pl.DataFrame) -> tuple[StateChain, TransitionCounts]:
    """The chain and counts that :func:`state_chain` and :meth:`StateChain.counts` give on
    the journeys whose :func:`chain_tallies` are ``edges`` and ``exits`` (summed here, over
    any number of parts): the same states in the same order (windows numbered by their
    channel codes, as :func:`state_chain` numbers them), the same transitions and counts, so
    the same removal effects to the last bit. It has no paths (``incidence`` has no columns):
    what needs the paths themselves (a bootstrap over them) needs the path counts."""
    import scipy.sparse as sp  # here: slow to import, and only chains need it

    check_order(order)
    sums = [pl.col(c).sum() for c in ("edge", "edge_conversions", "edge_value")]
    edges = edges.group_by("from_window", "to_window").agg(*sums)
    exits = exits.group_by("window").agg(pl.col("conversion", "null", "value").sum())
    seen = {tuple(w) for w in edges["to_window"].to_list()}
    seen |= {tuple(w) for w in exits["window"].to_list() if w}
    channels = sorted({c for window in seen for c in window})
    code = {c: i + 1 for i, c in enumerate(channels)}
    base = len(channels) + 1

    def key(window: tuple[str, ...]) -> int:
        value = 0
        for step in range(order):
            value = value * base + (code[window[step]] if step < len(window) else 0)
        return value

    windows = tuple(sorted(seen, key=key))
    node = {window: i + 1 for i, window in enumerate(windows)}
    node[()] = 0
    n_nodes = len(windows) + 1
    contains = np.zeros((n_nodes, len(channels)), dtype=bool)
    for window, number in node.items():
        for channel in window:
            contains[number, code[channel] - 1] = True
    edge_key = np.array(
        [node[tuple(f)] * n_nodes + node[tuple(t)]
         for f, t in zip(edges["from_window"].to_list(), edges["to_window"].to_list(),
                         strict=True)],
        dtype=np.int64,
    )
    ordered = np.argsort(edge_key, kind="stable")
    edge_key = edge_key[ordered]

    def column(frame: pl.DataFrame, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        values = frame[name].to_numpy().astype(np.float64)
        return values if rows is None else values[rows]

    exit_nodes = np.array([node[tuple(w)] for w in exits["window"].to_list()], dtype=np.int64)

    def per_node(name: str) -> np.ndarray:
        return np.bincount(exit_nodes, weights=column(exits, name), minlength=n_nodes)

    counts = TransitionCounts(
        edge=column(edges, "edge", ordered),
        edge_conversions=column(edges, "edge_conversions", ordered),
        edge_value=column(edges, "edge_value", ordered),
        conversion=per_node("conversion"),
        null=per_node("null"),
        value=per_node("value"),
    )
    empty = np.zeros(0, dtype=np.int64)
    chain = StateChain(
        order=order,
        # named as state_chain names them (a null channel's "" is left out after the first)
        states=[STATE_SEPARATOR.join([w[0], *[c for c in w[1:] if c]]) for w in windows],
        channels=channels,
        contains=contains,
        edge_from=edge_key // n_nodes,
        edge_to=edge_key % n_nodes,
        incidence=sp.csc_matrix((len(edge_key), 0)),
        last_state=empty,
        conversions=empty,
        nulls=empty,
        revenue=empty,
        windows=windows,
    )
    return chain, counts


def _unique(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and each key's index among them (a lookup table when keys are small)."""
    if bound <= 1 << 25:
        present = np.zeros(bound, dtype=bool)
        present[keys] = True
        rank = np.cumsum(present) - 1
        return np.flatnonzero(present), rank[keys]
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct, inverse.ravel()


def check_order(order: int) -> None:
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise ConfigError(
            f"Markov order must be a whole number from 1 to {MAX_ORDER}, not {order!r}")


# -- tables ------------------------------------------------------------------------------------
TRANSITION_SCHEMA = pl.Schema(
    {
        "from_state": pl.String,
        "to_state": pl.String,
        "count": pl.Int64,
        "probability": pl.Float64,
        "conversions": pl.Int64,
        "value_cents": pl.Int64,  # the conversion value of those conversions, minor units
    }
)


def chain_transitions(chain: StateChain, counts: TransitionCounts | None = None) -> pl.DataFrame:
    """Every transition with its count, probability, converting journeys and their value.

    Rows: transient transitions, then exits to ``(conversion)`` and ``(null)``; sorted by
    ``from_state`` (the start first) then ``to_state``. Edges with a zero count are left out.
    """
    counts = chain.counts() if counts is None else counts
    names = np.array(chain.node_names(), dtype=object)
    nodes = np.arange(chain.n_nodes)
    from_node = np.concatenate([chain.edge_from, nodes, nodes])
    to_name = np.concatenate(
        [names[chain.edge_to], np.full(chain.n_nodes, CONVERSION), np.full(chain.n_nodes, NULL)]
    )
    count = np.concatenate([counts.edge, counts.conversion, counts.null])
    conversions = np.concatenate([counts.edge_conversions, counts.conversion,
                                  np.zeros(chain.n_nodes)])
    value = np.concatenate([counts.edge_value, counts.value, np.zeros(chain.n_nodes)])
    out_total = np.bincount(from_node, weights=count, minlength=chain.n_nodes)
    keep = count > 0
    frame = pl.DataFrame(
        {
            "from_node": from_node[keep],
            "from_state": names[from_node[keep]].tolist(),
            "to_state": to_name[keep].tolist(),
            "count": np.rint(count[keep]).astype(np.int64),
            "probability": count[keep] / out_total[from_node[keep]],
            "conversions": np.rint(conversions[keep]).astype(np.int64),
            "value_cents": np.rint(value[keep]).astype(np.int64),
        },
        schema_overrides={"from_state": pl.String, "to_state": pl.String},
    )
    return frame.sort("from_node", "to_state").drop("from_node").cast(TRANSITION_SCHEMA)


def transition_table(
    journeys: Journeys, *, order: int = 1, include_open: bool = False
) -> pl.DataFrame:
    """Channel-to-channel (state-to-state) transition table of the journeys.

    Returns :data:`TRANSITION_SCHEMA`: ``from_state, to_state, count, probability, conversions,
    value_cents`` — ``count`` journeys made the step, ``probability`` is the share of
    ``from_state``'s exits, ``conversions``/``value_cents`` are the converting journeys among
    them and their value (integer minor units, as the name says).

    >>> t = pl.DataFrame({"journey_id": ["d1", "d1"], "touch_index": [0, 1],
    ...                   "channel": ["email", "search"]})
    >>> j = pl.DataFrame({"journey_id": ["d1"], "status": ["won"], "amount_cents": [500]})
    >>> transition_table(Journeys.from_frames(t, j))["to_state"].to_list()
    ['email', 'search', '(conversion)']
    """
    paths = distinct_paths(journeys, include_open=include_open)
    return chain_transitions(state_chain(paths, order))


def top_paths(
    journeys: Journeys,
    n: int | None = 20,
    *,
    include_open: bool = False,
    separator: str = " > ",
) -> pl.DataFrame:
    """The most frequent paths: ``path, journeys, conversions, nulls, conversion_rate,
    revenue_cents``.

    ``journeys`` is conversions + nulls (for a path table, the row's counts). Sorted by
    journeys (most first), then conversions, then path; ``n=None`` keeps every path.
    """
    paths = distinct_paths(journeys, include_open=include_open)
    table = paths.select(
        pl.col("channels").list.join(separator).alias("path"),
        (pl.col("conversions") + pl.col("nulls")).alias("journeys"),
        "conversions",
        "nulls",
        _rate().alias("conversion_rate"),
        "revenue_cents",
    ).sort(["journeys", "conversions", "path"], descending=[True, True, False])
    return table if n is None else table.head(n)


def path_length_distribution(journeys: Journeys, *, include_open: bool = False) -> pl.DataFrame:
    """Journeys by number of touches: ``n_touches, journeys, conversions, nulls,
    conversion_rate, revenue_cents``."""
    return (
        distinct_paths(journeys, include_open=include_open)
        .group_by(pl.col("channels").list.len().cast(pl.UInt32).alias("n_touches"))
        .agg(pl.col("conversions").sum(), pl.col("nulls").sum(), pl.col("revenue_cents").sum())
        .select(
            "n_touches",
            (pl.col("conversions") + pl.col("nulls")).alias("journeys"),
            "conversions",
            "nulls",
            _rate().alias("conversion_rate"),
            "revenue_cents",
        )
        .sort("n_touches")
    )


#: default bucket edges (days) of :func:`time_to_close_distribution`
CLOSE_BUCKETS_DAYS = (7, 14, 30, 60, 90, 180, 365)


def time_to_close_distribution(
    journeys: Journeys, *, buckets_days: tuple[int, ...] = CLOSE_BUCKETS_DAYS
) -> pl.DataFrame:
    """Days from a closed deal's first touch to its close, as a histogram per status.

    Returns ``bucket, from_days, to_days, won, lost, won_revenue`` with one row per bucket
    ``[from_days, to_days)`` (the last one open-ended, ``to_days`` null). Only won and lost
    deals with a close date and at least one timestamped touch count.

    Raises
    ------
    InputError
        When the journeys have no timestamps (a path table).
    """
    if not journeys.has_timestamps:
        raise InputError("time to close needs touch timestamps, which a path table does not have")
    edges = sorted(set(int(b) for b in buckets_days if b > 0))
    lower = [0, *edges]
    # lower has one more bound than edges: the last bucket is open ("Nd+")
    labels = [f"{lo}-{hi}d" for lo, hi in zip(lower, edges, strict=False)] + [f"{lower[-1]}d+"]
    first_touch = journeys.touches.group_by("journey_id").agg(
        pl.col("timestamp").min().alias("_first"))
    closed = (
        journeys.journeys.filter(pl.col("status").is_in(["won", "lost"])
                                 & pl.col("closed_at").is_not_null())
        .join(first_touch, on="journey_id")
        .filter(pl.col("_first").is_not_null())
        .with_columns(
            ((pl.col("closed_at") - pl.col("_first")).dt.total_seconds() / 86400.0)
            .clip(lower_bound=0.0)
            .alias("days")
        )
        .with_columns(
            pl.sum_horizontal([(pl.col("days") >= e).cast(pl.Int64) for e in edges] or [pl.lit(0)])
            .alias("bucket_index")
        )
        .group_by("bucket_index")
        .agg(
            (pl.col("status") == "won").sum().cast(pl.Int64).alias("won"),
            (pl.col("status") == "lost").sum().cast(pl.Int64).alias("lost"),
            pl.when(pl.col("status") == "won").then(pl.col("amount_cents")).sum().cast(pl.Int64)
            .alias("won_revenue_cents"),
        )
    )
    frame = pl.LazyFrame(
        {
            "bucket_index": range(len(labels)),
            "bucket": labels,
            "from_days": lower,
            "to_days": [*edges, None],
        },
        schema={"bucket_index": pl.Int64, "bucket": pl.String, "from_days": pl.Int64,
                "to_days": pl.Int64},
    )
    return (
        frame.join(closed, on="bucket_index", how="left", maintain_order="left")
        .with_columns(pl.col("won", "lost", "won_revenue_cents").fill_null(0))
        .drop("bucket_index")
        .collect()
    )


def _rate() -> pl.Expr:
    total = pl.col("conversions") + pl.col("nulls")
    return pl.when(total > 0).then(pl.col("conversions") / total).otherwise(None).cast(pl.Float64)


# -- networkx ----------------------------------------------------------------------------------
def path_graph(journeys: Journeys, *, order: int = 1, include_open: bool = False) -> nx.DiGraph:
    """The path graph as a networkx ``DiGraph``.

    Nodes: ``(start)``, one per channel (per state at higher orders), ``(conversion)``,
    ``(null)``; node attributes ``kind`` (start / state / conversion / null) and ``visits``
    (journeys entering the node, repeats counted). Edge attributes: ``count``,
    ``probability``, ``conversions`` and ``value_cents`` (see :func:`transition_table`). Graph
    attributes: ``order``, ``journeys``, ``conversions``, ``revenue``.
    """
    chain = state_chain(distinct_paths(journeys, include_open=include_open), order)
    return chain_graph(chain)


def chain_graph(chain: StateChain, counts: TransitionCounts | None = None) -> nx.DiGraph:
    """Build the networkx graph of a :class:`StateChain` (see :func:`path_graph`)."""
    import networkx as nx

    counts = chain.counts() if counts is None else counts
    table = chain_transitions(chain, counts)
    graph = nx.DiGraph(
        order=chain.order,
        journeys=int(chain.conversions.sum() + chain.nulls.sum()),
        conversions=int(chain.conversions.sum()),
        revenue=int(chain.revenue.sum()),
    )
    graph.add_node(START, kind="start", visits=graph.graph["journeys"])
    for name in chain.states:
        graph.add_node(name, kind="state", visits=0)
    graph.add_node(CONVERSION, kind="conversion", visits=0)
    graph.add_node(NULL, kind="null", visits=0)
    for row in table.iter_rows(named=True):  # one row per distinct transition, not per touch
        graph.add_edge(
            row["from_state"],
            row["to_state"],
            count=row["count"],
            probability=row["probability"],
            conversions=row["conversions"],
            value_cents=row["value_cents"],
        )
    visits = table.group_by("to_state").agg(pl.col("count").sum())
    for name, total in visits.iter_rows():
        graph.nodes[name]["visits"] = int(total)
    return graph


def write_graphml(graph: nx.DiGraph, path: str | Path) -> None:
    """Write the path graph as GraphML (read it back with :func:`read_graphml`)."""
    import networkx as nx

    nx.write_graphml(graph, str(path))


def read_graphml(path: str | Path) -> nx.DiGraph:
    """Read a path graph written by :func:`write_graphml`."""
    import networkx as nx

    graph = nx.read_graphml(str(path))
    for key in ("node_default", "edge_default"):  # added by the GraphML reader
        graph.graph.pop(key, None)
    return graph


def to_node_link_json(graph: nx.DiGraph, *, indent: int | None = 2) -> str:
    """The path graph as node-link JSON (``{"nodes": [...], "edges": [...], ...}``)."""
    import networkx as nx

    return json.dumps(nx.node_link_data(graph, edges="edges"), indent=indent, sort_keys=False)


def from_node_link_json(text: str) -> nx.DiGraph:
    """Read a path graph from :func:`to_node_link_json` output."""
    import networkx as nx

    return nx.node_link_graph(json.loads(text), directed=True, edges="edges")


__all__ = [
    "CONVERSION",
    "NULL",
    "START",
    "CHAIN_EDGE_SCHEMA",
    "CHAIN_EXIT_SCHEMA",
    "PathCodes",
    "StateChain",
    "TransitionCounts",
    "chain_from_tallies",
    "chain_graph",
    "chain_tallies",
    "chain_transitions",
    "distinct_paths",
    "from_node_link_json",
    "journey_outcomes",
    "path_codes",
    "path_graph",
    "path_length_distribution",
    "read_graphml",
    "state_chain",
    "time_to_close_distribution",
    "to_node_link_json",
    "top_paths",
    "transition_table",
    "write_graphml",
]
