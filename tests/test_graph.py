"""Path graph: outcomes, transition counts, statistics, GraphML / node-link JSON round trips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import networkx as nx
import polars as pl
import pytest

from attribution.errors import InputError
from attribution.graph import (
    from_node_link_json,
    path_graph,
    path_length_distribution,
    read_graphml,
    time_to_close_distribution,
    to_node_link_json,
    top_paths,
    transition_table,
    write_graphml,
)
from attribution.journeys import Journeys

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


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
            "amount": [100, 20, 50, 70, 10, None],
            "revenue": [100, None, 50, None, 10, None],
            "closed_at": [T0 + timedelta(days=10), T0 + timedelta(days=40), T0 + timedelta(days=3), None, T0, None],
        }
    )
    return Journeys.from_frames(touches, rows)


def test_transition_table_counts_outcomes_and_leaves_open_deals_out() -> None:
    table = transition_table(sample())
    assert table.select("from_state", "to_state", "count", "conversions", "value").rows() == [
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
    assert path_length_distribution(sample()).rows() == [(1, 2, 0, 2, 0.0, 0), (2, 2, 2, 0, 1.0, 150)]


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
