"""Path graph: outcomes, transition counts, statistics, GraphML / node-link JSON round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import networkx as nx
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.errors import InputError
from attribution.graph import (
    distinct_paths,
    from_node_link_json,
    path_codes,
    path_graph,
    path_length_distribution,
    read_graphml,
    state_chain,
    time_to_close_distribution,
    to_node_link_json,
    top_paths,
    transition_table,
    write_graphml,
)
from attribution.journeys import Journeys

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def sample() -> Journeys:
    # d1 email > search  won 100, closed day 10 ; d2 search  lost, closed day 40
    # d3 email > search  won 50, closed day 3   ; d4 email  open ; d5 (no touch) won 10
    # a1 search (account without a deal: status none)
    touches = pl.DataFrame(
        {
            "journey_id": ["d1", "d1", "d2", "d3", "d3", "d4", "a1"],
            "touch_index": [0, 1, 0, 0, 1, 0, 0],
            "channel": ["email", "search", "search", "email", "search", "email", "search"],
            "timestamp": [T0, T0 + timedelta(days=1), T0, T0, T0, T0, T0],
        }
    )
    rows = pl.DataFrame(
        {
            "journey_id": ["d1", "d2", "d3", "d4", "d5", "a1"],
            "status": ["won", "lost", "won", "open", "won", "none"],
            "amount_cents": [100, 20, 50, 70, 10, None],
            "revenue_cents": [100, None, 50, None, 10, None],
            "closed_at": [T0 + timedelta(days=10), T0 + timedelta(days=40),
                          T0 + timedelta(days=3), None, T0, None],
        }
    )
    return Journeys.from_frames(touches, rows)


def test_transition_table_counts_outcomes_and_leaves_open_deals_out() -> None:
    table = transition_table(sample())
    assert table.select("from_state", "to_state", "count", "conversions", "value_cents").rows() == [
        ("(start)", "email", 2, 2, 150),
        ("(start)", "search", 2, 0, 0),
        ("email", "search", 2, 2, 150),
        ("search", "(conversion)", 2, 2, 150),
        ("search", "(null)", 2, 0, 0),
    ]
    with_open = transition_table(sample(), include_open=True)
    assert ("email", "(null)", 1) in with_open.select("from_state", "to_state", "count").rows()


def test_top_paths_and_lengths() -> None:
    assert top_paths(sample()).rows() == [
        ("email > search", 2, 2, 0, 1.0, 150),
        ("search", 2, 0, 2, 0.0, 0),
    ]
    assert path_length_distribution(sample()).rows() == [
        (1, 2, 0, 2, 0.0, 0), (2, 2, 2, 0, 1.0, 150)]


def test_time_to_close() -> None:
    table = time_to_close_distribution(sample(), buckets_days=(7, 30))
    assert table.rows() == [
        ("0-7d", 0, 7, 1, 0, 50),
        ("7-30d", 7, 30, 1, 0, 100),
        ("30d+", 30, None, 0, 1, 0),
    ]
    no_time = Journeys.from_frames(sample().touches, sample().journeys, has_timestamps=False)
    with pytest.raises(InputError, match="timestamps"):
        time_to_close_distribution(no_time)


def test_graph_structure() -> None:
    graph = path_graph(sample())
    assert set(graph.nodes) == {"(start)", "email", "search", "(conversion)", "(null)"}
    assert graph.nodes["search"] == {"kind": "state", "visits": 4}
    assert graph.edges["search", "(conversion)"]["probability"] == 0.5
    assert graph.graph == {"order": 1, "journeys": 4, "conversions": 2, "revenue": 150}
    higher = path_graph(sample(), order=2)
    assert "email > search" in higher.nodes


def assert_same_graph(left: nx.DiGraph, right: nx.DiGraph) -> None:
    assert dict(left.nodes(data=True)) == dict(right.nodes(data=True))
    assert {(u, v): d for u, v, d in left.edges(data=True)} == {
        (u, v): d for u, v, d in right.edges(data=True)
    }
    assert left.graph == right.graph


@pytest.mark.parametrize("order", [1, 2])
def test_graphml_round_trip(tmp_path: Path, order: int) -> None:
    graph = path_graph(sample(), order=order)
    write_graphml(graph, tmp_path / "paths.graphml")
    assert_same_graph(read_graphml(tmp_path / "paths.graphml"), graph)


@pytest.mark.parametrize("order", [1, 2])
def test_node_link_json_round_trip(order: int) -> None:
    graph = path_graph(sample(), order=order)
    again = from_node_link_json(to_node_link_json(graph))
    assert again.is_directed()
    assert_same_graph(again, graph)


# -- distinct paths: the one-pass keys, the group-by fallback and paths too long for a key -----
def reference_paths(
    journeys: list[tuple[str, list[str], str]],
) -> dict[tuple[str, ...], tuple[int, int, int]]:
    """Distinct paths counted by hand: (conversions, nulls, revenue) per channel tuple."""
    counts: dict[tuple[str, ...], tuple[int, int, int]] = {}
    for journey_id, channels, status in journeys:
        if not channels or status == "open":
            continue
        won = status == "won"
        conversions, nulls, revenue = counts.get(tuple(channels), (0, 0, 0))
        counts[tuple(channels)] = (conversions + won, nulls + (not won),
                                   revenue + (int(journey_id[1:]) if won else 0))
    return counts


def journeys_of(
    journeys: list[tuple[str, list[str], str]], order: list[int] | None = None
) -> Journeys:
    rows = [(j, i, c) for j, channels, _ in journeys for i, c in enumerate(channels)]
    if order is not None:
        rows = [rows[k] for k in order]
    touches = pl.DataFrame(rows, schema={"journey_id": pl.String, "touch_index": pl.UInt32,
                                         "channel": pl.String}, orient="row")
    # n_touches: journeys listed in the touches' order read their outcomes side by side, the
    # shuffled ones through a join
    deals = pl.DataFrame(
        [(j, s, int(j[1:]), int(j[1:]) if s == "won" else 0, len(c)) for j, c, s in journeys],
        schema={"journey_id": pl.String, "status": pl.String, "amount_cents": pl.Int64,
                "revenue_cents": pl.Int64, "n_touches": pl.UInt32},
        orient="row",
    )
    return Journeys.from_frames(touches, deals)


journey_lists = st.lists(
    st.tuples(
        st.lists(st.sampled_from([f"c{i:02d}" for i in range(40)]), min_size=0, max_size=14),
        st.sampled_from(["won", "lost", "open"]),
    ),
    min_size=1, max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(journey_lists, st.randoms(use_true_random=False))
def test_distinct_paths_match_a_hand_count_in_any_row_order(drawn, random) -> None:
    # 40 channels: keys are exact up to 11 touches, so longer paths take the fallback
    journeys = [(f"d{n + 1}", channels, status) for n, (channels, status) in enumerate(drawn)]
    expected = reference_paths(journeys)
    grouped = distinct_paths(journeys_of(journeys))
    n_rows = sum(len(c) for _, c, _ in journeys)
    shuffled = distinct_paths(journeys_of(journeys, random.sample(range(n_rows), n_rows)))
    assert grouped.equals(shuffled)
    assert {tuple(c): (v, n, r) for _, c, v, n, r in grouped.iter_rows()} == expected
    assert grouped["path_id"].to_list() == list(range(len(expected)))
    assert [tuple(c) for c in grouped["channels"]] == sorted(expected, key="\x1f".join)
    coded = path_codes(journeys_of(journeys))
    assert coded.channels == sorted({c for path in expected for c in path})
    assert int(coded.lengths.sum()) == len(coded.codes) == sum(len(p) for p in expected)


def test_long_paths_group_by_their_channels() -> None:
    # 40 channels: keys are exact up to 11 touches. Long paths repeat (grouped by their codes
    # as bytes), differ in one touch, or extend another
    long = [f"c{i:02d}" for i in range(13)]
    other = [*long[:5], "c39", *long[6:]]
    journeys = [("d1", long, "won"), ("d2", long, "lost"), ("d3", other, "won"),
                ("d4", [*long, "c00"], "lost"), ("d5", long, "won"), ("d6", ["c05"], "won"),
                ("d7", other, "open")]
    expected = reference_paths(journeys)
    assert expected[tuple(long)] == (2, 1, 6)
    grouped = distinct_paths(journeys_of(journeys))
    assert {tuple(c): (v, n, r) for _, c, v, n, r in grouped.iter_rows()} == expected
    assert [tuple(c) for c in grouped["channels"]] == sorted(expected, key="\x1f".join)
    coded = path_codes(journeys_of(journeys))
    assert coded.channels == sorted({c for path in expected for c in path})


def test_state_chain_counts_repeats_and_short_paths_at_order_2() -> None:
    # a > b > a > b won (3 steps: ab, ba, ab), a lost (shorter than 2: one state "a")
    paths = pl.DataFrame(
        {"channels": [["a", "b", "a", "b"], ["a"]], "conversions": [1, 0], "nulls": [0, 1],
         "revenue_cents": [7, 0]}
    )
    chain = state_chain(paths, order=2)
    assert chain.node_names() == ["(start)", "a", "a > b", "b > a"]
    counts = chain.counts()
    edges = {(chain.node_names()[f], chain.node_names()[t]): n
             for f, t, n in zip(chain.edge_from, chain.edge_to, counts.edge, strict=True)}
    assert edges == {("(start)", "a"): 1, ("(start)", "a > b"): 1, ("a > b", "b > a"): 1,
                     ("b > a", "a > b"): 1}
    assert counts.conversion.tolist() == [0, 0, 1, 0] and counts.null.tolist() == [0, 1, 0, 0]
    assert chain.last_state.tolist() == [2, 1]


def test_paths_of_hand_built_touches_follow_touch_index_whatever_its_values() -> None:
    # touches in no particular order, touch_index with gaps: a path is its channels in
    # touch_index order, so d1 (0, 5, 9) and d2 (0, 1, 2) walk the same path
    touches = pl.DataFrame(
        {"journey_id": ["d2", "d1", "d1", "d2", "d1", "d2"],
         "touch_index": [2, 9, 0, 0, 5, 1],
         "channel": ["c", "c", "a", "a", "b", "b"]},
        schema_overrides={"touch_index": pl.UInt32},
    )
    deals = pl.DataFrame({"journey_id": ["d1", "d2"], "status": ["won", "lost"],
                          "amount_cents": [7, 3], "revenue_cents": [7, 0], "n_touches": [3, 3]},
                         schema_overrides={"n_touches": pl.UInt32})
    paths = distinct_paths(Journeys.from_frames(touches, deals))
    assert [tuple(c) for c in paths["channels"]] == [("a", "b", "c")]
    assert paths.select("conversions", "nulls", "revenue_cents").row(0) == (1, 1, 7)
