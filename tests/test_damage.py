"""Refuse silent damage (issue #21, item 5): encodings, duplicate columns, empty inputs,
timestamps beyond a sane horizon, amounts the run cannot hold exactly, long input in messages;
and channel names in the user's spelling (issue #20, item 6) through spend and the notes."""

from __future__ import annotations

import codecs
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.channels import load_rules
from attribution.cli import cli
from attribution.config import load_config
from attribution.errors import ConfigError, FileFormatError, RejectedRowError
from attribution.loading import load_inputs
from attribution.reading import (
    LINE_LIMIT,
    check_line_lengths,
    invalid_utf8,
    read_file,
    where_not_utf8,
)
from attribution.schema import currency_decimals
from attribution.spend import load_spend
from attribution.validation import HORIZON

TOUCH_HEADER = "touchpoint_id,timestamp,account_id,channel\n"
DEAL_HEADER = "deal_id,account_id,created_at,closed_at,status,amount,currency\n"
DEAL = "D1,A,2025-03-01T00:00:00Z,2025-03-20T00:00:00Z,won,100.00,USD\n"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load(touchpoints: Path, deals: Path, **options):
    return load_inputs(touchpoints, deals, rules=load_rules(), **options)


def rejects_of(inputs, input_name: str) -> list[tuple[int, str, str, str | None]]:
    frame = inputs.rejects.filter(pl.col("input") == input_name)
    return list(frame.select("row", "column", "reason", "value").iter_rows())


# -- encodings ----------------------------------------------------------------------------------
LATIN_TOUCHES = (TOUCH_HEADER + "t1,2025-03-01T00:00:00Z,A,événements\n"
                 "t2,2025-03-02T00:00:00Z,A,évènements\n").encode("latin-1")


def test_a_latin_1_file_stops_the_run_with_the_byte_offset_and_a_hint(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", LATIN_TOUCHES)
    deals = write(tmp_path, "d.csv", DEAL_HEADER + DEAL)
    offset = LATIN_TOUCHES.index(b"\xe9")
    line_start = LATIN_TOUCHES.index(b"\n") + 1
    assert invalid_utf8(touches) == (offset, 2, offset - line_start + 1, b"\xe9")
    with pytest.raises(FileFormatError) as raised:
        load(touches, deals)
    assert str(raised.value) == (
        f"{touches}: touchpoints file is not valid UTF-8 at byte {offset} (line 2, byte "
        f"{offset - line_start + 1} of the line: 0xe9, which cp1252 reads as 'é'); "
        "if it was saved in another encoding, name it: --encoding touchpoints=cp1252 (or "
        '[inputs] encoding = { touchpoints = "cp1252" } in the config) reads a touchpoints '
        "file saved by Windows or Excel (latin-1 for ISO-8859-1), --encoding cp1252 every "
        "input"
    )


def test_each_input_can_have_its_own_encoding(tmp_path: Path) -> None:
    # a Marketo export in Latin-1 beside a CRM's UTF-8 deals: one encoding each
    touches = write(tmp_path, "t.csv", LATIN_TOUCHES)
    deals = write(tmp_path, "d.csv", ("deal_id,account_id,created_at,closed_at,status,amount\n"
                                      "D1,A,2025-03-01,2025-03-20,won,100.00\n"
                                      "D2,Ä,2025-03-01,2025-03-20,won,50.00\n"))
    contacts = write(tmp_path, "c.csv", "contact_id,account_id\nc1,Ä\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "-q", "run", "--touchpoints", str(touches), "--deals", str(deals), "--contacts",
        str(contacts), "--encoding", "touchpoints=latin-1", "--out", str(out),
        "--model", "linear", "--format", "json"])
    assert result.exit_code == 0, result.output
    channels = {r["channel"] for r in json.loads(result.stdout)}
    assert {"événements", "évènements"} <= channels
    # in the config: a table of inputs
    config = load_config(write(tmp_path, "a.toml", '[inputs]\nencoding = { contacts = "cp1252", '
                                                    'deals = "utf-8" }\n'))
    assert (config.encoding_of("contacts"), config.encoding_of("deals"),
            config.encoding_of("touchpoints")) == ("cp1252", "utf-8", None)
    result = CliRunner().invoke(cli, ["run", "--touchpoints", str(touches), "--deals",
                                      str(deals), "--encoding", "accounts=latin-1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: --encoding: 'accounts' is not an input; expected one of touchpoints, deals, "
        "contacts, spend, paths, experiments (as in contacts=cp1252)")


def test_the_offset_is_found_in_a_later_block_and_a_cut_character(tmp_path: Path) -> None:
    block = b"a,b\n" + b"x,1\n" * 300_000  # past the first megabyte read
    assert invalid_utf8(write(tmp_path, "late.csv", block + b"\xff,2\n")) == (
        len(block), 300_002, 1, b"\xff")
    assert invalid_utf8(write(tmp_path, "mid.csv", block + b"x,\xff\n")) == (
        len(block) + 2, 300_002, 3, b"\xff")
    cut = "é".encode()[:1]  # the file ends inside a two-byte character
    assert invalid_utf8(write(tmp_path, "cut.csv", b"a\n" + cut)) == (2, 2, 1, b"")
    assert where_not_utf8((2, 2, 1, b"")) == (
        "at byte 2 (line 2, byte 1 of the line: the file ends inside a character)")
    # a byte cp1252 leaves undefined is named alone
    assert where_not_utf8((1_234, 3, 9, b"\x81")) == (
        "at byte 1,234 (line 3, byte 9 of the line: 0x81)")
    assert invalid_utf8(write(tmp_path, "fine.csv", "a\né\n")) is None


def test_with_the_encoding_named_latin_1_keeps_two_channels_apart(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", LATIN_TOUCHES)
    deals = write(tmp_path, "d.csv", DEAL_HEADER + DEAL)
    inputs = load(touches, deals, encoding="latin-1")
    assert inputs.touchpoints["channel"].to_list() == ["événements", "évènements"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf_16_and_32_are_read_by_their_byte_order_mark(tmp_path: Path, codec: str) -> None:
    text = TOUCH_HEADER + "t1,2025-03-01T00:00:00Z,A,Événements\n"
    bom = {"utf-16": b"", "utf-16-be": codecs.BOM_UTF16_BE, "utf-32": b""}[codec]
    touches = write(tmp_path, "t.csv", bom + text.encode(codec))
    frame = read_file(touches, "touchpoints")
    assert frame.columns == ["touchpoint_id", "timestamp", "account_id", "channel"]
    assert frame.row(0) == ("t1", "2025-03-01T00:00:00Z", "A", "Événements")


def test_an_unknown_encoding_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, "attribution.toml", '[inputs]\nencoding = "klingon"\n')
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert str(raised.value) == (
        f"{config}: [inputs] encoding: unknown encoding 'klingon'; expected a text encoding "
        "such as utf-8, latin-1, cp1252 or utf-16")
    config = write(tmp_path, "attribution.toml", '[inputs]\nencoding = "latin-1"\n')
    assert load_config(config).encoding == "latin-1"


# -- duplicate columns, empty inputs, long input ----------------------------------------------
def test_duplicate_column_names_name_the_file_and_the_columns(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel, channel,account_id\n"
                                       "2025-03-01,A,email,direct,B\n")
    with pytest.raises(FileFormatError) as raised:
        load(touches, write(tmp_path, "d.csv", DEAL_HEADER + DEAL))
    assert str(raised.value) == (
        f"{touches}: touchpoints file names a column more than once: 'account_id' (2 times), "
        "'channel' (2 times); rename or remove the copies")


def test_a_header_only_touchpoints_file_exits_2(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", TOUCH_HEADER)
    deals = write(tmp_path, "d.csv", DEAL_HEADER + DEAL)
    result = CliRunner().invoke(cli, ["run", "--touchpoints", str(touches), "--deals", str(deals),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {touches}: no data rows in the touchpoints file (a header only, or nothing); "
        "export it again with its rows")


def test_a_message_quotes_at_most_200_characters_of_a_value(tmp_path: Path) -> None:
    # a line without a newline holding a megabyte: named in the message, never printed whole
    touches = write(tmp_path, "t.csv", TOUCH_HEADER + "t1," + "9" * 1_000_000)
    deals = write(tmp_path, "d.csv", DEAL_HEADER + DEAL)
    with pytest.raises(RejectedRowError) as raised:
        load(touches, deals, strict=True)
    assert str(raised.value) == (
        f"{touches}: row 1, column 'timestamp': unparseable timestamp; expected ISO-8601 like "
        "2025-03-04T10:15:00Z or 2025-03-04, or declare the format with --timestamp-format "
        f"(value {'9' * 200!r}... (1,000,000 characters))")


def test_a_line_over_the_limit_stops_the_run_before_it_is_read(tmp_path: Path) -> None:
    # a dump without line breaks: one line naming where it is, exit 2, memory never near it
    touches = write(tmp_path, "t.csv",
                    TOUCH_HEADER + "t1,2025-03-01,A,x\n" + "t2," + "9" * LINE_LIMIT)
    deals = write(tmp_path, "d.csv", DEAL_HEADER + DEAL)
    result = CliRunner().invoke(cli, ["run", "--touchpoints", str(touches), "--deals", str(deals),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {touches}: line 3 of the touchpoints file is {LINE_LIMIT + 3:,} bytes long "
        f"(from byte 61), over the {LINE_LIMIT:,}-byte limit of a line: is it an export with one "
        "row per line?")
    assert not (tmp_path / "out").exists()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=12), st.integers(8, 120))
def test_the_line_check_agrees_with_splitting_the_file(lengths: list[int], limit: int) -> None:
    content = b"\n".join(b"x" * n for n in lengths)
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "t.csv", content)
        if max(lengths) <= limit:
            check_line_lengths(path, "touchpoints", limit)
            return
        with pytest.raises(FileFormatError, match=r"line ([\d,]+) of the touchpoints file is "
                                                  r"([\d,]+) bytes") as raised:
            check_line_lengths(path, "touchpoints", limit)
        found_line, found_length = (int(g.replace(",", "")) for g in raised.value.args[0]
                                    .split("line ", 1)[1].split(" bytes")[0]
                                    .split(" of the touchpoints file is "))
        # the first line over the limit is named (the longest may come later)
        first = next(i for i, n in enumerate(lengths) if n > limit)
        assert (found_line, found_length) == (first + 1, lengths[first])


# -- timestamps beyond a sane horizon -----------------------------------------------------------
def test_far_timestamps_are_rejected_rows_and_never_the_as_of_date(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", TOUCH_HEADER
                    + "t1,2025-03-01T00:00:00Z,A,email\n"
                    + "t2,2200-01-01T00:00:00Z,A,email\n"     # years ahead of the clock
                    + "t3,1989-12-31T23:59:59Z,A,email\n"     # before 1990
                    + "t4,2026-03-21T00:00:01Z,A,email\n"     # a year and a second past D1
                    + "t5,2026-03-20T00:00:00Z,A,email\n")    # exactly a year: kept
    deals = write(tmp_path, "d.csv", DEAL_HEADER + DEAL
                  + "D2,A,2025-03-01T00:00:00Z,9999-12-31T00:00:00Z,won,5.00,USD\n")
    inputs = load(touches, deals)
    assert rejects_of(inputs, "touchpoints") == [
        (2, "timestamp", "timestamp more than one year in the future, outside the run's horizon",
         "2200-01-01T00:00:00Z"),
        (3, "timestamp", "timestamp before 1990-01-01, outside the run's horizon",
         "1989-12-31T23:59:59Z"),
        (4, "timestamp", "timestamp more than one year after the latest deal event (2025-03-20), "
         "outside the run's horizon", "2026-03-21T00:00:01Z"),
    ]
    assert rejects_of(inputs, "deals") == [
        (2, "closed_at", "timestamp more than one year in the future, outside the run's horizon",
         "9999-12-31T00:00:00Z"),
    ]
    assert inputs.touchpoints["touchpoint_id"].to_list() == ["t1", "t5"]
    counted = inputs.accounting["touchpoints"]
    assert (counted.read, counted.used, counted.rejected_total) == (5, 2, 3)
    assert HORIZON.days == 365
    # the run's as-of date is the latest kept instant, not 2200 or 9999
    from attribution.journeys import build_journeys

    journeys, _ = build_journeys(inputs.touchpoints, inputs.deals, inputs.contacts)
    assert journeys.as_of == datetime(2026, 3, 20, tzinfo=UTC)


# -- amounts ------------------------------------------------------------------------------------
def deals_in(tmp_path: Path, currency: str, *amounts: str) -> Path:
    rows = "".join(f"D{i},A,2025-03-01T00:00:00Z,,open,{amount},{currency}\n"
                   for i, amount in enumerate(amounts, start=1))
    return write(tmp_path, "d.csv", DEAL_HEADER + rows)


def one_touch(tmp_path: Path) -> Path:
    return write(tmp_path, "t.csv", TOUCH_HEADER + "t1,2025-02-01T00:00:00Z,A,email\n")


def test_amounts_beyond_the_minor_unit_are_rejected_not_rounded(tmp_path: Path) -> None:
    inputs = load(one_touch(tmp_path), deals_in(tmp_path, "USD", "1234.567", "1234.50", "1e30",
                                                "1.5E3", "12345678901234", "9999999999999.99"))
    assert inputs.deals.select("deal_id", "amount_cents").rows() == [
        ("D2", 123450), ("D6", 999999999999999)]
    exponent = ("amount in exponent notation, which can hide lost digits; expected a plain "
                "decimal like 48250.00")
    assert rejects_of(inputs, "deals") == [
        (1, "amount", "amount has more decimals than USD's minor unit (2 decimals, ISO 4217)",
         "1234.567"),
        (3, "amount", exponent, "1e30"),
        (4, "amount", exponent, "1.5E3"),
        (5, "amount", "amount too large; expected at most 13 digits before the decimal point",
         "12345678901234"),
    ]
    # the money the rejected rows would have brought, where it could be read exactly
    assert inputs.accounting["deals"].rejected_amount == 123457 + 150000 + 1234567890123400


def test_a_currency_without_decimals_takes_whole_amounts(tmp_path: Path) -> None:
    assert currency_decimals("jpy") == 0
    inputs = load(one_touch(tmp_path), deals_in(tmp_path, "JPY", "1200", "1200.50", "1200.00"))
    # held in yen, the minor unit (which is the major unit)
    assert inputs.deals["amount_cents"].to_list() == [1200, 1200]
    assert rejects_of(inputs, "deals") == [
        (2, "amount", "amount has more decimals than JPY's minor unit (no decimals, ISO 4217)",
         "1200.50")]


def test_a_three_decimal_currency_keeps_its_three_decimals_exactly(tmp_path: Path) -> None:
    # money is held in the currency's minor unit: fils for KWD, 1,000 to the dinar
    inputs = load(one_touch(tmp_path), deals_in(tmp_path, "KWD", "10.250", "10.255", "1234.567",
                                                "1234.5678"))
    assert inputs.deals["amount_cents"].to_list() == [10250, 10255, 1234567]
    assert rejects_of(inputs, "deals") == [
        (4, "amount", "amount has more decimals than KWD's minor unit (3 decimals, ISO 4217)",
         "1234.5678")]


def test_spend_amounts_are_checked_and_channels_take_the_touches_spelling(tmp_path: Path) -> None:
    spend = write(tmp_path, "spend.csv",
                  "channel,period_start,period_end,amount\n"
                  "toString,2025-01-01,2025-01-01,10.00\n"
                  "TOSTRING,2025-01-02,2025-01-02,5.00\n"
                  "linkedin ads,2025-01-01,2025-01-02,1.005\n"
                  "linkedin ads,2025-01-01,2025-01-02,2.00\n")
    loaded = load_spend(spend, labels=["toString", "LinkedIn Ads"])
    assert loaded.rows.select("channel", "amount_cents").rows() == [
        ("toString", 1000), ("toString", 500), ("LinkedIn Ads", 200)]
    assert loaded.rejects.select("row", "reason").rows() == [
        (3, "amount has more decimals than USD's minor unit (2 decimals, ISO 4217)")]
    # without labels the file's usual spelling (ties: the smallest text) names the channel
    assert load_spend(spend).rows["channel"].to_list()[:2] == ["TOSTRING", "TOSTRING"]


# -- channel names keep their spelling ----------------------------------------------------------
def test_spellings_of_one_channel_become_the_files_usual_one_and_ungrouped_are_noted(
        tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", TOUCH_HEADER
                    + "t1,2025-03-01T00:00:00Z,A,Quokka\n"
                    + "t2,2025-03-02T00:00:00Z,A,quokka\n"
                    + "t3,2025-03-03T00:00:00Z,A,Quokka\n"
                    + "t4,2025-03-04T00:00:00Z,A,Email\n"
                    + "t5,2025-03-05T00:00:00Z,A,[/]\x1b[31m\n")
    inputs = load(touches, write(tmp_path, "d.csv", DEAL_HEADER + DEAL))
    assert inputs.touchpoints["channel"].to_list() == [
        "Quokka", "Quokka", "Quokka", "Email", "[/]\x1b[31m"]
    assert inputs.notes == [
        "channels no rule groups (they count as group 'other'): 'Quokka', '[/]\\x1b[31m'; "
        "add them under [groups] in your channel rules"]


def test_preset_groups_match_any_case_and_keep_the_presets_spelling() -> None:
    from attribution.channels import ChannelRule, ChannelRules
    from attribution.sources import Preset, source_direct_channels, with_channel_groups

    preset = Preset(name="p", title="P", origin="test",
                    channel_groups={"Paid Social": "demand_creation", "Email": "nurture"},
                    direct_channels=("Direct Traffic", "Direct Traffic"))
    rules = ChannelRules(rules=(ChannelRule("email", source=("newsletter",)),),
                         groups={"EMAIL": "demand_capture"})
    merged = with_channel_groups(rules, preset)
    # the rules' own group wins over the preset's, whatever the spelling
    assert merged.groups == {"Paid Social": "demand_creation", "EMAIL": "demand_capture"}
    assert [merged.group_name(c) for c in ("PAID SOCIAL", "paid-social", "email")] == [
        "demand_creation", "demand_creation", "demand_capture"]
    assert source_direct_channels(preset) == ("Direct Traffic",)


def test_a_batch_leaves_the_spellings_to_the_whole_file(tmp_path: Path) -> None:
    from attribution.loading import load_touchpoints
    from attribution.validation import validate_touchpoints

    touches = write(tmp_path, "t.csv", TOUCH_HEADER + "t1,2025-03-01T00:00:00Z,A,Direct\n"
                    "t2,2025-03-02T00:00:00Z,A,direct\nt3,2025-03-03T00:00:00Z,A,direct\n")
    assert load_touchpoints(touches, load_rules(), None)[0]["channel"].to_list() == [
        "Direct", "direct", "direct"]
    assert validate_touchpoints(touches, load_rules(), None).good["channel"].to_list() == [
        "direct", "direct", "direct"]


def test_a_latin_1_spend_file_is_read_with_its_encoding(tmp_path: Path) -> None:
    spend = write(tmp_path, "spend.csv", "channel,period_start,period_end,amount\n"
                  "événements,2025-01-01,2025-01-01,10.00\n".encode("latin-1"))
    with pytest.raises(FileFormatError):
        load_spend(spend)
    assert load_spend(spend, encoding="latin-1").rows["channel"].to_list() == ["événements"]


def test_names_that_clash_once_trimmed_name_the_file(tmp_path: Path) -> None:
    # a Parquet file cannot repeat a name, but " channel" and "channel" become one when trimmed
    touches = tmp_path / "t.parquet"
    pl.DataFrame({"timestamp": ["2025-03-01"], "account_id": ["A"], "channel": ["email"],
                  " channel": ["direct"]}).write_parquet(touches)
    with pytest.raises(FileFormatError) as raised:
        load(touches, write(tmp_path, "d.csv", DEAL_HEADER + DEAL))
    assert str(raised.value) == (
        f"{touches}: touchpoints file names a column more than once: 'channel' (2 times); "
        "rename or remove the copies")


def test_an_integer_amount_beyond_64_bits_is_a_rejected_row() -> None:
    from attribution.validation import validate_deals

    deals = pl.DataFrame({"deal_id": ["d1", "d2"], "account_id": ["a", "a"],
                          "created_at": ["2025-01-01"] * 2, "status": ["open"] * 2,
                          "amount": pl.Series([2**63 + 5, 7], dtype=pl.UInt64)})
    checked = validate_deals(deals, None, "USD")
    assert checked.good.select("deal_id", "amount_cents").rows() == [("d2", 700)]
    assert checked.rejects.select("row", "reason", "value").rows() == [
        (1, "amount too large; expected at most 13 digits before the decimal point",
         str(2**63 + 5))]
