"""Loading: formats, timestamps, exact cents, statuses, column maps, rejects, row accounting."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.channels import load_rules
from attribution.config import Config
from attribution.errors import (
    ColumnNotFoundError,
    FileFormatError,
    InputError,
    RejectedRowError,
)
from attribution.loading import load_inputs
from attribution.pipeline import validate
from attribution.schema import UNMAPPED_CHANNEL
from attribution.validation import BLANKED

TIME_HINT = (
    "unparseable timestamp; expected ISO-8601 like 2025-03-04T10:15:00Z or 2025-03-04, or "
    "declare the format with --timestamp-format"
)
DEALS_HEADER = "deal_id,account_id,created_at,closed_at,status,amount\n"


def open_deal(folder: Path) -> Path:
    """A deals file with one open deal on account a1 (an input needs a data row)."""
    return write(folder, "d.csv", DEALS_HEADER + "d0,a1,2025-01-02,,open,1\n")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(touchpoints: Path, deals: Path, contacts: Path | None = None, **options):
    return load_inputs(touchpoints, deals, contacts, rules=load_rules(), **options)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def rejects_of(inputs, input_name: str) -> list[tuple[int, str, str, str | None]]:
    frame = inputs.rejects.filter(pl.col("input") == input_name)
    return list(frame.select("row", "column", "reason", "value").iter_rows())


def one_touch(tmp_path: Path, account: str = "a1") -> Path:
    return write(tmp_path, "t.csv", f"timestamp,account_id,channel\n2025-01-01,{account},email\n")


# -- formats and parsing ------------------------------------------------------------------------
def test_timestamps_with_and_without_zone_become_utc(tmp_path: Path) -> None:
    touches = write(
        tmp_path, "t.csv",
        "timestamp,account_id,channel\n"
        "2025-03-04T10:15:00Z,a1,email\n"
        "2025-03-04T10:15:00+02:00,a1,email\n"
        "2025-03-04T10:15:00,a1,email\n"
        "2025-03-04,a1,email\n"
        "2025-03-04 10:15,a1,email\n"
        "2025-03-04T10:15:00.250-05:00,a1,email\n",
    )
    inputs = load(touches, open_deal(tmp_path))
    assert inputs.touchpoints["timestamp"].to_list() == [
        utc(2025, 3, 4, 10, 15),
        utc(2025, 3, 4, 8, 15),
        utc(2025, 3, 4, 10, 15),
        utc(2025, 3, 4),
        utc(2025, 3, 4, 10, 15),
        utc(2025, 3, 4, 15, 15, 0, 250000),
    ]
    assert inputs.touchpoints.schema["timestamp"] == pl.Datetime("us", "UTC")


def test_amounts_are_exact_cents(tmp_path: Path) -> None:
    deals = write(
        tmp_path, "d.csv",
        "deal_id,account_id,created_at,status,amount\n"
        "d1,a1,2025-01-01,open,\"48,250.00\"\n"
        "d2,a1,2025-01-01,open,$12.5\n"
        "d3,a1,2025-01-01,open,0.1\n"
        "d4,a1,2025-01-01,open,1000.500\n"   # trailing zeros are not decimals
        "d8,a1,2025-01-01,open,0\n",
    )
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.rejects.height == 0
    assert inputs.deals["amount_cents"].to_list() == [4825000, 1250, 10, 100050, 0]
    assert inputs.deals.schema["amount_cents"] == pl.Int64


@pytest.mark.parametrize(
    ("spelling", "status"),
    [
        ("won", "won"), ("Closed Won", "won"), ("closed-won", "won"), ("WON", "won"),
        ("Closed Lost", "lost"), ("lost", "lost"),
        ("open", "open"), ("In Progress", "open"), ("Pipeline", "open"),
    ],
)
def test_crm_status_spellings(tmp_path: Path, spelling: str, status: str) -> None:
    deals = write(tmp_path, "d.csv", DEALS_HEADER + f"d1,a1,2025-01-01,2025-02-01,{spelling},5\n")
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.deals.select("status", "closed_at").rows() == [
        (status, None if status == "open" else utc(2025, 2, 1))
    ]


def test_csv_parquet_and_ndjson_give_the_same_frames(tmp_path: Path) -> None:
    touch_rows = [
        {"touchpoint_id": "t1", "timestamp": "2025-01-02T09:00:00Z", "contact_id": "c1",
         "account_id": None, "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand"},
        {"touchpoint_id": "t2", "timestamp": "2025-01-03", "contact_id": None,
         "account_id": "a2", "utm_source": "mystery", "utm_medium": "x", "utm_campaign": None},
    ]
    deal_rows = [{"deal_id": "d1", "account_id": "a1", "created_at": "2025-01-05",
                  "closed_at": "2025-02-01", "status": "Closed Won", "amount": "1200.50"}]
    contact_rows = [{"contact_id": "c1", "account_id": "a1", "lead_created_at": "2025-01-02"}]
    results = []
    for kind in ("csv", "parquet", "ndjson"):
        folder = tmp_path / kind
        folder.mkdir()
        paths = []
        for name, rows in (("t", touch_rows), ("d", deal_rows), ("c", contact_rows)):
            path = folder / f"{name}.{kind}"
            frame = pl.DataFrame(rows)
            if kind == "csv":
                frame.write_csv(path)
            elif kind == "parquet":
                frame.write_parquet(path)
            else:
                path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            paths.append(path)
        results.append(load(paths[0], paths[1], paths[2]))
    for inputs in results:
        assert inputs.rejects.height == 0
        assert inputs.touchpoints.select(
            "touchpoint_id", "timestamp", "account_id", "channel", "channel_group", "campaign"
        ).rows() == [
            ("t1", utc(2025, 1, 2, 9), "a1", "paid_search", "demand_capture", "brand"),
            ("t2", utc(2025, 1, 3), "a2", UNMAPPED_CHANNEL, UNMAPPED_CHANNEL, None),
        ]
        assert inputs.deals.select("deal_id", "closed_at", "status", "amount_cents").rows() == [
            ("d1", utc(2025, 2, 1), "won", 120050)
        ]
        assert inputs.contacts.rows() == [("c1", "a1", utc(2025, 1, 2))]
        assert inputs.unmapped.rows() == [("mystery", "x", 1)]


def test_parquet_typed_columns(tmp_path: Path) -> None:
    touches = tmp_path / "t.parquet"
    pl.DataFrame(
        {
            "timestamp": [datetime(2025, 1, 1, 12), datetime(2025, 1, 2, 12)],
            "account_id": [101, 102],  # integer ids become text
            "channel": ["Email", "direct"],
        }
    ).with_columns(
        pl.col("timestamp").dt.replace_time_zone("Europe/Berlin")
    ).write_parquet(touches)
    deals = tmp_path / "d.parquet"
    pl.DataFrame(
        {
            "deal_id": ["d1", "d2", "d3"],
            "account_id": ["101", "102", "101"],
            "created_at": [date(2025, 1, 5), date(2025, 1, 6), date(2025, 1, 7)],
            "closed_at": [datetime(2025, 2, 1, 8), None, None],  # naive: read as UTC
            "status": ["won", "open", "open"],
            "amount": [1.005, 250.0, float("nan")],
        }
    ).write_parquet(deals)
    inputs = load(touches, deals)
    assert inputs.touchpoints.select("timestamp", "account_id", "channel").rows() == [
        (utc(2025, 1, 1, 11), "101", "Email"),  # the file's spelling
        (utc(2025, 1, 2, 11), "102", "direct"),
    ]
    assert inputs.deals.select("deal_id", "created_at", "closed_at", "amount_cents").rows() == [
        ("d2", utc(2025, 1, 6), None, 25000),
    ]
    assert rejects_of(inputs, "deals") == [
        # a float is read through its shortest decimal text: 1.005 is not whole cents
        (1, "amount", "amount has more decimals than USD's minor unit (2 decimals, ISO 4217)",
         "1.005"),
        (3, "amount", "amount is not a number; expected a decimal like 48250.00", "NaN"),
    ]


def test_parquet_integer_and_decimal_amounts(tmp_path: Path) -> None:
    deals = tmp_path / "d.parquet"
    pl.DataFrame(
        {"deal_id": ["d1", "d2"], "account_id": ["a1", "a1"], "created_at": ["2025-01-01"] * 2,
         "status": ["open", "open"], "amount": [1200, -3]}
    ).write_parquet(deals)
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.deals["amount_cents"].to_list() == [120000]
    assert rejects_of(inputs, "deals") == [(2, "amount", "negative amount", "-3")]
    decimal_deals = tmp_path / "d2.parquet"
    pl.DataFrame({"deal_id": ["d1"], "account_id": ["a1"], "created_at": ["2025-01-01"],
                  "status": ["open"], "amount": ["19.99"]}).with_columns(
        pl.col("amount").cast(pl.Decimal(10, 2))  # money: keep name
    ).write_parquet(decimal_deals)
    assert load(one_touch(tmp_path), decimal_deals).deals["amount_cents"].to_list() == [1999]


def test_ndjson_with_mixed_types(tmp_path: Path) -> None:
    touches = write(
        tmp_path, "t.jsonl",
        '{"timestamp": "2025-01-01T00:00:00Z", "account_id": 7, "channel": "email"}\n'
        '{"timestamp": "2025-01-02", "account_id": "a2", "utm_source": "google", '
        '"utm_medium": "cpc"}\n',
    )
    deals = write(
        tmp_path, "d.ndjson",
        '{"deal_id": "d1", "account_id": "7", "created_at": "2025-01-05", "status": "open", '
        '"amount": 100.5}\n'
        '{"deal_id": "d2", "account_id": "a2", "created_at": "2025-01-05", "status": "open", '
        '"amount": "12"}\n',
    )
    inputs = load(touches, deals)
    assert inputs.touchpoints.select("account_id", "channel").rows() == [
        ("7", "email"), ("a2", "paid_search"),
    ]
    assert inputs.deals["amount_cents"].to_list() == [10050, 1200]


def test_semicolon_and_tab_separated_csv(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp;account_id;channel\n2025-01-01;a1;email\n")
    deals = write(tmp_path, "d.tsv", "deal_id\taccount_id\tcreated_at\tstatus\tamount\n"
                  "d1\ta1\t2025-01-02\topen\t5\n")
    inputs = load(touches, deals)
    assert inputs.touchpoints["account_id"].to_list() == ["a1"]
    assert inputs.deals["amount_cents"].to_list() == [500]


def test_column_names_mapped_in_config(tmp_path: Path) -> None:
    touches = write(
        tmp_path, "t.csv",
        "event_time,company,source,medium\n2025-01-01T08:00:00Z,a1,google,cpc\n",
    )
    deals = write(tmp_path, "d.csv", "id,company,opened,status,value\nd1,a1,2025-01-02,open,10\n")
    columns = {
        "touchpoints": {"timestamp": "event_time", "account_id": "company",
                        "utm_source": "source", "utm_medium": "medium"},
        "deals": {"deal_id": "id", "account_id": "company", "created_at": "opened",
                  "amount": "value"},
    }
    inputs = load(touches, deals, columns=columns)
    assert inputs.touchpoints.select("timestamp", "account_id", "channel").rows() == [
        (utc(2025, 1, 1, 8), "a1", "paid_search")
    ]
    assert inputs.deals.select("deal_id", "account_id", "amount_cents").rows() == [
        ("d1", "a1", 1000)]


def test_a_mapped_column_wins_over_one_already_named_like_the_target(tmp_path: Path) -> None:
    # used to crash with a polars DuplicateError
    touches = write(
        tmp_path, "t.csv", "timestamp,event_time,account_id,channel\njunk,2025-01-01,a1,email\n"
    )
    inputs = load(touches, open_deal(tmp_path),
                  columns={"touchpoints": {"timestamp": "event_time"}})
    assert inputs.rejects.height == 0
    assert inputs.touchpoints["timestamp"].to_list() == [utc(2025, 1, 1)]


def test_contact_touches_join_their_account(tmp_path: Path) -> None:
    touches = write(
        tmp_path, "t.csv",
        "timestamp,contact_id,account_id,channel\n"
        "2025-01-01,c1,,email\n"      # account from the contacts file
        "2025-01-02,c1,a9,email\n"    # the row's own account wins
        "2025-01-03,,a2,email\n"      # account-level touch
        "2025-01-04,c404,,email\n",   # unknown contact, no account
    )
    contacts = write(tmp_path, "c.csv", "contact_id,account_id,lead_created_at\nc1,a1,\n")
    inputs = load(touches, open_deal(tmp_path), contacts)
    assert inputs.touchpoints.select("contact_id", "account_id").rows() == [
        ("c1", "a1"), ("c1", "a9"), (None, "a2"),
    ]
    assert rejects_of(inputs, "touchpoints") == [
        (4, "contact_id",
         "unknown contact: not in the contacts file, and the row has no account_id", "c404")
    ]


def test_unmapped_sources_are_kept_and_reported(tmp_path: Path) -> None:
    touches = write(
        tmp_path, "t.csv",
        "timestamp,account_id,utm_source,utm_medium\n"
        "2025-01-01,a1,foo,bar\n2025-01-02,a1,foo,bar\n2025-01-03,a1,baz,\n"
        "2025-01-04,a1,google,cpc\n",
    )
    inputs = load(touches, open_deal(tmp_path))
    assert inputs.touchpoints["channel"].to_list() == [
        UNMAPPED_CHANNEL, UNMAPPED_CHANNEL, UNMAPPED_CHANNEL, "paid_search",
    ]
    assert inputs.unmapped.rows() == [("foo", "bar", 2), ("baz", None, 1)]


def test_currency_is_the_most_common_one_and_others_are_rejected(tmp_path: Path) -> None:
    deals = write(
        tmp_path, "d.csv",
        "deal_id,account_id,created_at,status,amount,currency\n"
        "d1,a1,2025-01-01,open,1,eur\nd2,a1,2025-01-01,open,1,EUR\nd3,a1,2025-01-01,open,1,USD\n"
        "d4,a1,2025-01-01,open,1,\n",
    )
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.currency == "EUR"
    assert inputs.deals["deal_id"].to_list() == ["d1", "d2", "d4"]
    assert rejects_of(inputs, "deals") == [
        (3, "currency", ("currency differs from the run's currency EUR; convert amounts first "
         "or set [money] currency"), "USD")
    ]
    in_dollars = load(one_touch(tmp_path), deals, currency="USD")
    assert in_dollars.deals["deal_id"].to_list() == ["d3", "d4"]


# -- file-level errors ------------------------------------------------------------------------
def test_missing_required_column_names_file_column_and_what_exists(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestmp,account_id,channel\n2025-01-01,a1,email\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load(touches, open_deal(tmp_path))
    assert str(caught.value) == (
        f"{touches}: missing column 'timestamp' (did you mean 'timestmp'?); the file has "
        "'timestmp', 'account_id', 'channel'; map a differently named column with "
        "[columns.touchpoints] in the config"
    )


def test_missing_deal_column(tmp_path: Path) -> None:
    deals = write(tmp_path, "d.csv", "deal_id,account,created_at,status\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load(one_touch(tmp_path), deals)
    assert str(caught.value) == (
        # difflib's hint for 'amount' is 'account' too: a close spelling, not a close meaning
        f"{deals}: missing column 'account_id' (did you mean 'account'?), 'amount' (did you mean "
        "'account'?); the file has "
        "'deal_id', 'account', 'created_at', 'status'; map a differently named column with "
        "[columns.deals] in the config"
    )


def test_missing_channel_information(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,account_id,chanel\n2025-01-01,a1,email\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load(touches, open_deal(tmp_path))
    assert str(caught.value) == (
        f"{touches}: missing column 'channel' (did you mean 'chanel'?); the file has "
        "'timestamp', 'account_id', 'chanel'; touchpoints need 'channel' or "
        "'utm_source'/'utm_medium'"
    )


def test_missing_contact_and_account(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,channel\n2025-01-01,email\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load(touches, open_deal(tmp_path))
    assert str(caught.value) == (
        f"{touches}: missing column 'account_id'; the file has 'timestamp', 'channel'; "
        "touchpoints need 'contact_id' and/or 'account_id'"
    )


def test_mapped_column_missing_from_the_file(tmp_path: Path) -> None:
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,status,amount\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load(one_touch(tmp_path), deals, columns={"deals": {"amount": "valeu"}})
    assert str(caught.value) == (
        f"{deals}: missing column 'valeu'; the file has 'deal_id', 'account_id', 'created_at', "
        "'status', 'amount'; the config maps deals column 'amount' to it"
    )


def test_unknown_extension_missing_file_and_empty_file(tmp_path: Path) -> None:
    deals = open_deal(tmp_path)
    with pytest.raises(FileFormatError) as caught:
        load(write(tmp_path, "t.xlsx", "x"), deals)
    assert str(caught.value) == (
        f"{tmp_path / 't.xlsx'}: unknown file type '.xlsx' for touchpoints; "
        "use .csv, .parquet or .ndjson/.jsonl"
    )
    with pytest.raises(FileFormatError) as caught:
        load(tmp_path / "nope.csv", deals)
    assert str(caught.value) == f"{tmp_path / 'nope.csv'}: no such touchpoints file"
    with pytest.raises(FileFormatError) as caught:
        load(write(tmp_path, "empty.csv", ""), deals)
    assert str(caught.value) == f"{tmp_path / 'empty.csv'}: cannot read touchpoints (empty CSV)"


@pytest.mark.parametrize("empty", ["touchpoints", "deals", "contacts"])
def test_a_header_only_input_stops_the_load(tmp_path: Path, empty: str) -> None:
    # a header-only touchpoints file would credit every deal to (no touch) without a word
    files = {
        "touchpoints": write(tmp_path, "t.csv", "timestamp,account_id,channel\n"
                             + ("" if empty == "touchpoints" else "2025-01-01,a1,email\n")),
        "deals": open_deal(tmp_path) if empty != "deals" else write(tmp_path, "d.csv",
                                                                      DEALS_HEADER),
        "contacts": write(tmp_path, "c.csv", "contact_id,account_id\n"
                          + ("" if empty == "contacts" else "c1,a1\n")),
    }
    with pytest.raises(InputError) as raised:
        load(files["touchpoints"], files["deals"], files["contacts"])
    assert str(raised.value) == (
        f"{files[empty]}: no data rows in the {empty} file (a header only, or nothing); "
        "export it again with its rows")


# -- rejects, one per bad input -----------------------------------------------------------------
BAD_DEALS = [
    ("d1,a1,2025-01-02,,open,-5", "amount", "negative amount", "-5"),
    ("d1,a1,2025-01-02,,open,abc", "amount",
     "amount is not a number; expected a decimal like 48250.00", "abc"),
    ("d1,a1,2025-01-02,,open,1.2.3", "amount",
     "amount is not a number; expected a decimal like 48250.00", "1.2.3"),
    ("d1,a1,2025-01-02,2025-01-03,won,", "amount", "missing amount", None),
    ("d1,a1,yesterday,,open,5", "created_at", TIME_HINT, "yesterday"),
    ("d1,a1,,,open,5", "created_at", "missing created_at", None),
    ("d1,a1,2025-01-02,2025-13-01,won,5", "closed_at", TIME_HINT, "2025-13-01"),
    ("d1,a1,2025-01-02,,won,5", "closed_at", "missing closed_at for a won or lost deal", None),
    ("d1,a1,2025-01-02,2025-01-01,lost,5", "closed_at", "closed_at is before created_at",
     "2025-01-01"),
    ("d1,a1,2025-01-02,,maybe,5", "status", "unknown status; expected won, lost or open", "maybe"),
    ("d1,a1,2025-01-02,,,5", "status", "missing status", None),
    ("d1,a9,2025-01-02,,open,5", "account_id",
     "unknown account: not in the contacts file and never touched", "a9"),
    ("d1,,2025-01-02,,open,5", "account_id", "missing account_id", None),
    (",a1,2025-01-02,,open,5", "deal_id", "missing deal_id", None),
    # the journey id of an account touched without a deal: a deal named so would clash with it
    ("account:a1,a1,2025-01-02,,open,5", "deal_id",
     ("deal_id starts with 'account:', which names the journeys of accounts without a deal; "
     "rename the deal"), "account:a1"),
]


@pytest.mark.parametrize(("line", "column", "reason", "value"), BAD_DEALS)
def test_each_bad_deal_is_rejected_with_its_reason(tmp_path, line, column, reason, value) -> None:
    deals = write(tmp_path, "d.csv", DEALS_HEADER + "d0,a1,2025-01-02,,open,1\n" + line + "\n")
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.deals["deal_id"].to_list() == ["d0"]
    assert inputs.rejects.rows() == [(str(deals), "deals", 2, column, reason, value, None)]
    assert inputs.accounting["deals"].rejected == {reason: 1}
    with pytest.raises(RejectedRowError) as caught:
        load(one_touch(tmp_path), deals, strict=True)
    shown = "empty" if value is None else repr(value)
    assert str(caught.value) == f"{deals}: row 2, column {column!r}: {reason} (value {shown})"


BAD_TOUCHES = [
    ("t1,not-a-date,c1,a1,email,,", "timestamp", TIME_HINT, "not-a-date"),
    ("t1,,c1,a1,email,,", "timestamp", "missing timestamp", None),
    ("t1,2025-01-01,,,email,,", "contact_id", "no contact_id and no account_id", None),
    ("t1,2025-01-01,c1,a1,,,", "channel", "no channel and no utm_source/utm_medium", None),
]


@pytest.mark.parametrize(("line", "column", "reason", "value"), BAD_TOUCHES)
def test_each_bad_touch_is_rejected_with_its_reason(tmp_path, line, column, reason, value) -> None:
    header = "touchpoint_id,timestamp,contact_id,account_id,channel,utm_source,utm_medium\n"
    touches = write(tmp_path, "t.csv", header + "t0,2025-01-01,c1,a1,email,,\n" + line + "\n")
    deals = open_deal(tmp_path)
    inputs = load(touches, deals)
    assert inputs.touchpoints["touchpoint_id"].to_list() == ["t0"]
    assert inputs.rejects.rows() == [(str(touches), "touchpoints", 2, column, reason, value,
                                      None)]
    with pytest.raises(RejectedRowError) as caught:
        load(touches, deals, strict=True)
    shown = "empty" if value is None else repr(value)
    assert str(caught.value) == f"{touches}: row 2, column {column!r}: {reason} (value {shown})"


def test_touch_without_account_and_no_contacts_file(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,contact_id,channel\n2025-01-01,c1,email\n")
    inputs = load(touches, open_deal(tmp_path))
    assert rejects_of(inputs, "touchpoints") == [
        (1, "contact_id", "no account_id, and no contacts file to find the contact's account", "c1")
    ]


def test_bad_contacts(tmp_path: Path) -> None:
    contacts = write(
        tmp_path, "c.csv",
        "contact_id,account_id,lead_created_at\n"
        "c1,a1,2025-01-01\n,a1,\nc2,,\nc3,a1,someday\nc4,a1,\nc4,a2,\n",
    )
    inputs = load(one_touch(tmp_path), open_deal(tmp_path), contacts)
    # an unreadable lead-created date is left blank, the contact kept, the cell listed
    assert inputs.contacts.select("contact_id", "lead_created_at").rows() == [
        ("c1", datetime(2025, 1, 1, tzinfo=UTC)), ("c3", None)]
    assert rejects_of(inputs, "contacts") == [
        (2, "contact_id", "missing contact_id", None),
        (3, "account_id", "missing account_id", None),
        (4, "lead_created_at", f"cell left blank, the row kept: {TIME_HINT}", "someday"),
        (5, "contact_id", "duplicate contact_id with different values on another row", "c4"),
        (6, "contact_id", "duplicate contact_id with different values on another row", "c4"),
    ]
    counted = inputs.accounting["contacts"]
    assert (counted.read, counted.used, counted.rejected_total, counted.blanked) == (6, 2, 4, 1)


def test_duplicate_ids(tmp_path: Path) -> None:
    deals = write(
        tmp_path, "d.csv",
        DEALS_HEADER
        + "d1,a1,2025-01-02,,open,5\n"
        + "d1,a1,2025-01-02T00:00:00Z,,Open,5.00\n"   # same values, other spelling: a copy
        + "d2,a1,2025-01-02,,open,5\n"
        + "d2,a1,2025-01-02,,open,6\n",               # conflicting: both rejected
    )
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.deals["deal_id"].to_list() == ["d1"]
    reason = "duplicate deal_id with different values on another row"
    assert rejects_of(inputs, "deals") == [
        (3, "deal_id", reason, "d2"), (4, "deal_id", reason, "d2")]
    accounting = inputs.accounting["deals"].as_dict()
    assert (accounting["read"], accounting["used"], accounting["deduplicated"],
            accounting["rejected"]) == (4, 1, 1, 2)


def test_a_copy_of_a_rejected_row_is_kept_not_lost(tmp_path: Path) -> None:
    # row 1 is rejected (closed_at unparseable: parses to null, like row 2's empty cell);
    # row 2 used to be counted as a 'copy' of it, so deal d1 vanished from both used and rejects
    deals = write(tmp_path, "d.csv",
                  DEALS_HEADER + "d1,a1,2025-01-02,bad,open,5\nd1,a1,2025-01-02,,open,5\n")
    contacts = write(tmp_path, "c.csv",
                     "contact_id,account_id,lead_created_at\nc1,a1,soon\nc1,a1,\n")
    inputs = load(one_touch(tmp_path), deals, contacts)
    assert inputs.deals.select("_row", "deal_id").rows() == [(2, "d1")]
    assert inputs.contacts.rows() == [("c1", "a1", None)]
    assert [(r[0], r[1]) for r in inputs.rejects.select("input", "row").rows()] == [
        ("contacts", 1), ("deals", 1),
    ]


def test_a_conflict_only_counts_among_valid_rows(tmp_path: Path) -> None:
    # row 2 is rejected for its own reason; row 1 is then the only valid d1
    deals = write(tmp_path, "d.csv",
                  DEALS_HEADER + "d1,a1,2025-01-02,,open,5\nd1,a1,2025-01-02,,open,-5\n")
    inputs = load(one_touch(tmp_path), deals)
    assert inputs.deals["deal_id"].to_list() == ["d1"]
    assert rejects_of(inputs, "deals") == [(2, "amount", "negative amount", "-5")]


def test_all_rows_rejected(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\nx,a1,email\n,a1,email\n")
    deals = write(tmp_path, "d.csv", DEALS_HEADER + "d1,a1,2025-01-02,,open,5\n")
    inputs = load(touches, deals)
    assert inputs.touchpoints.height == 0
    # no touch survived, so a1 is unknown
    assert rejects_of(inputs, "deals") == [
        (1, "account_id", "unknown account: not in the contacts file and never touched", "a1")
    ]
    result = validate(Config(touchpoints=touches, deals=deals, max_reject_rate=1.0))
    assert result.journeys.journeys.collect().height == 0
    assert [a.as_dict()["rejected"] for a in result.accounting] == [2, 1]


# -- accounting: read = used + deduplicated + out_of_window + rejected ---------------------------
def _cell(draw, choices):
    return draw(st.sampled_from(choices))


@st.composite
def messy_exports(draw):
    times = ["2025-01-01T00:00:00Z", "2025-01-01T00:10:00Z", "2025-01-01 00:40", "2025-02-01",
             "2025-06-30T23:59:59+02:00", "2024-01-01", "garbage", ""]
    touch_rows = draw(st.lists(
        st.tuples(
            st.sampled_from(["", "t1", "t2", "t3"]), st.sampled_from(times),
            st.sampled_from(["", "c1", "c2", "c9"]), st.sampled_from(["", "a1", "a2", "a3"]),
            st.sampled_from(["", "email", "direct"]), st.sampled_from(["", "google", "zzz"]),
            st.sampled_from(["", "cpc"]),
        ),
        min_size=1, max_size=25,
    ))
    deal_rows = draw(st.lists(
        st.tuples(
            st.sampled_from(["", "d1", "d2", "d3", "d4"]), st.sampled_from(["", "a1", "a2", "a4"]),
            st.sampled_from(["2025-01-15", "2025-03-01", "2026-01-01", "nope", ""]),
            st.sampled_from(["", "2025-02-01", "2025-04-01", "2025-01-01", "bad"]),
            st.sampled_from(["won", "Closed Lost", "open", "meh", ""]),
            st.sampled_from(["100", "-1", "x", "", "12.345", "\"1,000\""]),
        ),
        min_size=1, max_size=10,
    ))
    contact_rows = draw(st.lists(
        st.tuples(
            st.sampled_from(["", "c1", "c2", "c3"]), st.sampled_from(["", "a1", "a2"]),
            st.sampled_from(["", "2025-01-01", "bad"]),
        ),
        min_size=1, max_size=6,
    ))
    as_of = draw(st.sampled_from([None, "2025-03-01"]))
    return touch_rows, deal_rows, contact_rows, as_of


def _csv(header: str, rows) -> str:
    return header + "\n" + "".join(",".join(row) + "\n" for row in rows)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messy_exports())
def test_every_row_is_accounted_for(tmp_path: Path, exports) -> None:
    touch_rows, deal_rows, contact_rows, as_of = exports
    touches = write(tmp_path, "t.csv", _csv(
        "touchpoint_id,timestamp,contact_id,account_id,channel,utm_source,utm_medium", touch_rows))
    deals = write(tmp_path, "d.csv", _csv(
        "deal_id,account_id,created_at,closed_at,status,amount", deal_rows))
    contacts = write(tmp_path, "c.csv", _csv("contact_id,account_id,lead_created_at", contact_rows))
    config = Config(touchpoints=touches, deals=deals, contacts=contacts, max_reject_rate=1.0,
                    as_of=None if as_of is None
                    else datetime.fromisoformat(as_of).replace(tzinfo=UTC))
    result = validate(config)
    expected_reads = {"touchpoints": len(touch_rows), "deals": len(deal_rows),
                      "contacts": len(contact_rows)}
    for item in result.accounting:
        counts = item.as_dict()
        assert counts["read"] == expected_reads[item.input]
        assert counts["read"] == (
            counts["used"] + counts["deduplicated"] + counts["out_of_window"] + counts["rejected"]
        ), counts
        assert min(counts["used"], counts["deduplicated"], counts["out_of_window"]) >= 0
        # every reject names its file, row and column
        rejects = result.rejects.filter(pl.col("input") == item.input)
        # the rejects list the rejected rows, and the cells left blank in used rows
        assert rejects.height == counts["rejected"] + counts["blanked"]
        assert rejects.filter(pl.col("reason").str.starts_with(BLANKED)).height == \
            counts["blanked"]
        assert rejects["row"].is_unique().all()
        assert rejects["file"].to_list() == [item.path] * rejects.height
        assert rejects["column"].null_count() == 0 and rejects["reason"].null_count() == 0
    # used touches are exactly the distinct rows that appear in some journey
    touch_counts = next(a for a in result.accounting if a.input == "touchpoints")
    journeys = result.journeys
    assert journeys.journeys.filter(pl.col("status") != "none").collect().height == next(
        a for a in result.accounting if a.input == "deals"
    ).used
    assert result.stats is not None and result.stats.touches_used == touch_counts.used


@pytest.mark.parametrize("collide", [False, True])
def test_utm_combinations_map_to_channels_whether_or_not_their_keys_collide(
        tmp_path: Path, monkeypatch, collide: bool) -> None:
    # each distinct (source, medium, campaign) is mapped once and looked up by a 64-bit key;
    # when two combinations key alike the rows are joined on the text instead: same channels
    import attribution.validation as loading_module

    if collide:
        monkeypatch.setattr(loading_module, "utm_key",
                            lambda: pl.col("utm_source").str.len_bytes().cast(pl.UInt64) * 0)
    touches = write(tmp_path, "t.csv", (
        "timestamp,account_id,utm_source,utm_medium,utm_campaign\n"
        "2025-03-01,A,google,cpc,brand\n"
        "2025-03-02,A,linkedin,paid_social,\n"
        "2025-03-03,A,,,\n"
        "2025-03-04,A,google,cpc,\n"
        "2025-03-05,A,spotify,podcast,q1\n"
        "2025-03-06,A,google,cpc,brand\n"
        "2025-03-07,A,nowhere,unknown,\n"
    ))
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-03-10,2025-03-20,won,100\n")
    inputs = load(touches, deals)
    assert inputs.touchpoints.sort("_row").select("_row", "channel").rows() == [
        (1, "paid_search"), (2, "paid_social"), (4, "paid_search"), (5, "podcast"),
        (6, "paid_search"), (7, "(unmapped)"),
    ]
    assert rejects_of(inputs, "touchpoints") == [
        (3, "channel", "no channel and no utm_source/utm_medium", None)]


@pytest.mark.parametrize("messy", [False, True])
def test_utm_values_are_trimmed_whether_or_not_the_file_needs_it(tmp_path: Path, messy) -> None:
    # a file whose distinct utm values have no blanks keeps its columns as they are; one with
    # blanks (around a value, or a value that is only blanks) is trimmed row by row: the same
    # touches and channels either way
    pad = (lambda v: f"  {v} ") if messy else (lambda v: v)
    frame = pl.DataFrame({
        "touchpoint_id": ["t1", "t2", "t3", "t4"],
        "timestamp": [utc(2025, 3, d) for d in (1, 2, 3, 4)],
        "account_id": ["A"] * 4,
        "utm_source": [pad("google"), "google", "linkedin", "spotify"],
        "utm_medium": ["cpc", "cpc", "paid_social", "podcast"],
        "utm_campaign": ["brand", pad("brand"), " " if messy else None, None],
    })
    touches = tmp_path / "t.parquet"
    frame.write_parquet(touches)
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-03-10,2025-03-20,won,100\n")
    inputs = load(touches, deals)
    assert inputs.touchpoints.sort("_row").select(
        "utm_source", "utm_medium", "campaign", "channel").rows() == [
        ("google", "cpc", "brand", "paid_search"), ("google", "cpc", "brand", "paid_search"),
        ("linkedin", "paid_social", None, "paid_social"), ("spotify", "podcast", None, "podcast"),
    ]


def test_each_input_is_recorded_with_the_sha256_of_its_bytes():
    # the digests are taken on a thread while the files load
    demo = Path(__file__).parent.parent / "fixtures" / "demo"
    paths = {name: demo / f"{name}.csv" for name in ("contacts", "touchpoints", "deals")}
    inputs = load(paths["touchpoints"], paths["deals"], paths["contacts"])
    assert {f.input: f.sha256 for f in inputs.files} == {
        name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()
    }


def test_a_missing_file_is_reported_while_the_others_are_digested(tmp_path):
    touchpoints = write(tmp_path, "touchpoints.csv", "touchpoint_id,timestamp,account_id,channel\n"
                        "t1,2025-01-01,A,podcast\n")
    with pytest.raises(FileFormatError, match="deals.csv"):
        load(touchpoints, tmp_path / "deals.csv")
