"""Timestamps in CRM spellings, declared formats, CRM stage names and blank rows."""

from __future__ import annotations

import polars as pl
import pytest

from attribution.channels import load_rules
from attribution.errors import AmbiguousTimestampError
from attribution.loading import load_inputs


def write(path, text):
    path.write_text(text)
    return path


def test_timestamp_spellings_and_declared_formats(tmp_path):
    touches = write(tmp_path / "t.csv", (
        "timestamp,contact_id,account_id,utm_source,utm_medium\n"
        "02/03/2025 10:15 AM,c1,A,google,cpc\n"       # month or day first: ambiguous
        "2025-03-01 10:15:00 UTC,c1,A,spotify,podcast\n"
        "1741083300,c1,A,g2,referral\n"               # epoch seconds: 2025-03-04T10:15:00Z
        "1741083300000,c2,A,g2,referral\n"            # epoch milliseconds
        ",,,,\n"                                      # a blank line of the export
    ))
    deals = write(tmp_path / "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  "D1,A,2025-03-06,,Negotiation,100\nD2,A,2025-03-06,2025-03-20,Signed,200\n")
    # 02/03 reads as 3 February or 2 March: the load stops with both readings
    with pytest.raises(AmbiguousTimestampError) as caught:
        load_inputs(touches, deals, rules=load_rules())
    assert str(caught.value) == (
        f"{touches}: column 'timestamp': timestamps like '02/03/2025 10:15 AM' read more than "
        "one way: '%m/%d/%Y %I:%M %p' (month/day/year, 12-hour clock); '%d/%m/%Y %I:%M %p' "
        '(day/month/year, 12-hour clock); declare the format with [formats] timestamp = "..." '
        "in the config or --timestamp-format"
    )
    # without inference (the Spark engine's batches), the row is rejected as before
    inputs = load_inputs(touches, deals, rules=load_rules(), infer_time_formats=False)
    assert inputs.rejects.select("input", "row", "reason").rows() == [
        ("touchpoints", 1, ("unparseable timestamp; expected ISO-8601 like 2025-03-04T10:15:00Z "
         "or 2025-03-04, or declare the format with --timestamp-format")),
        ("touchpoints", 5, "empty row"),
        ("deals", 2, "unknown status; expected won, lost or open"),
    ]
    assert [t.isoformat() for t in inputs.touchpoints.sort("_row")["timestamp"]] == [
        "2025-03-01T10:15:00+00:00", "2025-03-04T10:15:00+00:00", "2025-03-04T10:15:00+00:00",
    ]
    # Negotiation is an open stage out of the box; Signed becomes won when declared
    assert inputs.deals.select("deal_id", "status").rows() == [("D1", "open")]
    declared = load_inputs(touches, deals, rules=load_rules(),
                           time_formats=["%m/%d/%Y %I:%M %p"], statuses={"won": ["Signed"]})
    first = declared.touchpoints.sort("_row")["timestamp"][0]
    assert first.isoformat() == "2025-02-03T10:15:00+00:00"
    assert declared.deals.select("deal_id", "status").rows() == [("D1", "open"), ("D2", "won")]
    assert declared.accounting["touchpoints"].rejected == {"empty row": 1}
    assert declared.rejects.filter(pl.col("input") == "deals").height == 0
