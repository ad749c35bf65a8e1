"""Result files: a table handed over in parts is written byte for byte as the whole table; CSV
cells that start like a formula are neutralised (OWASP), Parquet and JSON keep values exact."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.output import (
    TableParts,
    csv_text,
    money_to_decimal,
    neutralise_formulas,
    write_csv,
    write_table,
)
from attribution.schema import CREDIT_SCHEMA, major_name


def credit_rows(model: str, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": [model] * n,
            "journey_id": [f"D{i % 7}" for i in range(n)],
            "deal_id": [f"D{i % 7}" for i in range(n)],
            "account_id": [f"A{i % 3}" for i in range(n)],
            "status": ["won", "lost"] * (n // 2) + ["open"] * (n % 2),
            "touch_index": list(range(n)),
            "touchpoint_id": [None if i % 5 == 0 else f"t{i}" for i in range(n)],
            "timestamp": [datetime(2025, 1, 1 + i % 28, tzinfo=UTC) for i in range(n)],
            "channel": ["podcast", "paid_search", "newsletter"] * (n // 3) + ["event"] * (n % 3),
            "channel_group": ["demand_creation"] * n,
            "weight": [1 / (i + 1) for i in range(n)],
            "pipeline_credit_cents": [12_345 * i for i in range(n)],
            "revenue_credit_cents": [-1 if i == 3 else 99 * i for i in range(n)],
            "conversion_credit": [0.1 * i for i in range(n)],
        },
        schema=CREDIT_SCHEMA,
    )


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_parts_write_the_bytes_of_the_whole_table(tmp_path, fmt, monkeypatch):
    import attribution.output as output

    monkeypatch.setattr(output, "ROW_GROUP_ROWS", 100)  # row groups across the parts' seams
    parts = [credit_rows("linear", 250), credit_rows("last_touch", 1), credit_rows("markov", 333)]
    whole = write_table(pl.concat(parts), tmp_path / "whole", "credit", fmt)
    with TableParts(tmp_path / "parts", "credit", fmt, CREDIT_SCHEMA) as writer:
        for part in parts:
            writer.add(part)
        written = writer.close()
    assert written == tmp_path / "parts" / f"credit.{fmt}"
    assert written.read_bytes() == whole.read_bytes()
    assert [p.name for p in (tmp_path / "parts").iterdir()] == [f"credit.{fmt}"]  # no scratch


def test_no_parts_write_an_empty_table_with_the_schema(tmp_path):
    with TableParts(tmp_path, "credit", "parquet", CREDIT_SCHEMA) as writer:
        path = writer.close()
    table = pl.read_parquet(path)
    # the file's names: money in major units, without the in-memory ``_cents``
    assert table.height == 0 and table.columns == [major_name(c) for c in CREDIT_SCHEMA]


def test_a_failed_run_leaves_no_scratch_and_no_result(tmp_path):
    with pytest.raises(RuntimeError, match="model failed"):
        with TableParts(tmp_path, "credit", "csv", CREDIT_SCHEMA) as writer:
            writer.add(credit_rows("linear", 10))
            assert any(p.name.startswith(".credit.parts.") for p in tmp_path.iterdir())
            raise RuntimeError("model failed")
    assert list(tmp_path.iterdir()) == []


def test_a_part_that_fails_to_spill_fails_the_write_and_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    writer = TableParts(tmp_path, "credit", "parquet", CREDIT_SCHEMA)
    with pytest.raises(OSError, match="disk full"), writer:
        monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
        writer.add(credit_rows("linear", 10))  # spilled on the writer's thread
        writer.close()  # raises what the spill raised
    assert list(tmp_path.iterdir()) == []


def test_parts_added_after_the_table_was_written_are_refused(tmp_path):
    with TableParts(tmp_path, "credit", "csv", CREDIT_SCHEMA) as writer:
        writer.add(credit_rows("linear", 3))
        writer.close()
        with pytest.raises(RuntimeError, match="after the table was written"):
            writer.add(credit_rows("markov", 3))
    assert [p.name for p in tmp_path.iterdir()] == ["credit.csv"]


def test_money_becomes_exact_decimals_at_any_size():
    cents = [0, 1, -1, 99, -250, 4_825_000, 2**53 + 1, 2**63 - 1, -(2**63)]
    frame = pl.DataFrame({"pipeline_credit_cents": cents,
                          "revenue_credit_cents": [None] + cents[1:]})
    converted = money_to_decimal(frame)  # in major units, named without the suffix
    # money: keep names from here
    assert converted.schema == pl.Schema({"pipeline_credit": pl.Decimal(38, 2),
                                          "revenue_credit": pl.Decimal(38, 2)})
    assert converted.get_column("pipeline_credit").to_list() == [
        Decimal(c).scaleb(-2) for c in cents
    ]
    assert converted.get_column("revenue_credit").to_list()[:2] == [None, Decimal("0.01")]
    # money: keep names to here
    assert_frame_equal(money_to_decimal(frame.lazy()).collect(), converted)


# -- CSV formula injection (issue #21, item 4) ----------------------------------------------
#: the plain numbers the writers leave alone (the reference's own definition)
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")
HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd", "-2+3", "@SUM(A1)", "\t=1+2", "\r=1",
           "plain", "a,b", 'say "hi"', "", None, "x=1", "'=quoted", "-12500.00", "+1e5", "-"]


def test_formula_cells_are_neutralised_and_everything_else_is_exact(tmp_path):
    frame = pl.DataFrame({"channel": HOSTILE, "amount": [-1.5] * len(HOSTILE)})
    path = write_csv(frame, tmp_path / "t.csv")
    assert path.read_bytes().decode("utf-8").split("\n") == [
        "channel,amount",
        '"\'=HYPERLINK(""http://x"",""y"")",-1.5',
        "\"'+1+cmd\",-1.5",
        "\"'-2+3\",-1.5",                  # a text cell; the number column keeps its sign
        "\"'@SUM(A1)\",-1.5",
        "\"'\t=1+2\",-1.5",                # the tab is kept, behind the quote
        "\"'\r=1\",-1.5",
        "plain,-1.5",
        '"a,b",-1.5',
        '"say ""hi""",-1.5',
        '"",-1.5',
        ",-1.5",
        "x=1,-1.5",
        "'=quoted,-1.5",                   # starts with a quote already: not a formula
        "-12500.00,-1.5",                  # a plain number holds no formula
        "+1e5,-1.5",
        "\"'-\",-1.5",
        "",
    ]
    # read back, a neutralised cell is the value behind one single quote
    back = pl.read_csv(path, infer_schema=False)["channel"].to_list()
    assert back == [None if v is None else
                    ("'" + v if v[:1] in "=+-@\t\r" and v and not NUMBER.match(v) else v)
                    for v in HOSTILE]


def test_csv_raw_writes_the_values_exactly(tmp_path):
    frame = pl.DataFrame({"channel": HOSTILE})
    raw = write_csv(frame, tmp_path / "raw.csv", csv_raw=True)
    assert raw.read_bytes() == frame.write_csv().encode("utf-8")
    assert pl.read_csv(raw, infer_schema=False)["channel"].to_list()[:4] == HOSTILE[:4]
    assert csv_text(frame, csv_raw=True) == frame.write_csv()
    assert csv_text(frame).startswith('channel\n"\'=HYPERLINK(')


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_write_table_and_parts_neutralise_csv_only(tmp_path, fmt):
    frame = credit_rows("linear", 9).with_columns(
        pl.Series("channel", ["=cmd", "+x", "ok", "-y", "@z", "ok", "ok", "ok", "ok"]))
    with TableParts(tmp_path / "p", "credit", fmt, CREDIT_SCHEMA) as parts:
        parts.add(frame.head(4))
        parts.add(frame.tail(5))
        written = parts.close()
    whole = write_table(frame, tmp_path / "w", "credit", fmt)
    assert written.read_bytes() == whole.read_bytes()
    if fmt == "csv":
        channels = pl.read_csv(whole, infer_schema=False)["channel"].to_list()
        assert channels == ["'=cmd", "'+x", "ok", "'-y", "'@z", "ok", "ok", "ok", "ok"]
        assert whole.read_text("utf-8").splitlines()[1].split(",")[8] == "\"'=cmd\""
        raw = write_table(frame, tmp_path / "r", "credit", fmt, csv_raw=True)
        assert pl.read_csv(raw, infer_schema=False)["channel"].to_list()[:2] == ["=cmd", "+x"]
    elif fmt == "parquet":
        assert pl.read_parquet(whole)["channel"].to_list()[:2] == ["=cmd", "+x"]
    else:
        rows = json.loads(whole.read_text("utf-8"))
        assert [row["channel"] for row in rows][:2] == ["=cmd", "+x"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet='ab ,"\n\r=+-@\t\'é1.e', max_size=6)),
                min_size=1, max_size=10))
def test_hand_quoting_matches_polars_and_neutralises_every_formula(values):
    frame = pl.DataFrame({"text": values, "n": list(range(len(values)))},
                         schema={"text": pl.String, "n": pl.Int64})
    written = csv_text(frame)
    formulas = [v is not None and v[:1] != "" and v[0] in "=+-@\t\r" and not NUMBER.match(v)
                for v in values]
    if not any(formulas):
        assert written == frame.write_csv()  # byte for byte polars' own quoting
    back = pl.read_csv(io.StringIO(written), infer_schema=False,
                       schema={"text": pl.String, "n": pl.String})["text"].to_list()
    assert back == [("'" + v) if f else v for v, f in zip(values, formulas, strict=True)]
    hand = neutralise_formulas(frame.filter(pl.Series(formulas).not_())).write_csv(
        quote_style="never")
    assert hand == frame.filter(pl.Series(formulas).not_()).write_csv()


def test_parts_find_a_formula_in_any_part(tmp_path):
    clean = credit_rows("linear", 6)
    late = credit_rows("markov", 3).with_columns(pl.Series("deal_id", ["ok", "@x", "ok"]))
    with TableParts(tmp_path, "credit", "csv", CREDIT_SCHEMA) as parts:
        parts.add(clean)
        parts.add(clean)
        parts.add(late)
        written = parts.close()
    deals = pl.read_csv(written, infer_schema=False)["deal_id"].to_list()
    assert deals[-3:] == ["ok", "'@x", "ok"]
    assert written.read_bytes() == write_table(pl.concat([clean, clean, late]), tmp_path / "w",
                                               "credit", "csv").read_bytes()


# -- the credit streamed straight into its Parquet file (issue 26) --------------------------
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=260), min_size=0, max_size=5),
       st.sampled_from([0, 2, 3]))
def test_streamed_parts_write_the_bytes_of_the_whole_table(sizes, decimals):
    import tempfile
    from pathlib import Path

    import attribution.output as output

    parts = [credit_rows(f"m{i}", n) for i, n in enumerate(sizes)]
    whole_frame = pl.concat(parts) if parts else pl.DataFrame(schema=CREDIT_SCHEMA)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(output, "ROW_GROUP_ROWS", 100)  # row groups across the parts' seams
            # the reference: the parts' concatenation written whole
            whole = write_table(whole_frame, folder / "whole", "credit", "parquet",
                                decimals=decimals)
            with TableParts(folder / "streamed", "credit", "parquet", CREDIT_SCHEMA) as writer:
                writer.stream(decimals)
                for part in parts:
                    writer.add(part)
                written = writer.close(decimals=decimals)
        assert written.read_bytes() == whole.read_bytes()
        assert [p.name for p in (folder / "streamed").iterdir()] == ["credit.parquet"]


def test_a_streamed_table_is_not_spilled_and_a_failed_run_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="model failed"):
        with TableParts(tmp_path, "credit", "parquet", CREDIT_SCHEMA) as writer:
            writer.stream(2)
            writer.add(credit_rows("linear", 10))
            assert not any(p.name.startswith(".credit.parts.") for p in tmp_path.iterdir())
            raise RuntimeError("model failed")
    assert list(tmp_path.iterdir()) == []


def test_a_stream_that_fails_to_write_raises_and_leaves_nothing(tmp_path, monkeypatch):
    import attribution.output as output

    def disk_full(table, directory, stem, *args, **kwargs):
        path = directory / f"{stem}.parquet"
        table.head(12).collect().write_parquet(path)  # a part read, a file begun, then:
        raise OSError("disk full")

    monkeypatch.setattr(output, "write_table", disk_full)
    with pytest.raises(OSError, match="disk full"), TableParts(
            tmp_path, "credit", "parquet", CREDIT_SCHEMA) as writer:
        writer.stream(2)
        writer.add(credit_rows("linear", 10))
        writer.add(credit_rows("markov", 3))
        writer.add(credit_rows("shapley", 3))  # raises here or at close
        writer.close(decimals=2)
    assert list(tmp_path.iterdir()) == []


def test_a_stream_closed_with_other_decimals_is_refused(tmp_path):
    with TableParts(tmp_path, "credit", "parquet", CREDIT_SCHEMA) as writer:
        writer.stream(2)
        writer.add(credit_rows("linear", 5))
        with pytest.raises(ValueError, match="streamed with 2 decimals, closed with 3"):
            writer.close(decimals=3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_other_formats_keep_spilling(tmp_path, fmt):
    parts = [credit_rows("linear", 7), credit_rows("markov", 4)]
    with TableParts(tmp_path / "p", "credit", fmt, CREDIT_SCHEMA) as writer:
        writer.stream(2)
        for part in parts:
            writer.add(part)
        written = writer.close()
    assert written.read_bytes() == write_table(pl.concat(parts), tmp_path / "w", "credit",
                                               fmt).read_bytes()
