"""Journeys: buying groups, lookback windows, dedup chains, ties, milestones, statuses, and
invariance under row order and under splitting the data by account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.journeys import (
    PERSON,
    TOUCH_ORDER,
    JourneyIndex,
    Journeys,
    TouchRuns,
    _distinct_rows,
    _group_time_key,
    _in_touch_order,
    _last_at_or_before,
    _repeats,
    build_journeys,
    repeat_flags,
    touch_order,
)
from attribution.schema import JOURNEY_SCHEMA, TOUCH_SCHEMA
from tests.factories import at, contacts_frame, deals_frame
from tests.reference import reference_journeys

DEAL_SCHEMA = deals_frame([("d", "a", "2025-01-01", "2025-01-02", "won", 1)]).schema

AS_OF = at("2025-12-31")


def touches(rows: list[tuple]) -> pl.DataFrame:
    """rows of (touchpoint_id, account_id, contact_id, channel, timestamp): a validated frame."""
    return pl.DataFrame(
        {
            "_row": list(range(1, len(rows) + 1)),
            "touchpoint_id": [r[0] for r in rows],
            "timestamp": [at(r[4]) for r in rows],
            "contact_id": [r[2] for r in rows],
            "account_id": [r[1] for r in rows],
            "channel": [r[3] for r in rows],
            "channel_group": ["g"] * len(rows),
            "touch_type": [None] * len(rows),
            "campaign": [None] * len(rows),
        },
        schema={"_row": pl.Int64, "touchpoint_id": pl.String,
                "timestamp": TOUCH_SCHEMA["timestamp"], "contact_id": pl.String,
                "account_id": pl.String, "channel": pl.String, "channel_group": pl.String,
                "touch_type": pl.String, "campaign": pl.String},
    )


def build(touch_rows, deal_rows=(), contact_rows=(), **options):
    options.setdefault("as_of", AS_OF)
    return build_journeys(
        touches(list(touch_rows)),
        deals_frame(list(deal_rows)).cast(dict(DEAL_SCHEMA)),  # typed even when empty
        contacts_frame(list(contact_rows)),
        **options,
    )


def paths(journeys) -> dict[str, list[str]]:
    """journey_id -> touchpoint ids in touch_index order."""
    frame = journeys.touches.collect()
    return {
        jid: ids
        for jid, ids in frame.group_by("journey_id", maintain_order=True)
        .agg(pl.col("touchpoint_id").sort_by("touch_index"))
        .iter_rows()
    }


def milestones(journeys, journey_id: str) -> dict[str, str | None]:
    frame = journeys.touches.collect().filter(pl.col("journey_id") == journey_id)
    found = {}
    for flag in ("is_first", "is_lead_creation", "is_opportunity_creation", "is_closed_won"):
        ids = frame.filter(pl.col(flag))["touchpoint_id"].to_list()
        assert len(ids) <= 1
        found[flag] = ids[0] if ids else None
    return found


# -- buying group, windows, statuses --------------------------------------------------------------
def test_buying_group_journey_with_milestones_and_schemas() -> None:
    journeys, stats = build(
        [
            ("t1", "A", "ann", "podcast", "2025-01-01"),
            ("t2", "A", "bob", "newsletter", "2025-01-10"),
            ("t3", "A", "ann", "direct", "2025-01-20"),
            ("t4", "A", "bob", "paid_search", "2025-02-01"),
            ("t5", "A", "cat", "direct", "2025-02-10"),
            ("t6", "A", "cat", "direct", "2025-03-01"),  # after the close
        ],
        [("D1", "A", "2025-02-03", "2025-02-15", "won", 100000)],
        [("ann", "A", None), ("bob", "A", "2025-01-12"), ("cat", "A", "2025-02-05")],
    )
    assert journeys.touches.collect_schema() == TOUCH_SCHEMA
    assert journeys.journeys.collect_schema() == JOURNEY_SCHEMA
    assert paths(journeys) == {"D1": ["t1", "t2", "t3", "t4", "t5"]}
    assert journeys.touches.collect()["touch_index"].to_list() == [0, 1, 2, 3, 4]
    assert milestones(journeys, "D1") == {
        "is_first": "t1",
        "is_lead_creation": "t2",         # last at or before the group's earliest lead (01-12)
        "is_opportunity_creation": "t4",  # last at or before created_at (02-03)
        "is_closed_won": "t5",
    }
    assert journeys.journeys.collect().row(0, named=True) | {} == {
        "journey_id": "D1", "account_id": "A", "deal_id": "D1", "status": "won",
        "amount_cents": 100000,
        "created_at": at("2025-02-03"), "closed_at": at("2025-02-15"), "end_at": at("2025-02-15"),
        "n_touches": 5, "conversions": 1, "nulls": 0, "revenue_cents": 100000,
    }
    assert (stats.touches_used, stats.touches_out_of_window,
            stats.touches_deduplicated) == (5, 1, 0)


def test_window_boundaries_are_inclusive() -> None:
    journeys, stats = build(
        [
            ("early", "A", "c", "x", "2024-10-04T23:59:59"),
            ("start", "A", "c", "y", "2024-10-05"),      # created_at - 90 days exactly
            ("end", "A", "c", "z", "2025-01-10"),        # exactly at close
            ("late", "A", "c", "w", "2025-01-10T00:00:01"),
        ],
        [("D", "A", "2025-01-03", "2025-01-10", "lost", 500)],
        lookback_days=90,
    )
    assert paths(journeys) == {"D": ["start", "end"]}
    row = journeys.journeys.collect().row(0, named=True)
    assert (row["status"], row["conversions"], row["nulls"],
            row["revenue_cents"]) == ("lost", 0, 1, 0)
    assert milestones(journeys, "D")["is_closed_won"] is None
    assert (stats.touches_used, stats.touches_out_of_window) == (2, 2)


def test_statuses_open_lost_none_and_deals_without_touches() -> None:
    journeys, stats = build(
        [
            ("t1", "A", "a1", "x", "2025-01-01"),
            ("t2", "N", "n1", "y", "2025-01-02"),  # account with no deal
            ("t3", "N", None, "z", "2025-01-03"),
        ],
        [
            ("D-open", "A", "2025-01-05", None, "open", 700),
            ("D-empty", "E", "2025-01-05", "2025-02-01", "won", 300),
        ],
    )
    rows = {r["journey_id"]: r for r in journeys.journeys.collect().iter_rows(named=True)}
    assert sorted(rows) == ["D-empty", "D-open", "account:N"]
    assert {k: (r["status"], r["n_touches"], r["conversions"], r["nulls"], r["revenue_cents"],
                r["end_at"])
            for k, r in rows.items()} == {
        "D-open": ("open", 1, 0, 0, 0, AS_OF),
        "D-empty": ("won", 0, 1, 0, 300, at("2025-02-01")),
        "account:N": ("none", 2, 0, 1, 0, AS_OF),
    }
    assert rows["account:N"]["deal_id"] is None and rows["account:N"]["amount_cents"] == 0
    assert paths(journeys) == {"D-open": ["t1"], "account:N": ["t2", "t3"]}
    assert milestones(journeys, "account:N") == {
        "is_first": "t2", "is_lead_creation": "t2", "is_opportunity_creation": None,
        "is_closed_won": None,
    }
    assert (stats.deals_without_touch, stats.deal_journeys, stats.account_journeys) == (1, 2, 1)


def test_as_of_reopens_later_closes_and_drops_later_deals() -> None:
    journeys, stats = build(
        [("t1", "A", "c", "x", "2025-01-01"), ("t2", "A", "c", "y", "2025-03-01")],
        [
            ("D1", "A", "2025-01-10", "2025-03-15", "won", 100),   # closes after as_of
            ("D2", "A", "2025-02-20", None, "open", 50),            # created after as_of
        ],
        as_of=at("2025-02-01"),
    )
    rows = journeys.journeys.collect()
    assert rows.select("journey_id", "status", "closed_at", "end_at", "revenue_cents").rows() == [
        ("D1", "open", None, at("2025-02-01"), 0)
    ]
    assert paths(journeys) == {"D1": ["t1"]}
    assert stats.deals_out_of_window == 1


def test_default_as_of_is_the_latest_instant_in_the_data() -> None:
    journeys, stats = build(
        [("t1", "A", "c", "x", "2025-01-01")],
        [("D1", "A", "2025-01-10", None, "open", 1),
         ("D2", "B", "2025-01-05", "2025-03-02", "lost", 1)],
        as_of=None,
    )
    assert stats.as_of == at("2025-03-02") == journeys.as_of
    empty, empty_stats = build([], [], as_of=None)
    assert empty_stats.as_of == datetime(1970, 1, 1, tzinfo=UTC)
    assert empty.journeys.collect().height == 0 and empty.touches.collect().height == 0


def test_two_deals_at_one_account_share_overlapping_touches() -> None:
    journeys, stats = build(
        [
            ("t1", "A", "c", "x", "2025-01-01"),
            ("t2", "A", "c", "y", "2025-02-01"),
            ("t3", "A", "c", "z", "2025-03-01"),
        ],
        [
            ("D1", "A", "2025-01-15", "2025-02-10", "won", 100),
            ("D2", "A", "2025-02-05", "2025-03-05", "lost", 200),
        ],
        lookback_days=30,
    )
    assert paths(journeys) == {"D1": ["t1", "t2"], "D2": ["t2", "t3"]}
    assert milestones(journeys, "D1")["is_opportunity_creation"] == "t1"
    assert milestones(journeys, "D2")["is_opportunity_creation"] == "t2"
    # each row counted once, however many journeys use it
    assert (stats.touches_used, stats.touches_out_of_window) == (3, 0)


# -- milestones -----------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 9), min_size=1, max_size=5),
                          st.one_of(st.none(), st.integers(-1, 10))), min_size=1, max_size=8))
def test_last_touch_at_or_before_a_moment_matches_a_count_per_journey(drawn) -> None:
    # journeys back to back, touches in time order: the flag marks the last touch at or before
    # the journey's moment, else (none, or no moment) the first touch, never across journeys
    times = [sorted(t) for t, _ in drawn]
    moments = pl.Series([m for _, m in drawn], dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    journey = np.repeat(np.arange(len(drawn)), [len(t) for t in times])
    index = np.concatenate([np.arange(len(t)) for t in times])
    last = np.r_[journey[1:] != journey[:-1], True]
    flags = _last_at_or_before(np.concatenate(times).astype(np.int64), journey, index == 0, last,
                               moments)
    expected = []
    for t, (_, moment) in zip(times, drawn, strict=True):
        before = sum(1 for x in t if moment is not None and x <= moment)
        expected += [i == max(before - 1, 0) for i in range(len(t))]
    assert flags.tolist() == expected


@pytest.mark.parametrize(
    ("leads", "lead_touch"),
    [
        ([("c1", "A", None)], "t1"),                                    # no lead date: first touch
        ([("c1", "A", "2024-12-01")], "t1"),                            # lead before any touch
        ([("c1", "A", "2025-01-10"), ("c2", "A", "2025-02-20")], "t1"),  # group's earliest lead
        ([("c1", "A", "2025-02-01")], "t2"),                            # at the touch: included
        ([("c1", "A", "2025-03-30")], "t3"),
        ([("c1", "B", "2025-01-01")], "t1"),                            # another account's lead
    ],
)
def test_lead_creation_touch(leads, lead_touch) -> None:
    journeys, _ = build(
        [
            ("t1", "A", "c1", "x", "2025-01-10"),
            ("t2", "A", "c2", "y", "2025-02-01"),
            ("t3", "A", "c1", "z", "2025-03-01"),
        ],
        [("D", "A", "2025-01-05", "2025-04-01", "won", 1)],
        leads,
    )
    found = milestones(journeys, "D")
    assert found["is_lead_creation"] == lead_touch
    # every touch came after created_at: the opportunity touch is the first
    assert found["is_opportunity_creation"] == "t1"
    assert found["is_closed_won"] == "t3"


# -- deduplication and ties -----------------------------------------------------------------------
def test_dedup_is_a_chain_per_contact_and_channel() -> None:
    journeys, stats = build(
        [
            ("t1", "A", "c1", "email", "2025-01-01T00:00"),
            ("t2", "A", "c1", "email", "2025-01-01T00:20"),  # repeat of t1
            ("t3", "A", "c1", "email", "2025-01-01T00:40"),  # repeat of t2: the chain goes on
            ("t4", "A", "c1", "email", "2025-01-01T01:10"),  # exactly 30 min: counts again
            ("t5", "A", "c2", "email", "2025-01-01T01:15"),  # another contact
            ("t6", "A", "c1", "web", "2025-01-01T01:15"),    # another channel
        ],
    )
    assert paths(journeys) == {"account:A": ["t1", "t4", "t6", "t5"]}  # tie: c1 before c2
    assert (stats.touches_used, stats.touches_deduplicated,
            stats.touches_out_of_window) == (4, 2, 0)
    _, no_dedup = build(
        [("t1", "A", "c1", "email", "2025-01-01T00:00"),
         ("t2", "A", "c1", "email", "2025-01-01T00:00")],
        dedup_minutes=0,
    )
    assert (no_dedup.touches_used, no_dedup.touches_deduplicated) == (2, 0)


def test_account_level_touches_dedup_by_account() -> None:
    journeys, _ = build(
        [("t1", "A", None, "ads", "2025-01-01T00:00"),
         ("t2", "A", None, "ads", "2025-01-01T00:05")],
    )
    assert paths(journeys) == {"account:A": ["t1"]}


def test_a_touch_inside_the_window_is_not_dropped_for_repeating_one_outside_it() -> None:
    # window starts 2024-07-06T00:00 (180 days before created_at); t1 is outside it
    journeys, stats = build(
        [
            ("t1", "A", "c1", "webinar", "2024-07-05T23:50"),
            ("t2", "A", "c1", "webinar", "2024-07-06T00:10"),
            ("t3", "A", "c1", "webinar", "2024-07-06T00:20"),  # repeat of t2 inside the journey
        ],
        [("D", "A", "2025-01-02", "2025-01-03", "won", 1)],
    )
    assert paths(journeys) == {"D": ["t2"]}
    assert (stats.touches_used, stats.touches_deduplicated,
            stats.touches_out_of_window) == (1, 1, 1)


def test_ties_in_time_break_by_contact_channel_then_id() -> None:
    rows = [
        ("t9", "A", "bob", "email", "2025-01-01T09:00"),
        ("t8", "A", "ann", "web", "2025-01-01T09:00"),
        ("t7", "A", "ann", "email", "2025-01-01T09:00"),
        ("t2", "A", None, "ads", "2025-01-01T09:00"),   # no contact: after named contacts
        ("t1", "A", None, "ads", "2025-01-01T09:00"),
    ]
    journeys, _ = build(rows, dedup_minutes=0)
    assert paths(journeys) == {"account:A": ["t7", "t8", "t9", "t1", "t2"]}
    reversed_journeys, _ = build(rows[::-1], dedup_minutes=0)
    assert paths(reversed_journeys) == paths(journeys)


# -- invariance -----------------------------------------------------------------------------------
ACCOUNTS = ["A", "B", "C", "D"]


@st.composite
def datasets(draw, months=6):
    n = draw(st.integers(0, 30))
    touch_rows = [
        (
            f"t{i}",
            draw(st.sampled_from(ACCOUNTS)),
            draw(st.sampled_from([None, "c1", "c2"])),
            draw(st.sampled_from(["email", "web", "ads"])),
            (f"2025-{draw(st.integers(1, months)):02d}-{draw(st.integers(1, 3)):02d}T"
             f"{draw(st.integers(0, 1)):02d}:{draw(st.sampled_from([0, 10, 29, 30, 45])):02d}"),
        )
        for i in range(n)
    ]
    deal_rows = []
    for j, account in enumerate(draw(st.lists(st.sampled_from(ACCOUNTS), max_size=5))):
        created = f"2025-{draw(st.integers(1, 7)):02d}-15"
        status = draw(st.sampled_from(["won", "lost", "open"]))
        closed = None if status == "open" else f"2025-{draw(st.integers(8, 9)):02d}-01"
        deal_rows.append((f"D{j}", account, created, closed, status, draw(st.integers(0, 10**6))))
    contact_rows = [
        (f"c{k}", account, draw(st.sampled_from([None, "2025-02-01", "2025-04-01"])))
        for k, account in ((1, "A"), (2, "B"))
    ]
    return touch_rows, deal_rows, contact_rows


def _collected(journeys):
    return (
        journeys.touches.collect().sort("journey_id", "touch_index"),
        journeys.journeys.collect().sort("journey_id"),
    )


@settings(max_examples=80, deadline=None)
@given(datasets(), st.randoms(use_true_random=False), st.sampled_from([AS_OF, at("2025-05-01")]))
def test_shuffled_rows_give_identical_journeys(data, random, as_of) -> None:
    touch_rows, deal_rows, contact_rows = data
    expected, expected_stats = build(touch_rows, deal_rows, contact_rows, as_of=as_of,
                                     lookback_days=60)
    touch_rows, deal_rows, contact_rows = list(touch_rows), list(deal_rows), list(contact_rows)
    for rows in (touch_rows, deal_rows, contact_rows):
        random.shuffle(rows)
    actual, actual_stats = build(touch_rows, deal_rows, contact_rows, as_of=as_of, lookback_days=60)
    for left, right in zip(_collected(actual), _collected(expected), strict=True):
        assert_frame_equal(left, right)
    assert actual_stats == expected_stats


@settings(max_examples=80, deadline=None)
@given(datasets(), st.sets(st.sampled_from(ACCOUNTS)))
def test_any_split_by_account_gives_the_same_journeys(data, first_half) -> None:
    touch_rows, deal_rows, contact_rows = data

    def part(rows, keep):
        return [r for r in rows if keep(r[1])]

    whole, whole_stats = build(touch_rows, deal_rows, contact_rows, lookback_days=60)
    halves = [
        build(part(touch_rows, keep), part(deal_rows, keep), part(contact_rows, keep),
              lookback_days=60)
        for keep in (lambda a: a in first_half, lambda a: a not in first_half)
    ]
    touches_whole, journeys_whole = _collected(whole)
    touches_parts = pl.concat([_collected(j)[0] for j, _ in halves]).sort("journey_id",
                                                                          "touch_index")
    journeys_parts = pl.concat([_collected(j)[1] for j, _ in halves]).sort("journey_id")
    assert_frame_equal(touches_parts, touches_whole)
    assert_frame_equal(journeys_parts, journeys_whole)
    for field in ("touches_used", "touches_deduplicated", "touches_out_of_window",
                  "deals_without_touch", "deal_journeys", "account_journeys"):
        assert sum(getattr(s, field) for _, s in halves) == getattr(whole_stats, field)


@settings(max_examples=40, deadline=None)
@given(datasets(), st.sets(st.sampled_from(ACCOUNTS)))
def test_split_with_the_default_as_of_changes_only_open_end_dates(data, first_half) -> None:
    # the default as_of is the latest instant in the data given, so a half may close its open
    # and deal-less journeys earlier; which touches belong to which journey never changes
    touch_rows, deal_rows, contact_rows = data
    whole, _ = build(touch_rows, deal_rows, contact_rows, lookback_days=60, as_of=None)
    halves = [
        build(part_rows, part_deals, contact_rows, lookback_days=60, as_of=None)[0]
        for part_rows, part_deals in (
            ([r for r in touch_rows if r[1] in first_half],
             [d for d in deal_rows if d[1] in first_half]),
            ([r for r in touch_rows if r[1] not in first_half],
             [d for d in deal_rows if d[1] not in first_half]),
        )
    ]
    touches_parts = pl.concat([_collected(j)[0] for j in halves]).sort("journey_id", "touch_index")
    assert_frame_equal(touches_parts, _collected(whole)[0])
    journeys_parts = pl.concat([_collected(j)[1] for j in halves]).sort("journey_id")
    assert_frame_equal(journeys_parts.drop("end_at"), _collected(whole)[1].drop("end_at"))


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_touches_come_grouped_by_journey_in_the_journeys_order(data) -> None:
    # the layout models and credit rely on to skip sorts: journeys sorted by id, and each
    # journey's touches as consecutive rows, touch_index 0, 1, ... in that order
    journeys, _ = build(*data, lookback_days=60)
    touches, frame = journeys.touches.collect(), journeys.journeys.collect()
    assert frame["journey_id"].to_list() == sorted(frame["journey_id"].to_list())
    counts = frame.select("journey_id", "n_touches").rows()
    assert touches["journey_id"].to_list() == [j for j, n in counts for _ in range(n)]
    assert touches["touch_index"].to_list() == [i for _, n in counts for i in range(n)]


@pytest.mark.parametrize(
    ("first_group", "step_us", "one_key"),
    [
        (0, 1_000_000, True),  # whole seconds: journey number and seconds share one integer
        (0, 1_000, True),  # whole milliseconds
        (2**40, 1, False),  # 41-bit journey numbers and a microsecond span: the two-key sort
    ],
)
def test_touch_order_is_the_full_sort_whichever_key_is_used(first_group, step_us, one_key):
    import random

    rng = random.Random(5)
    n = 400
    start = datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000
    frame = pl.DataFrame({
        "_jn": [first_group + rng.randrange(12) for _ in range(n)],
        "timestamp": [int(start) + step_us * rng.randrange(2**22 if not one_key else 30)
                      for _ in range(n)],  # few distinct instants: many ties to break by text
        "contact_id": [rng.choice(["c1", "c2", None]) for _ in range(n)],
        "channel": [rng.choice(["podcast", "events"]) for _ in range(n)],
        "touch_type": [rng.choice(["view", "click"]) for _ in range(n)],
        "campaign": [None] * n,
        "touchpoint_id": [f"t{i:04d}" for i in rng.sample(range(n), n)],
    }).with_columns(pl.from_epoch("timestamp", time_unit="us").dt.replace_time_zone("UTC"))
    assert (_group_time_key(frame, "_jn") is not None) == one_key
    expected = frame.with_row_index("_i").sort(["_jn", *TOUCH_ORDER], nulls_last=True)["_i"]
    assert touch_order(frame, "_jn").to_list() == expected.to_list()


@pytest.mark.parametrize(("first_group", "in_time_order"),
                         [(0, True), (0, False), (2**40, True), (2**60, True)])
def test_pairs_come_in_touch_order_whether_or_not_the_touches_are_in_time_order(
        first_group, in_time_order):
    # touches listed in time order: (journey, row) keys sorted as values, ties on the time then
    # ordered by the text columns; otherwise (or journey numbers too large to share 63 bits
    # with the rows) touch_order itself: the same pairs in the same order either way
    import random

    rng = random.Random(11)
    n, touches_n = 600, 150
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    moments = [start + 1_000_000 * rng.randrange(40) for _ in range(touches_n)]  # many ties
    detail = pl.DataFrame({
        "timestamp": sorted(moments) if in_time_order else moments,
        "contact_id": [rng.choice(["c1", "c2", None]) for _ in range(touches_n)],
        "channel": [rng.choice(["podcast", "events"]) for _ in range(touches_n)],
        "touch_type": [rng.choice(["view", "click"]) for _ in range(touches_n)],
        "campaign": [rng.choice(["x", None]) for _ in range(touches_n)],
        "touchpoint_id": [f"t{i:04d}" for i in rng.sample(range(touches_n), touches_n)],
        "utm_source": [rng.choice(["a", "b"]) for _ in range(touches_n)],
    }).with_columns(pl.from_epoch("timestamp", time_unit="us").dt.replace_time_zone("UTC"))
    chosen = rng.sample([(j, i) for j in range(12) for i in range(touches_n)], n)
    pairs = pl.DataFrame({
        "_i": [i for _, i in chosen], "_jn": [first_group + j for j, _ in chosen],
    }, schema={"_i": pl.UInt32, "_jn": pl.UInt32 if first_group == 0 else pl.Int64})
    pairs = pairs.with_columns(detail.get_column("timestamp").gather(pairs.get_column("_i")))
    expected = pairs[touch_order(pairs, "_jn", detail=detail)]
    assert_frame_equal(_in_touch_order(pairs, detail), expected)


@pytest.mark.parametrize(
    "rows",
    [[1, 5, 5, 2, 1], [], [3, None, 3], [-4, 2, 2], [10**12, 7, 10**12]],  # bitmap, then hashed
)
def test_distinct_rows_counts_like_n_unique(rows):
    series = pl.Series("_row", rows, dtype=pl.Int64)
    assert _distinct_rows(series) == series.n_unique()


@settings(max_examples=40, deadline=None)
@given(datasets(), st.sampled_from(["same", "length"]))
def test_accounts_whose_hashes_collide_give_the_same_journeys(data, collide) -> None:
    # the window join runs on 64-bit hashes of the account ids, checked against the text;
    # forced collisions (every account alike, or accounts alike by length) must change nothing
    import attribution.journeys as journeys_module

    touch_rows, deal_rows, contact_rows = data
    expected, expected_stats = build(touch_rows, deal_rows, contact_rows, lookback_days=60)
    forced = {
        "same": lambda: pl.col("account_id").str.len_bytes().cast(pl.UInt64) * 0,
        "length": lambda: pl.col("account_id").str.len_bytes().cast(pl.UInt64),
    }[collide]
    original = journeys_module._account_hash
    journeys_module._account_hash = forced
    try:
        actual, actual_stats = build(touch_rows, deal_rows, contact_rows, lookback_days=60)
    finally:
        journeys_module._account_hash = original
    for left, right in zip(_collected(actual), _collected(expected), strict=True):
        assert_frame_equal(left, right)
    assert actual_stats == expected_stats


def test_colliding_account_hashes_never_pair_a_touch_with_another_account(monkeypatch) -> None:
    import attribution.journeys as journeys_module

    # "A" and "B" hash alike: without the text check B's deal would take A's touch
    monkeypatch.setattr(journeys_module, "_account_hash",
                        lambda: pl.col("account_id").str.len_bytes().cast(pl.UInt64))
    journeys, _ = build(
        [("t1", "A", None, "x", "2025-01-10"), ("t2", "B", None, "y", "2025-01-11")],
        [("D1", "B", "2025-01-15", "2025-02-10", "won", 100)],
    )
    assert paths(journeys) == {"D1": ["t2"], "account:A": ["t1"]}


def test_touches_without_an_account_join_no_window() -> None:
    # validated exports never hold them, but build_journeys is public: a null account matches
    # nothing, as in a text join (its hash must not match a null account's either)
    frame = touches([("t1", "a", None, "x", "2025-01-10"), ("t2", None, "c", "y", "2025-01-11"),
                     ("t3", None, "c", "y", "2025-01-12")])
    journeys, stats = build_journeys(
        frame,
        deals_frame([("D1", "a", "2025-01-15", "2025-02-10", "won", 100)]).cast(dict(DEAL_SCHEMA)),
        contacts_frame([]),
        as_of=AS_OF,
    )
    assert paths(journeys) == {"D1": ["t1"]}
    assert (stats.touches_used, stats.touches_out_of_window) == (1, 2)


@settings(max_examples=40, deadline=None)
@given(datasets(), st.sampled_from([AS_OF, at("2025-05-01")]))
def test_a_consuming_build_gives_the_same_journeys_and_empties_the_touchpoints(data, as_of):
    """``consume=True`` drops the touchpoints' columns as it reads them; nothing else changes."""
    touch_rows, deal_rows, contact_rows = data
    deals = deals_frame(list(deal_rows)).cast(dict(DEAL_SCHEMA))
    contacts = contacts_frame(list(contact_rows))
    options = {"as_of": as_of, "lookback_days": 60}
    kept, kept_stats = build_journeys(touches(touch_rows), deals, contacts, **options)
    given_away = touches(touch_rows)
    built, stats = build_journeys(given_away, deals, contacts, consume=True, **options)
    assert given_away.width == 0
    assert stats == kept_stats
    assert_frame_equal(built.touches.collect(), kept.touches.collect())
    assert_frame_equal(built.journeys.collect(), kept.journeys.collect())


def test_touch_runs_put_each_journey_in_one_run_and_keep_built_layouts() -> None:
    # b in two runs, nulls apart: sorted by journey (stably, nulls last)
    touches = pl.DataFrame({"journey_id": ["b", "a", "b", None, "c", None],
                            "touch_index": [0, 0, 1, 0, 0, 1]})
    runs = TouchRuns.of(touches)
    assert runs.touches.rows() == [("a", 0), ("b", 0), ("b", 1), ("c", 0), (None, 0), (None, 1)]
    assert runs.starts.tolist() == [0, 1, 3, 4]
    assert runs.sizes.tolist() == [1, 2, 1, 2]
    assert runs.total(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).tolist() == [1.0, 5.0, 4.0, 11.0]
    assert runs.max(np.array([3, 1, 2, 0, 7, 5])).tolist() == [3, 2, 0, 7]
    assert runs.any(np.array([False, False, True, False, False, False])).tolist() == [
        False, True, False, False]
    assert runs.spread(np.array([9, 8, 7, 6])).tolist() == [9, 8, 8, 7, 6, 6]
    # each journey already one run (as built): the frame as it is, in its order
    built = pl.DataFrame({"journey_id": ["z", "z", "a"], "touch_index": [0, 1, 0]})
    kept = TouchRuns.of(built)
    assert kept.touches.equals(built) and kept.starts.tolist() == [0, 2]
    empty = TouchRuns.of(built.clear())
    assert empty.starts.size == 0 and empty.total(np.zeros(0)).size == 0


def test_journeys_take_their_runs_once() -> None:
    journeys = Journeys.from_frames(
        pl.DataFrame({"journey_id": ["b", "a", "b"], "touch_index": [0, 0, 1]}),
        pl.DataFrame({"journey_id": ["a", "b"]}),
    )
    assert journeys.runs is journeys.runs
    assert journeys.runs.touches.get_column("journey_id").to_list() == ["a", "b", "b"]


def test_journeys_collect_their_money_rows_once() -> None:
    journeys = Journeys.from_frames(
        pl.DataFrame({"journey_id": ["c", "a", "b", None, "z", "a"],
                      "touch_index": [0, 0, 0, 0, 0, 1]}),
        pl.DataFrame({"journey_id": ["a", "b", "c"], "status": ["won", "none", "path"]}),
    )
    assert journeys.money is journeys.money
    assert journeys.money.get_column("journey_id").to_list() == ["a", "c"]
    money_only = journeys.with_money_only()
    assert money_only.journeys.collect().equals(journeys.money)
    # the money journeys' touches, in their order (no touch of an unlisted or null journey)
    assert money_only.touches.collect().select("journey_id", "touch_index").rows() == [
        ("c", 0), ("a", 0), ("a", 1)]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 240), st.sampled_from(["p", "q", None]),
                  st.sampled_from(["email", "direct"])),
        max_size=40,
    ),
    dedup_minutes=st.sampled_from([0.0, 0.5, 1.0, 30.0, 90.0]),
)
def test_repeats_looked_for_in_runs_of_close_touches_are_the_journeys_repeats(
        rows, dedup_minutes) -> None:
    # touches in touch order (journey, then time); minutes apart, often equal or a few apart
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    touchpoints = pl.DataFrame(
        {"contact_id": [r[2] for r in rows], "channel": [r[3] for r in rows]},
        schema={"contact_id": pl.String, "channel": pl.String},
    ).reverse()  # the touchpoints' rows in another order than the pairs'
    pairs = pl.DataFrame({
        "_i": pl.Series([len(rows) - 1 - k for k in range(len(rows))], dtype=pl.UInt32),
        "_jn": pl.Series([r[0] for r in rows], dtype=pl.UInt32),
        "timestamp": pl.Series([at("2025-01-01") + timedelta(minutes=r[1]) for r in rows],
                               dtype=pl.Datetime("us", "UTC")),
    })
    person = touchpoints.select(PERSON).to_series().gather(pairs.get_column("_i"))
    expected = repeat_flags(pairs.with_columns(person.alias("_person")), "_jn", dedup_minutes)
    assert _repeats(pairs, touchpoints, dedup_minutes).to_list() == expected.to_list()


# -- the layout, and the builder against the reference ---------------------------------------------
def _assert_layout(journeys: Journeys) -> None:
    """``journeys.index`` is the layout of its touches: each journey with touches one run, in
    the journeys' order, ``touch_index`` 0, 1, ... along it."""
    index = journeys.index
    assert index is not None, "built journeys lost their index"
    assert index.touch_ordered and index.positional
    touches, frame = journeys.touches.collect(), journeys.journeys.collect()
    derived = JourneyIndex.of(touches.get_column("journey_id"), touches.get_column("touch_index"))
    assert derived.positional, "the touches are not in the layout their index claims"
    assert index.starts.tolist() == derived.starts.tolist()
    assert index.sizes.tolist() == derived.sizes.tolist()
    touched = frame.filter(pl.col("n_touches") > 0)
    assert index.keys(touches.get_column("journey_id")).to_list() == touched["journey_id"].to_list()
    assert index.sizes.tolist() == touched["n_touches"].to_list()
    assert journeys.runs.index is index  # read, not derived again


@settings(max_examples=60, deadline=None)
@given(datasets(), st.sampled_from([AS_OF, at("2025-05-01")]))
def test_built_journeys_carry_the_index_of_their_layout(data, as_of) -> None:
    # what the models, credit and path keys read instead of sorting: this fails when
    # build_journeys (or with_money_only) changes the order of the touches
    journeys, _ = build(*data, lookback_days=60, as_of=as_of)
    _assert_layout(journeys)
    _assert_layout(journeys.with_money_only())


@settings(max_examples=100, deadline=None)
@given(st.one_of(datasets(), datasets(months=1)), st.sampled_from([AS_OF, at("2025-05-01"), None]),
       st.sampled_from([0.0, 10.0, 30.0]), st.sampled_from([20, 60, 400]), st.booleans())
def test_build_journeys_matches_the_reference_builder(data, as_of, dedup_minutes, lookback_days,
                                                      in_time_order) -> None:
    # touchpoints in time order take the (journey, row) key sort, others the general touch order
    touch_rows, deal_rows, contact_rows = data
    touchpoints = touches(list(touch_rows))
    if in_time_order:
        touchpoints = touchpoints.sort("timestamp", maintain_order=True)
    deals = deals_frame(list(deal_rows)).cast(dict(DEAL_SCHEMA))
    contacts = contacts_frame(list(contact_rows))
    options = {"as_of": as_of, "dedup_minutes": dedup_minutes, "lookback_days": lookback_days}
    expected_touches, expected_journeys, counts = reference_journeys(
        touchpoints, deals, contacts, **options)
    journeys, stats = build_journeys(touchpoints, deals, contacts, **options)
    assert_frame_equal(journeys.touches.collect(), expected_touches)
    assert_frame_equal(journeys.journeys.collect(), expected_journeys)
    assert {name: getattr(stats, name) for name in counts} == counts


def test_journey_index_of_runs_selections_and_concatenation() -> None:
    ids = pl.Series(["b", "b", "a", None, None, "b"])
    index = JourneyIndex.of(ids, pl.Series([0, 1, 0, 0, 1, 2]))
    assert index.starts.tolist() == [0, 2, 3, 5] and index.sizes.tolist() == [2, 1, 2, 1]
    assert index.keys(ids).to_list() == ["b", "a", None, "b"]
    assert index.touch_ordered and not index.positional  # b's last run starts at touch 2
    assert index.run_of_rows().tolist() == [0, 0, 1, 2, 2, 3]
    assert not JourneyIndex.of(ids, pl.Series([0, 0, 0, 0, 1, 2])).touch_ordered
    assert not JourneyIndex.of(ids, pl.Series([0, 1, 0, None, 1, 2])).touch_ordered
    assert not JourneyIndex.of(ids).touch_ordered
    whole = JourneyIndex.of(pl.Series(["x", "x", "y", "z", "z"]), pl.Series([0, 1, 0, 0, 1]))
    assert whole.positional
    # dropping whole runs keeps the positions, a row inside a run only the order
    dropped = whole.select(np.array([True, True, False, True, True]))
    assert dropped.starts.tolist() == [0, 2] and dropped.sizes.tolist() == [2, 2]
    assert dropped.positional
    thinned = whole.select(np.array([False, True, True, True, True]))
    assert thinned.sizes.tolist() == [1, 1, 2]
    assert thinned.touch_ordered and not thinned.positional
    joined = whole.followed_by(JourneyIndex.of_sizes(np.array([1, 0, 3])))
    assert joined.starts.tolist() == [0, 2, 3, 5, 6] and joined.sizes.tolist() == [2, 1, 2, 1, 3]
    empty = JourneyIndex.of(pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.UInt32))
    assert empty.runs == 0 and empty.positional and empty.total(np.zeros(0)).size == 0


def test_journeys_of_other_origins_derive_their_index_once() -> None:
    journeys = Journeys.from_frames(
        pl.DataFrame({"journey_id": ["a", "a", "b"], "touch_index": [0, 1, 0]}),
        pl.DataFrame({"journey_id": ["a", "b"]}),
    )
    assert journeys.index is None
    assert journeys.runs.index.positional and journeys.runs.starts.tolist() == [0, 2]


def test_a_new_journeys_starts_without_the_deal_columns_of_another() -> None:
    import dataclasses

    journeys = Journeys.from_frames(pl.DataFrame({"journey_id": ["a"], "touch_index": [0]}),
                                    pl.DataFrame({"journey_id": ["a"]}))
    journeys.deal_gather.rows = np.zeros(1, dtype=np.uint32)
    assert dataclasses.replace(journeys).deal_gather.rows is None
    assert journeys.with_money_only().deal_gather.rows is None
