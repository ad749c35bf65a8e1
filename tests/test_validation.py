"""Validation: CRM stage names, boolean won/closed columns, unknown statuses reported once,
timestamp formats inferred from the values (and refused when the values leave two readings)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.channels import load_rules
from attribution.errors import AmbiguousTimestampError, ColumnNotFoundError
from attribution.loading import load_inputs
from attribution.validation import (
    infer_time_format,
    parse_time,
    time_format_candidates,
    unknown_statuses_message,
    validate_deals,
    validate_touchpoints,
)

TOUCHES = "timestamp,account_id,channel\n2025-01-01,A,email\n"


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def deals_of(tmp_path: Path, body: str, **options):
    touches = write(tmp_path, "t.csv", TOUCHES)
    deals = write(tmp_path, "d.csv", body)
    return load_inputs(touches, deals, rules=load_rules(), **options)


# -- statuses -----------------------------------------------------------------------------------
HUBSPOT_STAGES = ["Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled",
                  "Decision Maker Bought-In", "Contract Sent", "Closed Won", "Closed Lost"]
HUBSPOT_IDS = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
               "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"]
SALESFORCE_STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
                     "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
                     "Negotiation/Review", "Closed Won", "Closed Lost"]


@pytest.mark.parametrize("stages", [HUBSPOT_STAGES, HUBSPOT_IDS, SALESFORCE_STAGES],
                         ids=["hubspot-labels", "hubspot-ids", "salesforce"])
def test_default_crm_stages_are_known(tmp_path: Path, stages: list[str]) -> None:
    rows = "".join(f"D{i},A,2025-01-02,2025-02-01,{stage},100\n" for i, stage in enumerate(stages))
    inputs = deals_of(tmp_path, "deal_id,account_id,created_at,closed_at,status,amount\n" + rows)
    assert inputs.rejects.height == 0
    expected = ["won" if "won" in s.lower() else "lost" if "lost" in s.lower() else "open"
                for s in stages]
    assert inputs.deals.sort("_row")["status"].to_list() == expected
    assert inputs.notes == []


def test_unknown_statuses_are_listed_once_with_counts_and_a_statuses_block(tmp_path: Path) -> None:
    inputs = deals_of(tmp_path, (
        "deal_id,account_id,created_at,closed_at,status,amount\n"
        "D1,A,2025-01-02,,Stalled,100\n"
        "D2,A,2025-01-02,2025-02-01,Signed,100\n"
        "D3,A,2025-01-02,,Stalled,100\n"
        "D4,A,2025-01-02,2025-02-01,Dead \"deal\",100\n"
        "D5,A,2025-01-02,2025-02-01,won,100\n"
    ))
    deals = str(tmp_path / "d.csv")
    assert inputs.notes == [(
        f"{deals}: 3 unknown status values (4 rows): 'Stalled' (2 rows), 'Dead \"deal\"' (1 row),"
        " 'Signed' (1 row); expected won, lost, open or a CRM stage; map each in the config "
        "(check the guesses):\n[statuses]\nwon = [\"Signed\"]\nlost = [\"Dead \\\"deal\\\"\"]\n"
        "open = [\"Stalled\"]"
    )]
    # every row is still rejected on its own, and the block pastes as TOML that fixes them
    assert inputs.rejects.height == 4
    block = inputs.notes[0].split("\n", 1)[1]
    statuses = {k: tuple(v) for k, v in tomllib.loads(block)["statuses"].items()}
    again = deals_of(tmp_path, (tmp_path / "d.csv").read_text(), statuses=statuses)
    assert again.rejects.height == 0 and again.notes == []
    assert again.deals.sort("_row")["status"].to_list() == ["open", "won", "open", "lost", "won"]


def test_unknown_statuses_message_singular() -> None:
    assert unknown_statuses_message("d.csv", [("Paused", 1)]) == (
        "d.csv: 1 unknown status value (1 row): 'Paused' (1 row); expected won, lost, open or "
        "a CRM stage; map each in the config (check the guesses):\n[statuses]\nopen = [\"Paused\"]"
    )


def test_boolean_won_and_closed_columns_decide_the_status(tmp_path: Path) -> None:
    inputs = deals_of(tmp_path, (
        "Id,AccountId,CreatedDate,CloseDate,IsWon,IsClosed,Amount,StageName\n"
        "O1,A,2025-01-02,2025-02-01,true,true,100,Signed Off\n"
        "O2,A,2025-01-02,2025-02-01,false,true,200,Gone\n"
        "O3,A,2025-01-02,2025-03-01,FALSE,FALSE,300,Whatever\n"
        "O4,A,2025-01-02,2025-02-01,1,1,400,\n"
        "O5,A,2025-01-02,2025-02-01,maybe,true,500,\n"
        "O6,A,2025-01-02,2025-02-01,false,perhaps,600,\n"
        "O7,A,2025-01-02,2025-02-01,,true,700,\n"
    ), columns={"deals": {"deal_id": "Id", "account_id": "AccountId", "created_at": "CreatedDate",
                          "closed_at": "CloseDate", "is_won": "IsWon", "is_closed": "IsClosed",
                          "amount": "Amount", "status": "StageName"}})
    assert inputs.deals.select("deal_id", "status").rows() == [
        ("O1", "won"), ("O2", "lost"), ("O3", "open"), ("O4", "won"),
    ]
    # an open deal's expected close date is not a close
    assert inputs.deals.filter(pl.col("deal_id") == "O3")["closed_at"].to_list() == [None]
    # a reject names the column as the file's header does
    assert inputs.rejects.select("row", "column", "reason", "value").rows() == [
        (5, "IsWon", "is_won is not true or false", "maybe"),
        (6, "IsClosed", "is_closed is not true or false", "perhaps"),
        (7, "IsWon", "missing is_won", None),
    ]
    assert inputs.notes == []  # the stage names are not needed: no unknown-status note


def test_is_won_alone_takes_the_status_word_for_deals_not_won(tmp_path: Path) -> None:
    inputs = deals_of(tmp_path, (
        "deal_id,account_id,created_at,closed_at,is_won,status,amount\n"
        "D1,A,2025-01-02,2025-02-01,true,,100\n"
        "D2,A,2025-01-02,2025-02-01,false,Closed Lost,100\n"
        "D3,A,2025-01-02,2025-02-01,false,,100\n"
    ))
    assert inputs.deals.select("deal_id", "status").rows() == [("D1", "won"), ("D2", "lost")]
    assert inputs.rejects.select("row", "column", "reason").rows() == [
        (3, "status", ("not won, and no is_closed or known status says lost or open; expected "
                       "won, lost or open")),
    ]


def test_status_or_is_won_is_required(tmp_path: Path) -> None:
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,amount\nD1,A,2025-01-02,1\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        validate_deals(deals, None, None)
    assert str(caught.value) == (
        f"{deals}: missing column 'status'; the file has 'deal_id', 'account_id', 'created_at', "
        "'amount'; map a differently named column with [columns.deals] in the config"
    )


# -- timestamps ---------------------------------------------------------------------------------
def test_us_timestamps_are_read_and_the_format_is_said(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", (
        "timestamp,account_id,channel\n"
        "01/25/2025 02:28 AM,A,email\n"
        "01/26/2025 11:05 PM,A,email\n"
        "2025-01-27T10:00:00Z,A,email\n"  # ISO rows stay ISO
        "not a date,A,email\n"
    ))
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-01-02,2025-02-01,won,100\n")
    inputs = load_inputs(touches, deals, rules=load_rules())
    assert inputs.touchpoints.sort("_row")["timestamp"].to_list() == [
        datetime(2025, 1, 25, 2, 28, tzinfo=UTC), datetime(2025, 1, 26, 23, 5, tzinfo=UTC),
        datetime(2025, 1, 27, 10, tzinfo=UTC),
    ]
    assert {k: v.pattern for k, v in inputs.time_formats.items()} == {
        "touchpoints.timestamp": "%m/%d/%Y %I:%M %p"}
    assert inputs.notes == [
        f"{touches}: timestamp read as '%m/%d/%Y %I:%M %p' (month/day/year, 12-hour clock)"]
    assert inputs.rejects.select("row", "column", "value").rows() == [
        (4, "timestamp", "not a date")]


def test_day_first_is_inferred_when_a_day_is_above_12(tmp_path: Path) -> None:
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,02/01/2025 14:00,25/01/2025 09:30,won,100\n")
    checked = validate_deals(deals, None, None)
    assert checked.good.select("created_at", "closed_at").row(0) == (
        datetime(2025, 1, 2, 14, tzinfo=UTC), datetime(2025, 1, 25, 9, 30, tzinfo=UTC))
    assert {k: v.description for k, v in checked.time_formats.items()} == {
        "created_at": "day/month/year, 24-hour clock", "closed_at": "day/month/year, 24-hour clock"}


def test_a_rejected_timestamp_names_the_format_the_run_detected(tmp_path: Path) -> None:
    # a new user's trial: the reason said "expected ISO-8601", though the run had read every
    # other close date day first; it now says which format it detected for the column
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,Close Date,status,amount\n"
                  "D1,A,2025-01-02,25/01/2025 09:30,won,100\n"
                  "D2,A,2025-01-02,Jan 26th 2025,won,100\n")
    checked = validate_deals(deals, None, None, {"closed_at": "Close Date"})
    assert checked.good["deal_id"].to_list() == ["D1"]
    assert checked.rejects.select("row", "column", "reason", "value").rows() == [
        (2, "Close Date", "unparseable timestamp; does not fit the format detected for this "
         "column, '%d/%m/%Y %H:%M' (day/month/year, 24-hour clock), nor ISO-8601; declare the "
         "format with --timestamp-format", "Jan 26th 2025")]
    # the ISO created_at was detected as nothing: its reason is the one it always was
    iso = write(tmp_path, "i.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                "D1,A,2025-01-02,,open,100\nD2,A,someday,,open,100\n")
    assert validate_deals(iso, None, None).rejects.select("column", "reason").rows() == [
        ("created_at", "unparseable timestamp; expected ISO-8601 like 2025-03-04T10:15:00Z or "
         "2025-03-04, or declare the format with --timestamp-format")]


def test_epoch_microseconds_are_inferred(tmp_path: Path) -> None:
    touches = pl.DataFrame({"event_timestamp": [1735689600123456, 1735689700000000],
                            "account_id": ["A", "A"], "channel": ["email", "email"]})
    checked = validate_touchpoints(touches, load_rules(), None,
                                   {"timestamp": "event_timestamp"}, file="events")
    assert checked.good["timestamp"].to_list() == [
        datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 1, 40, tzinfo=UTC)]
    assert checked.notes == ["events: event_timestamp read as 'epoch_us' (Unix epoch microseconds)"]


def test_ambiguous_dates_stop_with_the_candidates() -> None:
    values = pl.Series(["01/02/2025", "03/04/2025"])
    with pytest.raises(AmbiguousTimestampError) as caught:
        infer_time_format(values, "t.csv", "Create Date")
    assert str(caught.value) == (
        "t.csv: column 'Create Date': timestamps like '01/02/2025' read more than one way: "
        "'%m/%d/%Y' (month/day/year, date only); '%d/%m/%Y' (day/month/year, date only); "
        'declare the format with [formats] timestamp = "..." in the config or --timestamp-format'
    )


def test_dates_that_read_alike_either_way_are_not_ambiguous() -> None:
    # 05/05 is 5 May whichever comes first
    assert infer_time_format(pl.Series(["05/05/2025"]), "t", "c").pattern == "%m/%d/%Y"


def test_a_two_digit_year_is_not_read_as_the_year_25() -> None:
    fitted = infer_time_format(pl.Series(["01/25/25 02:28 AM"]), "t", "c")
    assert fitted is not None and fitted.pattern == "%m/%d/%y %I:%M %p"


def test_nothing_readable_infers_nothing() -> None:
    assert infer_time_format(pl.Series(["soon", "later"]), "t", "c") is None


STRFTIME_STYLES = [c for c in time_format_candidates() if not c.pattern.startswith("epoch")]


@settings(max_examples=60, deadline=None)
@given(
    moments=st.lists(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 12, 31)),
                     min_size=1, max_size=30),
    style=st.sampled_from(STRFTIME_STYLES),
)
def test_inference_round_trips_every_style(moments: list[datetime], style) -> None:
    # format datetimes in a style, infer, parse: the same moments come back (to the style's
    # precision), or the inference says the values leave two readings
    def precise(moment: datetime) -> datetime:
        keep = moment.replace(microsecond=0, tzinfo=UTC)
        if "%S" not in style.pattern:
            keep = keep.replace(second=0)
        if "%H" not in style.pattern and "%I" not in style.pattern:
            keep = keep.replace(hour=0, minute=0)
        return keep

    if "%y" in style.pattern:  # two-digit years: 1969-2068 read back by chrono's pivot
        moments = [m.replace(year=max(m.year, 2000)) for m in moments]
    shown = pl.Series([m.strftime(style.pattern) for m in moments])
    try:
        fitted = infer_time_format(shown, "t", "c")
    except AmbiguousTimestampError as error:
        assert all(int(m.day) <= 12 for m in moments), error
        return
    assert fitted is not None
    back = shown.to_frame("v").select(parse_time(pl.col("v"), fitted.pattern)).to_series()
    assert back.to_list() == [precise(m) for m in moments]


@settings(max_examples=30, deadline=None)
@given(
    moments=st.lists(st.datetimes(min_value=datetime(2001, 9, 10),
                                  max_value=datetime(2199, 12, 31)),
                     min_size=1, max_size=20),
    unit=st.sampled_from([("epoch_us", 1), ("epoch_ms", 1_000), ("epoch_s", 1_000_000)]),
)
def test_epoch_inference_round_trips(moments: list[datetime], unit) -> None:
    name, per = unit
    epoch, tick = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
    micros = [(m.replace(tzinfo=UTC) - epoch) // tick // per for m in moments]
    shown = pl.Series([str(v) for v in micros])
    fitted = infer_time_format(shown, "t", "c")
    assert fitted is not None and fitted.pattern == name
    back = shown.to_frame("v").select(parse_time(pl.col("v"), fitted.pattern)).to_series()
    assert [(b - epoch) // tick // per for b in back] == micros


# -- a source's usual style, checked against every value ----------------------------------------
def test_the_usual_style_stands_when_every_value_reads_so(tmp_path: Path) -> None:
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,01/02/2025,02/03/2025,won,1\nD2,A,03/04/2025,03/05/2025,won,1\n")
    checked = validate_deals(deals, None, None, prefer_time_formats=("%m/%d/%Y",))
    assert checked.good["created_at"].to_list() == [
        datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC)]
    assert checked.notes == [(
        f"{deals}: created_at, closed_at read as '%m/%d/%Y' (month/day/year, date only; the "
        "source's usual style, the first values also read as day/month/year, date only)")]


def test_a_later_value_overrules_the_usual_style(tmp_path: Path) -> None:
    # the first thousand values read either way; a later 25/03 shows the file is day first
    rows = "".join(f"D{i},A,02/01/2025,03/01/2025,won,1\n" for i in range(1200))
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  + rows + "D9999,A,02/01/2025,25/03/2025,won,1\n")
    checked = validate_deals(deals, None, None, prefer_time_formats=("%m/%d/%Y",))
    assert checked.rejects.height == 0
    assert checked.good["created_at"].unique().to_list() == [datetime(2025, 1, 2, tzinfo=UTC)]
    assert checked.good.filter(pl.col("deal_id") == "D9999")["closed_at"].to_list() == [
        datetime(2025, 3, 25, tzinfo=UTC)]
    assert checked.time_formats["created_at"].pattern == "%d/%m/%Y"
    assert not checked.time_formats["created_at"].tentative


def test_without_a_usual_style_the_whole_column_decides(tmp_path: Path) -> None:
    rows = "".join(f"D{i},A,02/01/2025,03/01/2025,won,1\n" for i in range(1200))
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  + rows + "D9999,A,02/01/2025,25/03/2025,won,1\n")
    checked = validate_deals(deals, None, None)
    assert checked.time_formats["closed_at"].pattern == "%d/%m/%Y"
    assert checked.rejects.height == 0


# -- validation takes frames --------------------------------------------------------------------
def test_validating_a_frame_gives_what_validating_its_file_gives(tmp_path: Path) -> None:
    # the Spark engine validates batches as frames: same rows, rejects and counts as the file
    touches = write(tmp_path, "t.csv", (
        "timestamp,contact_id,account_id,utm_source,utm_medium,touchpoint_id\n"
        "2025-03-01T10:00:00Z,c1,A,google,cpc,t1\n"
        "not a time,c1,A,google,cpc,t2\n"
        "2025-03-02,c2,,linkedin,paid_social,t3\n"
        "2025-03-02,c2,,linkedin,paid_social,t3\n"
        ",,,,,\n"
    ))
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-03-01,2025-03-09,Closed Won,\"1,234.50\"\n"
                  "D2,A,2025-03-01,,Stalled,10\n")
    from attribution.reading import read_file

    for path, check in (
        (touches, lambda table, **kw: validate_touchpoints(table, load_rules(), None, **kw)),
        (deals, lambda table, **kw: validate_deals(table, None, None, **kw)),
    ):
        from_file = check(path)
        from_frame = check(read_file(path, "x"), file=str(path))
        assert from_frame.good.equals(from_file.good)
        assert from_frame.rejects.equals(from_file.rejects)
        assert from_frame.accounting == from_file.accounting
        assert from_frame.notes == from_file.notes
    assert from_file.rejects.select("row", "column").rows() == [(2, "status")]
    assert from_file.good["amount_cents"].to_list() == [123_450]


# -- amounts a CRM leaves blank -----------------------------------------------------------------
def test_open_and_lost_deals_without_an_amount_are_0_pipeline_and_said(tmp_path: Path) -> None:
    # HubSpot's Amount is blank until a deal is sized: such open and lost deals are pipeline of
    # 0; a won deal without an amount has unknown revenue and is a rejected row
    inputs = deals_of(tmp_path, "deal_id,account_id,created_at,closed_at,status,amount\n"
                                "D1,A,2025-01-02,,open,\n"
                                "D2,A,2025-01-02,,open,\n"
                                "D3,A,2025-01-02,2025-02-01,lost,\n"
                                "D4,A,2025-01-02,2025-02-01,won,\n"
                                "D5,A,2025-01-02,2025-02-01,won,1200.50\n",
                      max_reject_rate=1.0)
    assert dict(inputs.deals.select("deal_id", "amount_cents").iter_rows()) == {
        "D1": 0, "D2": 0, "D3": 0, "D5": 120050}
    assert inputs.rejects.select("row", "column", "reason").rows() == [
        (4, "amount", "missing amount")]
    deals = tmp_path / "d.csv"
    assert f"{deals}: 2 open and 1 lost deals have no amount; counted as 0 pipeline (a CRM " \
        "leaves the amount blank until a deal is sized): fill the amount to count their " \
        "pipeline" in inputs.notes


def test_a_deal_in_another_currency_is_rejected_for_its_currency_and_not_summed(
        tmp_path: Path) -> None:
    # a new user's trial: a KWD amount (3 decimals) in a USD run was "too many decimals for
    # USD", and its fils were summed into the rejected pipeline as dollars
    inputs = deals_of(tmp_path, "deal_id,account_id,created_at,closed_at,status,amount,currency\n"
                                "D1,A,2025-01-02,2025-02-01,won,100.00,USD\n"
                                "D2,A,2025-01-02,2025-02-01,won,200.00,USD\n"
                                "D3,A,2025-01-02,2025-02-01,won,40457.445,KWD\n"
                                "D4,A,2025-01-02,2025-02-01,won,71277.70,KWD\n"
                                "D5,A,2025-01-02,2025-02-01,won,-5,USD\n",
                      max_reject_rate=1.0)
    reason = ("currency differs from the run's currency USD; convert amounts first or set "
              "[money] currency")
    assert inputs.rejects.select("row", "column", "reason").rows() == [
        (3, "currency", reason), (4, "currency", reason), (5, "amount", "negative amount")]
    accounting = inputs.accounting["deals"]
    assert (accounting.rejected_amount, accounting.rejected_won_amount) == (0, 0)
