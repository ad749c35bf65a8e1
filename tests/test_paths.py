"""Path tables: delimiters, spaces, optional columns, exact cents, rejects, missing columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.errors import ColumnNotFoundError, FileFormatError
from attribution.paths import read_paths
from attribution.schema import REJECT_SCHEMA

FIXTURES = Path(__file__).parent.parent / "fixtures" / "paths"


def write(tmp_path: Path, name: str, text: str) -> Path:
    target = tmp_path / name
    target.write_text(text, encoding="utf-8")
    return target


def channels(table) -> list[list[str]]:
    touches = table.journeys.touches.collect()
    return (
        touches.group_by("journey_id", maintain_order=True)
        .agg(pl.col("channel").sort_by("touch_index"))["channel"]
        .to_list()
    )


def test_reads_the_semicolon_fixture_in_channelattribution_layout() -> None:
    table = read_paths(FIXTURES / "sample.csv")
    assert table.rejects.height == 0
    assert channels(table) == [
        ["email", "search", "direct"],
        ["search"],
        ["social", "email"],
        ["direct", "direct", "email"],
        ["search", "social", "email", "direct"],
    ]
    rows = table.journeys.journeys.collect()
    assert rows["status"].unique().to_list() == ["path"]
    assert rows["conversions"].to_list() == [2, 1, 0, 1, 3]
    assert rows["nulls"].to_list() == [3, 4, 2, 1, 0]
    # exact cents from the decimal text; 400.005 rounds half to even -> 400.00
    assert rows["revenue_cents"].to_list() == [125050, 9999, 0, 40000, 300000]
    assert rows["amount_cents"].to_list() == rows["revenue_cents"].to_list()
    assert not table.journeys.has_timestamps and not table.journeys.has_milestones
    assert table.journeys.touches.collect()["timestamp"].null_count() == 13  # every touch


def test_comma_file_with_spaces_and_no_value_or_null_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "path,conversions\n a >b > c ,2\nb,1\n")
    table = read_paths(path)
    assert channels(table) == [["a", "b", "c"], ["b"]]
    rows = table.journeys.journeys.collect()
    assert rows["nulls"].to_list() == [0, 0]
    assert rows["revenue_cents"].to_list() == [0, 0]


def test_column_mapping_and_custom_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "journey;orders;sales\nemail|search;2;10.5\n")
    table = read_paths(
        path, columns={"path": "journey", "conversions": "orders", "conversion_value": "sales"},
        separator="|",
    )
    assert channels(table) == [["email", "search"]]
    assert table.journeys.journeys.collect()["revenue_cents"].to_list() == [1050]


def test_bad_rows_become_rejects(tmp_path: Path) -> None:
    text = (
        "path,conversions,value,nulls\n"
        "a>b,1,2.50,0\n"      # 1 good
        "b,x,1,0\n"           # 2 conversions not a number
        ",1,2,3\n"            # 3 empty path
        "c>>a,1,1,1\n"        # 4 empty step
        "d,1,-3,0\n"          # 5 negative value
        "e,-1,1,0\n"          # 6 negative conversions
        "f,1,1,2.5\n"         # 7 fractional nulls
        "g,3.0,1.135,\n"      # 8 good: 3.0 is whole, 1.135 -> 114 cents, empty nulls -> 0
    )
    table = read_paths(write(tmp_path, "bad.csv", text))
    rejects = table.rejects
    assert rejects.schema == REJECT_SCHEMA
    assert rejects.select("row", "column").rows() == [
        (2, "conversions"), (3, "path"), (4, "path"), (5, "value"), (6, "conversions"),
        (7, "nulls"),
    ]
    assert set(rejects["input"]) == {"paths"}
    assert rejects.filter(pl.col("row") == 4)["value"].to_list() == ["c>>a"]
    rows = table.journeys.journeys.collect()
    assert rows["journey_id"].to_list() == ["path-1", "path-8"]
    assert rows["revenue_cents"].to_list() == [250, 114]
    assert rows["conversions"].to_list() == [1, 3]


def test_missing_column_names_what_exists(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "path;conversion_count\na;1\n")
    with pytest.raises(ColumnNotFoundError,
                       match="missing column 'conversions'.*'conversion_count'"):
        read_paths(path)
    with pytest.raises(ColumnNotFoundError, match="'orders'"):
        read_paths(path, columns={"conversions": "orders"})


def test_parquet_and_ndjson(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"path": ["a > b", "c"], "total_conversions": [1, 0], "total_conversion_value": [9.99, 0.0],
         "total_null": [2, 5]}
    )
    frame.write_parquet(tmp_path / "p.parquet")
    frame.write_ndjson(tmp_path / "p.ndjson")
    for name in ("p.parquet", "p.ndjson"):
        table = read_paths(tmp_path / name)
        assert channels(table) == [["a", "b"], ["c"]]
        assert table.journeys.journeys.collect()["revenue_cents"].to_list() == [999, 0]
        assert table.journeys.journeys.collect()["nulls"].to_list() == [2, 5]


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="unknown file type '.xlsx'"):
        read_paths(write(tmp_path, "p.xlsx", "x"))


def installed_data_csv() -> Path | None:
    try:
        import cypack
    except ImportError:
        return None
    candidate = Path(cypack.__file__).parent / "data" / "Data.csv"
    return candidate if candidate.exists() else None


@pytest.mark.skipif(installed_data_csv() is None, reason="channelattribution is not installed")
def test_reads_channelattribution_data_csv_unchanged() -> None:
    path = installed_data_csv()
    table = read_paths(path)
    assert table.rejects.height == 0
    rows = table.journeys.journeys.collect()
    assert rows.height == 10_000
    # totals of the file's own columns (values have 3 decimals: cents are rounded half-even)
    assert rows["conversions"].sum() == 19785
    assert rows["nulls"].sum() == 68602
    assert abs(rows["revenue_cents"].sum() - 7_480_294) <= 0


def test_a_path_table_is_never_read_lossily(tmp_path):
    from attribution.errors import FileFormatError
    from attribution.paths import read_paths

    table = tmp_path / "paths.csv"
    table.write_bytes("path;total_conversions;total_conversion_value;total_null\n"
                      "événements > search;1;10.00;0\névènements;1;5.00;1\n".encode("latin-1"))
    with pytest.raises(FileFormatError,
                       match="is not valid UTF-8 at byte .*--encoding paths=cp1252"):
        read_paths(table)
    read = read_paths(table, encoding="latin-1")
    channels = set(read.journeys.touches.collect()["channel"].to_list())
    assert channels == {"search", "événements", "évènements"}  # two channels, not one garbled


# the fast reading against the row-by-row reference (tests/reference.py): odd spacing, case
# variants of one channel, empty steps, bad and rounded numbers, missing cells
_STEP = st.sampled_from(["email", "Email", " email", "search ", " SEARCH ", "direct", "", " "])
_COUNT = st.one_of(st.none(), st.sampled_from(["0", "3", " 12 ", "+4", "2.0", "2.5", "-1", "x",
                                              ""]))
_VALUE = st.one_of(st.none(), st.sampled_from(["0", "1.005", "1.015", "2.5", ".5", "7.", "+3.125",
                                              "9.9951", "-2", "1.2.3", "", " 40.10 "]))


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.one_of(st.none(), st.lists(_STEP, min_size=1, max_size=5)),
                  _COUNT, _COUNT, _VALUE),
        max_size=12,
    ),
    separator=st.sampled_from([">", " > ", "|"]),
    with_nulls=st.booleans(),
)
def test_parse_paths_matches_the_row_by_row_reference(rows, separator, with_nulls) -> None:
    from attribution.journeys import JourneyIndex
    from attribution.paths import parse_paths
    from tests.reference import reference_parse_paths

    raw = pl.DataFrame(
        {
            "p": [None if steps is None else separator.join(steps) for steps, *_ in rows],
            "c": [c for _, c, _, _ in rows],
            "n": [n for _, _, n, _ in rows],
            "v": [v for *_, v in rows],
        },
        schema={"p": pl.String, "c": pl.String, "n": pl.String, "v": pl.String},
    )
    names = {"path": "p", "conversions": "c", "conversion_value": "v"}
    if with_nulls:
        names["nulls"] = "n"
    table = parse_paths(raw, names, source="t.csv", separator=separator)
    touches, journeys, rejects = reference_parse_paths(raw, names, source="t.csv",
                                                       separator=separator)
    assert_frame_equal(table.journeys.touches.collect(), touches)
    assert_frame_equal(table.journeys.journeys.collect(), journeys)
    assert_frame_equal(table.rejects, rejects)
    # the layout handed over is the one the touches have
    derived = JourneyIndex.of(touches.get_column("journey_id"), touches.get_column("touch_index"))
    index = table.journeys.index
    assert index is not None and index.positional and index.touch_ordered
    assert np.array_equal(index.starts, derived.starts)
    assert np.array_equal(index.sizes, derived.sizes)
