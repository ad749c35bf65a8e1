"""What a new user's trial with HubSpot exports found in reading the inputs, end to end through
the command line: a ragged CSV row, currency signs and codes on amounts, rejects that name the
file's own columns, a contact's unreadable lead date, a repeated header row and the wording of
an encoding error. Each bad input gives one line naming the file, the row and what is wrong,
and exit code 2 where the run stops."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from attribution.channels import load_rules
from attribution.cli import cli
from attribution.loading import load_inputs

CONTACTS = (
    "Record ID,First Name,Associated Company ID,Create Date\n"
    "1001,Ann,5000,02/09/2025 03:44 PM\n"
    "1002,Bob,5000,02/13/2025 10:00 AM\n"
    "1007,Cy,5001,31.02.2025\n"
    "1008,Dee,,03/01/2025 09:00 AM\n"
)
INTERACTIONS = (
    "Interaction date,Interaction type,Interaction source,Campaign,Contact ID,"
    "Associated Company IDs\n"
    "02/13/2025 09:58 PM,Page view,Organic Search,Q1,1001,5000\n"
    "02/20/2025 10:00 AM,Page view,Paid Search,Q1,1007,\n"
    "02/21/2025 10:00 AM,Page view,Paid Search,Q1,1008,\n"
    "02/22/2025 10:00 AM,Page view,Email Marketing,Q1,1002,\n"
)
DEAL_HEADER = ("Deal ID,Deal Name,Deal Stage,Amount,Create Date,Close Date,"
               "Associated Company IDs\n")
DEALS = DEAL_HEADER + (
    '80001,Acme,Closed Won,"$12,500.00",03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n'
    "80002,Acme,Closed Won,USD 15000,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5001\n"
    "80003,Acme,Closed Won,15000.50 USD,03/17/2025 09:00 AM,04/17/2025 09:00 AM,5000\n"
    '80004,Acme,Closed Lost,"€9,000.00",03/18/2025 09:00 AM,04/18/2025 09:00 AM,5001\n'
)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def exports(tmp_path: Path) -> dict[str, Path]:
    return {"contacts": write(tmp_path, "contacts.csv", CONTACTS),
            "touchpoints": write(tmp_path, "interactions.csv", INTERACTIONS),
            "deals": write(tmp_path, "deals.csv", DEALS)}


def validate(exports: dict[str, Path], *extra: str, **paths: Path):
    files = {**exports, **paths}
    return CliRunner().invoke(cli, [
        "-q", "validate", "--source", "hubspot", "--touchpoints", str(files["touchpoints"]),
        "--contacts", str(files["contacts"]), "--deals", str(files["deals"]),
        "--max-reject-rate", "1", *extra], catch_exceptions=False)


def stopped(result) -> str:
    """The one line a stopped run prints (exit code 2)."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def clean(exports: dict[str, Path]) -> dict[str, Path]:
    """The exports with only the contacts (and their touches) that have nothing wrong."""
    folder = exports["deals"].parent
    return {**exports,
            "contacts": write(folder, "clean_contacts.csv",
                              "\n".join(CONTACTS.splitlines()[:3]) + "\n"),
            "touchpoints": write(folder, "clean_interactions.csv",
                                 "\n".join(INTERACTIONS.splitlines()[:2]) + "\n")}


def load(exports: dict[str, Path], **options):
    return load_inputs(exports["touchpoints"], exports["deals"], exports["contacts"],
                       rules=load_rules(), source="hubspot", **options)


# -- 1. a CSV row with more fields than the header -----------------------------------------------
def test_a_row_with_extra_fields_is_named_by_its_row_and_line(exports, tmp_path):
    ragged = write(tmp_path, "ragged.csv", DEAL_HEADER + (
        "80001,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n"
        "80002,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000,extra,cells\n"))
    assert stopped(validate(exports, deals=ragged)) == (
        f"Error: {ragged}: row 2 (line 3) of the deals file has 9 fields, the header has 7; "
        'quote a cell that holds a comma ("1,234.50"), or remove the extra cells')


def test_below_a_quoted_line_break_the_line_is_not_the_row_plus_one(exports, tmp_path):
    ragged = write(tmp_path, "ragged.csv", DEAL_HEADER + (
        '80001,"Acme\nexpansion",Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n'
        "80002,Acme,Closed Won,1,234.50,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n"))
    assert stopped(validate(exports, deals=ragged)) == (
        f"Error: {ragged}: row 2 (line 4) of the deals file has 8 fields, the header has 7; "
        'quote a cell that holds a comma ("1,234.50"), or remove the extra cells')


def test_a_quoted_cell_never_closed_is_named_by_the_row_it_opens_in(exports, tmp_path):
    open_quote = write(tmp_path, "quote.csv", DEAL_HEADER + (
        "80001,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n"
        '80002,"Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n'
        "80003,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n"))
    assert stopped(validate(exports, deals=open_quote)) == (
        f"Error: {open_quote}: row 2 (line 3) of the deals file opens a quoted cell that is "
        'never closed; close its quote, or double a quote inside a cell ("")')


def test_a_semicolon_file_names_its_separator(exports, tmp_path):
    ragged = write(tmp_path, "ragged.csv", DEAL_HEADER.replace(",", ";") + (
        "80001;Acme;Closed Won;100;2025-03-16;2025-04-16;5000;x\n"))
    assert stopped(validate(exports, deals=ragged)) == (
        f"Error: {ragged}: row 1 (line 2) of the deals file has 8 fields, the header has 7; "
        "quote a cell that holds a semicolon, or remove the extra cells")


def test_a_row_with_fewer_fields_reads_its_last_cells_as_blank(exports, tmp_path):
    # Excel leaves a row's trailing empty cells out: they are blank, and checked as any row
    short = write(tmp_path, "short.csv", DEAL_HEADER + (
        "80001,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n"
        "80002,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM\n"))
    rejects = tmp_path / "rejects.csv"
    result = validate(exports, "--rejects", str(rejects), deals=short)
    assert result.exit_code == 0, result.output
    assert pl.read_csv(rejects).filter(pl.col("input") == "deals").select(
        "row", "column", "reason").rows() == [
        (2, "Associated Company IDs", "missing account_id")]


# -- 2. currency signs and codes on amounts -----------------------------------------------------
def test_a_sign_or_code_of_the_run_currency_is_read_and_another_is_rejected(exports):
    inputs = load(exports)
    assert inputs.deals.select("deal_id", "amount_cents").rows() == [
        ("80001", 1_250_000), ("80002", 1_500_000), ("80003", 1_500_050)]
    assert inputs.rejects.filter(pl.col("input") == "deals").select(
        "row", "column", "reason", "value").rows() == [
        (4, "Amount", "amount is in EUR ('€'), not the run's currency USD; convert amounts "
         "first or set [money] currency", "€9,000.00")]


def test_in_a_euro_run_dollars_are_rejected_naming_both_currencies(exports, tmp_path):
    rejects = tmp_path / "rejects.csv"
    result = validate(exports, "--currency", "EUR", "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    assert pl.read_csv(rejects).filter(pl.col("input") == "deals").select(
        "row", "reason").rows() == [
        (1, "amount is in a currency written '$' (USD, CAD, AUD and others), not the run's "
            "currency EUR; convert amounts first or set [money] currency"),
        (2, "amount is in USD, not the run's currency EUR; convert amounts first or set [money] "
            "currency"),
        (3, "amount is in USD, not the run's currency EUR; convert amounts first or set [money] "
            "currency"),
    ]
    assert stopped(validate(clean(exports), "--currency", "EUR", "--strict")) == (
        f"Error: {exports['deals']}: row 1, column 'Amount': amount is in a currency written "
        "'$' (USD, CAD, AUD and others), not the run's currency EUR; convert amounts first or "
        "set [money] currency (value '$12,500.00')")


def test_dollar_sign_is_any_dollar_but_a_country_sign_is_its_own(tmp_path):
    deals = write(tmp_path, "d.csv", (
        "deal_id,account_id,created_at,closed_at,status,amount\n"
        "D1,A,2025-01-02,2025-02-01,won,$1000\nD2,A,2025-01-02,2025-02-01,won,CA$ 20.5\n"
        "D3,A,2025-01-02,2025-02-01,won,US$5\nD4,A,2025-01-02,2025-02-01,won,-$5\n"))
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\n2025-01-01,A,email\n")
    inputs = load_inputs(touches, deals, rules=load_rules(), currency="CAD")
    assert inputs.deals.select("deal_id", "amount_cents").rows() == [
        ("D1", 100_000), ("D2", 2_050)]
    assert inputs.rejects.select("row", "reason").rows() == [
        (3, "amount is in USD ('US$'), not the run's currency CAD; convert amounts first or "
            "set [money] currency"),
        (4, "negative amount"),
    ]


def test_signs_keep_the_currency_minor_unit_exact(tmp_path):
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\n2025-01-01,A,email\n")
    yen = write(tmp_path, "yen.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                "D1,A,2025-01-02,2025-02-01,won,\"¥1,200\"\nD2,A,2025-01-02,2025-02-01,won,"
                "JPY 1200.5\n")
    inputs = load_inputs(touches, yen, rules=load_rules(), currency="JPY")
    assert inputs.deals["amount_cents"].to_list() == [1200]
    assert inputs.rejects["reason"].to_list() == [
        "amount has more decimals than JPY's minor unit (no decimals, ISO 4217)"]
    dinar = write(tmp_path, "kwd.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-01-02,2025-02-01,won,KWD 1.234\n")
    assert load_inputs(touches, dinar, rules=load_rules(), currency="KWD"
                       ).deals["amount_cents"].to_list() == [1234]


# -- 3. rejects name the file's own column -------------------------------------------------------
def test_rejects_and_strict_name_the_column_as_the_file_header_does(exports, tmp_path):
    deals = write(tmp_path, "deals2.csv", DEAL_HEADER + (
        '80001,Acme,Closed Won,"1 234,50",03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n'
        "80002,Acme,Closed Won,100,someday,04/16/2025 09:00 AM,5000\n"))
    rejects = tmp_path / "rejects.csv"
    assert validate(exports, "--rejects", str(rejects), deals=deals).exit_code == 0
    assert pl.read_csv(rejects).filter(pl.col("input") == "deals").select(
        "row", "column").rows() == [(1, "Amount"), (2, "Create Date")]
    assert stopped(validate(clean(exports), "--strict", deals=deals)) == (
        f"Error: {deals}: row 1, column 'Amount': amount is not a number; expected a decimal "
        "like 48250.00 (value '1 234,50')")


# -- 4. a contact's unreadable lead date --------------------------------------------------------
def test_an_unreadable_lead_date_keeps_the_contact_and_its_touches(exports, tmp_path):
    rejects = tmp_path / "rejects.csv"
    result = validate(exports, "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    listed = pl.read_csv(rejects, infer_schema=False).filter(pl.col("input") != "deals")
    reason = ("unparseable timestamp; does not fit the format detected for this column, "
              "'%m/%d/%Y %I:%M %p' (month/day/year, 12-hour clock), nor ISO-8601; declare the "
              "format with --timestamp-format")
    assert listed.select("input", "row", "column", "reason", "value").rows() == [
        ("contacts", "3", "Create Date", f"cell left blank, the row kept: {reason}",
         "31.02.2025"),
        ("contacts", "4", "Associated Company ID", "missing account_id", None),
        # the touch of a rejected contact says so, not that the contact is unknown
        ("touchpoints", "3", "Contact ID", "contact rejected in the contacts file (missing "
         "account_id), and the row has no account_id", "1008"),
    ]
    inputs = load(exports)
    assert inputs.contacts.filter(pl.col("contact_id") == "1007").select(
        "account_id", "lead_created_at").rows() == [("5001", None)]
    assert inputs.touchpoints["contact_id"].to_list() == ["1001", "1007", "1002"]
    counted = inputs.accounting["contacts"]
    assert (counted.read, counted.used, counted.rejected_total, counted.blanked) == (4, 3, 1, 1)
    assert (f"{exports['contacts']}: 1 Create Date value could not be used and is left blank "
            "(row 3: '31.02.2025'): each contact is kept with its touches, without a "
            "lead-created date; the rejects list each cell and why") in inputs.notes
    assert stopped(validate(exports, "--strict")) == (
        f"Error: {exports['contacts']}: row 3, column 'Create Date': cell left blank, the row "
        f"kept: {reason} (value '31.02.2025')")


def test_a_lead_date_outside_the_horizon_is_left_blank_too(tmp_path):
    touches = write(tmp_path, "t.csv", "timestamp,contact_id,channel\n2025-01-01,c1,email\n")
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-01-02,,open,1\n")
    contacts = write(tmp_path, "c.csv", "contact_id,account_id,lead_created_at\nc1,A,1970-01-01\n")
    inputs = load_inputs(touches, deals, contacts, rules=load_rules())
    assert inputs.contacts.rows() == [("c1", "A", None)]
    assert inputs.touchpoints["contact_id"].to_list() == ["c1"]
    assert inputs.rejects.select("input", "column", "reason").rows() == [
        ("contacts", "lead_created_at", "cell left blank, the row kept: timestamp before "
         "1990-01-01, outside the run's horizon")]


# -- 5. a repeated header row -------------------------------------------------------------------
def test_a_repeated_header_row_is_rejected_as_such(exports, tmp_path):
    joined = write(tmp_path, "joined.csv", DEALS + DEAL_HEADER + (
        "80005,Acme,Closed Won,100,03/16/2025 09:00 AM,04/16/2025 09:00 AM,5000\n"))
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(cli, [
        "validate", "--source", "hubspot", "--touchpoints", str(exports["touchpoints"]),
        "--contacts", str(exports["contacts"]), "--deals", str(joined), "--max-reject-rate",
        "1", "--rejects", str(rejects)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert pl.read_csv(rejects, infer_schema=False).filter(pl.col("input") == "deals").select(
        "row", "column", "reason").rows() == [
        (str(4), "Amount", "amount is in EUR ('€'), not the run's currency USD; convert amounts "
         "first or set [money] currency"),
        ("5", "", "repeats the header (exports joined one after another?); the row is not "
         "data"),
    ]
    # neither a status value to map nor a timestamp the run cannot read
    assert "[statuses]" not in result.stderr and "Deal Stage" not in result.stderr
    inputs = load({**exports, "deals": joined})
    assert inputs.deals["deal_id"].to_list() == ["80001", "80002", "80003", "80005"]
    assert inputs.accounting["deals"].read == 6


def test_a_header_repeated_in_touchpoints_and_contacts_too(exports, tmp_path):
    touches = write(tmp_path, "t.csv", INTERACTIONS + INTERACTIONS.splitlines()[0] + "\n")
    contacts = write(tmp_path, "c.csv", CONTACTS + " Record ID , First Name,Associated Company "
                     "ID,Create Date\n")
    inputs = load({**exports, "touchpoints": touches, "contacts": contacts})
    assert inputs.rejects.filter(pl.col("reason").str.starts_with("repeats the header")).select(
        "input", "row").rows() == [("contacts", 5), ("touchpoints", 5)]


# -- 6. an encoding error in words --------------------------------------------------------------
def test_a_cp1252_file_names_the_byte_its_line_and_what_cp1252_reads(exports, tmp_path):
    content = DEALS.replace("Acme,Closed Won,\"$12", "Acme – Müller,Closed Won,\"$12")
    cp1252 = write(tmp_path, "cp1252.csv", content.encode("cp1252"))
    offset = content.encode("cp1252").index(b"\x96")
    assert stopped(validate(exports, deals=cp1252)) == (
        f"Error: {cp1252}: deals file is not valid UTF-8 at byte {offset} (line 2, byte 12 of "
        "the line: 0x96, which cp1252 reads as '–'); if it was saved in another encoding, name "
        "it: --encoding deals=cp1252 (or [inputs] encoding = { deals = \"cp1252\" } in the "
        "config) reads a deals file saved by Windows or Excel (latin-1 for ISO-8859-1), "
        "--encoding cp1252 every input")
    assert validate(exports, "--encoding", "deals=cp1252", deals=cp1252).exit_code == 0


def test_a_contact_lead_date_is_read_when_valid(exports):
    # (the kept contacts keep their readable dates)
    inputs = load(exports)
    assert inputs.contacts.filter(pl.col("contact_id") == "1001")["lead_created_at"].to_list() \
        == [datetime(2025, 2, 9, 15, 44, tzinfo=UTC)]


def test_spend_amounts_are_checked_against_the_run_currency_too(tmp_path):
    from attribution.spend import load_spend

    spend = write(tmp_path, "spend.csv", (
        "channel,period_start,period_end,amount\n"
        "paid_search,2025-01-01,2025-01-31,$1000\n"
        "paid_search,2025-02-01,2025-02-28,\"€1,000.00\"\n"
        "paid_search,2025-03-01,2025-03-31,1000 USD\n"))
    loaded = load_spend(spend, currency="USD")
    assert loaded.rows["amount_cents"].to_list() == [100_000, 100_000]
    assert loaded.rejects.select("row", "column", "reason").rows() == [
        (2, "amount", "amount is in EUR ('€'), not the run's currency USD; convert amounts "
         "first or set [money] currency")]


def test_a_ragged_row_is_found_in_a_file_of_another_encoding(exports, tmp_path):
    ragged = write(tmp_path, "ragged.csv", (DEAL_HEADER + (
        "80001,Acme – Müller,Closed Won,100,2025-03-16,2025-04-16,5000\n"
        "80002,Acme,Closed Won,100,2025-03-16,2025-04-16,5000,x\n")).encode("cp1252"))
    assert stopped(validate(exports, "--encoding", "deals=cp1252", deals=ragged)) == (
        f"Error: {ragged}: row 2 (line 3) of the deals file has 8 fields, the header has 7; "
        'quote a cell that holds a comma ("1,234.50"), or remove the extra cells')
