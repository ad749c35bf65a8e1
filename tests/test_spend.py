"""Spend: reading, period kinds, exact spreading across period boundaries, rejects, accounting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.errors import ColumnNotFoundError, ConfigError, RejectedRowError
from attribution.schema import REJECT_SCHEMA
from attribution.spend import (
    DAILY_SPEND_SCHEMA,
    SPEND_ROW_SCHEMA,
    load_spend,
    period_of,
    spend_by_channel,
    spend_by_period,
    spread_daily,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "economics"
D = dt.date


def write(tmp_path: Path, text: str, name: str = "spend.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_the_fixture_and_spreads_each_row_to_the_cent() -> None:
    spend = load_spend(FIXTURES / "spend.csv")
    assert spend.rows.schema == SPEND_ROW_SCHEMA
    assert spend.daily.schema == DAILY_SPEND_SCHEMA
    assert spend.rows.select("channel", "period_start", "period_end", "days",
                             "amount_cents").rows() == [
        ("paid_social", D(2025, 1, 1), D(2025, 1, 31), 31, 60000),  # period=month from Jan 1
        ("events", D(2025, 1, 10), D(2025, 1, 12), 3, 300000),
        ("paid_search", D(2025, 1, 1), D(2025, 2, 28), 59, 100000),
    ]
    assert spend.rejects.height == 0
    assert spend.accounting.as_dict()["read"] == 3 and spend.accounting.used == 3
    assert spend.currency == "USD"
    assert spend_by_channel(spend).rows() == [
        ("events", "demand_creation", 300000),
        ("paid_search", "demand_capture", 100000),
        ("paid_social", "demand_creation", 60000),
    ]
    # 100000 cents over 59 days: 1694 each (59 x 1694 = 99946), the 54 cents left go to the
    # first 54 days -> Jan 1 .. Feb 23 get 1695, Feb 24 .. Feb 28 get 1694
    search = spend.daily.filter(pl.col("channel") == "paid_search")
    assert search.filter(pl.col("day") == D(2025, 2, 23))["spend_cents"].item() == 1695
    assert search.filter(pl.col("day") == D(2025, 2, 24))["spend_cents"].item() == 1694
    # January: 31 x 1695 = 52545; February: 23 x 1695 + 5 x 1694 = 38985 + 8470 = 47455
    monthly = spend_by_period(spend, "month").filter(pl.col("channel") == "paid_search")
    assert monthly["spend_cents"].to_list() == [52545, 47455]


def test_a_monthly_row_split_into_weeks_that_straddle_two_months(tmp_path: Path) -> None:
    path = write(tmp_path, "channel,period_start,period,amount\npodcast,2025-01-15,month,1000.00\n")
    spend = load_spend(path)
    # month from Jan 15 = Jan 15 .. Feb 14, 31 days; 100000 = 31 x 3225 + 25, so the first 25
    # days (Jan 15 .. Feb 8) get 3226 and the last 6 (Feb 9 .. Feb 14) get 3225
    assert spend.rows.select("period_end", "days").row(0) == (D(2025, 2, 14), 31)
    weeks = spend_by_period(spend, "week")
    assert weeks.select("period", "spend_cents").rows() == [
        (D(2025, 1, 13), 5 * 3226),  # Wed Jan 15 .. Sun Jan 19            = 16130
        (D(2025, 1, 20), 7 * 3226),  # Jan 20 .. Jan 26                    = 22582
        (D(2025, 1, 27), 7 * 3226),  # Jan 27 .. Feb 2, straddles the month = 22582
        (D(2025, 2, 3), 6 * 3226 + 3225),  # Feb 3 .. Feb 8 at 3226, Feb 9 = 22581
        (D(2025, 2, 10), 5 * 3225),  # Feb 10 .. Feb 14                    = 16125
    ]
    assert weeks["spend_cents"].sum() == 100000
    months = spend_by_period(spend, "month")
    assert months.select("period", "spend_cents").rows() == [
        (D(2025, 1, 1), 17 * 3226),  # Jan 15 .. Jan 31 = 54842
        (D(2025, 2, 1), 8 * 3226 + 6 * 3225),  # 25808 + 19350 = 45158
    ]
    quarters = spend_by_period(spend, "quarter", by=())
    assert quarters.rows() == [(D(2025, 1, 1), 100000)]


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6),
    lengths=st.lists(st.integers(min_value=1, max_value=400), min_size=6, max_size=6),
    offsets=st.lists(st.integers(min_value=0, max_value=800), min_size=6, max_size=6),
)
def test_spreading_is_exact_even_and_deterministic(amounts, lengths, offsets) -> None:
    starts = [D(2024, 1, 1) + dt.timedelta(days=o) for o in offsets[: len(amounts)]]
    days = lengths[: len(amounts)]
    rows = pl.DataFrame(
        {
            "row": list(range(1, len(amounts) + 1)),
            "channel": ["c"] * len(amounts),
            "channel_group": ["g"] * len(amounts),
            "period_start": starts,
            "period_end": [s + dt.timedelta(days=n - 1)
                           for s, n in zip(starts, days, strict=True)],
            "days": days,
            "amount_cents": amounts,
        },
        schema=SPEND_ROW_SCHEMA,
    )
    spread = spread_daily(rows)
    per_row = spread.group_by("row").agg(
        pl.col("spend_cents").sum().alias("total"), pl.len().alias("n"),
        (pl.col("spend_cents").max() - pl.col("spend_cents").min()).alias("gap"),
    ).sort("row")
    assert per_row["total"].to_list() == amounts
    assert per_row["n"].to_list() == days
    assert per_row["gap"].max() <= 1
    # any grain sums back to the total, and the same input gives the same days
    for grain in ("week", "month", "quarter"):
        by = spend_by_period(spread.drop("row"), grain, by=())
        assert by["spend_cents"].sum() == sum(amounts)
    assert spread_daily(rows.reverse()).sort(["row", "day"]).equals(spread)


def test_period_kinds_and_their_ends(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "channel,period_start,period,amount\n"
        "a,2025-01-31,day,1\n"
        "b,2025-01-31,week,1\n"
        "c,2025-01-31,month,1\n"
        "d,2025-02-15,quarter,1\n"
        "e,2025-03-01,MONTH,1\n",
    )
    rows = load_spend(path).rows
    assert rows.select("channel", "period_end", "days").rows() == [
        ("a", D(2025, 1, 31), 1),
        ("b", D(2025, 2, 6), 7),
        ("c", D(2025, 2, 27), 28),  # Jan 31 + 1 month = Feb 28 (clamped), minus a day
        ("d", D(2025, 5, 14), 89),
        ("e", D(2025, 3, 31), 31),
    ]


def test_utm_columns_are_mapped_by_the_channel_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "utm_source,utm_medium,period_start,period_end,amount\n"
        "google,cpc,2025-01-01,2025-01-01,5\n"
        "g2,referral,2025-01-01,2025-01-01,6\n",
    )
    rows = load_spend(path).rows
    assert rows.select("channel", "channel_group").rows() == [
        ("paid_search", "demand_capture"),
        ("review_sites", "demand_capture"),
    ]


def test_bad_rows_are_rejected_with_their_reasons(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "channel,utm_source,utm_medium,period_start,period_end,period,amount,currency\n"
        "podcast,,,2025-01-01,,month,600.00,USD\n"  # 1 ok
        ",foo,bar,2025-01-01,2025-01-02,,10,USD\n"  # 2 unmapped
        "x,,,2025-13-01,,month,10,USD\n"  # 3 bad start
        "x,,,2025-01-05,2025-01-01,,10,USD\n"  # 4 end before start
        "x,,,2025-01-05,,fortnight,10,USD\n"  # 5 unknown kind
        "x,,,2025-01-05,,,10,USD\n"  # 6 no end, no period
        "x,,,2025-01-05,,day,-10,USD\n"  # 7 negative
        "x,,,2025-01-05,,day,ten,USD\n"  # 8 not a number
        "x,,,2025-01-05,,day,10,EUR\n"  # 9 other currency
        "x,,,2025-01-01,2025-01-30,month,10,USD\n"  # 10 end disagrees with the kind
        "x,,,2025-01-01,Jan 9,,10,USD\n"  # 11 bad end
        ",,,2025-01-01,2025-01-02,,10,USD\n"  # 12 no channel at all
        "x,,,,2025-01-02,,10,USD\n"  # 13 no start
        "x,,,2025-01-01,2025-01-02,,,USD\n",  # 14 no amount
    )
    spend = load_spend(path, currency="USD")
    assert spend.rows["row"].to_list() == [1]
    assert spend.rejects.schema == REJECT_SCHEMA
    assert set(spend.rejects["input"]) == {"spend"}  # money: keep name
    assert set(spend.rejects["file"]) == {str(path)}
    assert spend.rejects.select("row", "column", "reason", "value").rows() == [
        (2, "utm_source", "unmapped channel: no channel rule matches utm_source/utm_medium; "
         "add a rule with --channel-rules or give a channel column", "foo/bar"),
        (3, "period_start", "unparseable date; expected an ISO date like 2025-03-01", "2025-13-01"),
        (4, "period_end", "period_end is before period_start", "2025-01-01"),
        (5, "period", "unknown period kind; expected day, week, month, quarter", "fortnight"),
        (6, "period_end", "no period_end and no period (day, week, month or quarter); a "
         "period_start like 2025-03 means the whole month", None),
        (7, "amount", "negative amount", "-10"),
        (8, "amount", "amount is not a number; expected a decimal like 1250.00", "ten"),
        (9, "currency", "currency differs from the run's currency USD; convert amounts first "
         "or set [money] currency", "EUR"),
        (10, "period_end", "period_end does not match period", "2025-01-30"),
        (11, "period_end", "unparseable date; expected an ISO date like 2025-03-01", "Jan 9"),
        (12, "channel", "no channel and no utm_source/utm_medium", None),
        (13, "period_start", "missing period_start", None),
        (14, "amount", "missing amount", None),
    ]
    accounting = spend.accounting.as_dict()
    assert (accounting["read"], accounting["used"], accounting["rejected"]) == (14, 1, 13)
    assert accounting["rejected_by_reason"]["negative amount"] == 1


def test_strict_raises_on_the_first_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, "channel,period_start,period,amount\n"
                           "a,2025-01-01,day,1\nb,2025-01-01,day,-2\n")
    with pytest.raises(RejectedRowError,
                       match=r"row 2, column 'amount': negative amount \(value '-2'\)"):
        load_spend(path, strict=True)


def test_currency_defaults_to_the_most_common_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "channel,period_start,period,amount,currency\n"
        "a,2025-01-01,day,1,eur\nb,2025-01-01,day,1,EUR\nc,2025-01-01,day,1,USD\n",
    )
    spend = load_spend(path)
    assert spend.currency == "EUR"
    assert spend.rejects["row"].to_list() == [3]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("channel,period_start,period", r"missing column 'amount'"),
        ("channel,period,amount", r"missing column 'period_start'"),
        ("period_start,period,amount", r"missing column 'channel'.*utm_source"),
    ],
)
def test_missing_columns_raise(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path, header + "\n")
    with pytest.raises(ColumnNotFoundError, match=message):
        load_spend(path)


def test_mapped_column_names_and_other_formats(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "source_channel": ["events"],
            "from": [D(2025, 1, 10)],
            "to": [D(2025, 1, 12)],
            "cost": [3000.0],
        }
    )
    columns = {"channel": "source_channel", "period_start": "from", "period_end": "to",
               "amount": "cost"}
    frame.write_parquet(tmp_path / "spend.parquet")
    frame.write_ndjson(tmp_path / "spend.ndjson")
    for name in ("spend.parquet", "spend.ndjson"):
        spend = load_spend(tmp_path / name, columns=columns)
        assert spend.rows.select("channel", "period_end", "amount_cents").row(0) == (
            "events", D(2025, 1, 12), 300000,
        )


def test_unknown_grain() -> None:
    with pytest.raises(ConfigError,
                       match="unknown grain 'year'; valid grains: day, week, month, quarter"):
        period_of(pl.col("day"), "year")


def test_month_labels_need_no_period_column(tmp_path: Path) -> None:
    # "Channel,Month,Cost" as spend exports come: 2025-02 is February, 28 days
    path = tmp_path / "spend.csv"
    path.write_text("Channel,Month,Cost\npodcast,2025-02,2800\npodcast,2025-03-05,10\n")
    spend = load_spend(path, columns={"channel": "Channel", "period_start": "Month",
                                      "amount": "Cost"})
    assert spend.rows.select("channel", "period_start", "period_end", "amount_cents").rows() == [
        ("podcast", D(2025, 2, 1), D(2025, 2, 28), 280_000),
    ]
    assert spend.rejects.select("row", "column").rows() == [(2, "period_end")]
    assert spend.daily.filter(pl.col("day") == D(2025, 2, 14))["spend_cents"].to_list() == [10_000]
