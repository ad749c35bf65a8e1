"""Each rule-based model on one hand-worked journey, to the cent.

The journey (tests/factories.py, WORKED_*): deal D1 at account A, won, $1,000.00 = 100000
cents, created 2025-02-03, closed 2025-02-15. Buying group ann, bob, cat; the earliest lead
creation is bob's on 2025-01-12.

    idx  date        channel      milestone
    0    2025-01-01  podcast      first touch
    1    2025-01-10  newsletter   lead creation (last touch at or before 01-12)
    2    2025-01-20  direct
    3    2025-02-01  paid_search  opportunity creation (last touch at or before 02-03)
    4    2025-02-10  direct       closed won (last touch)
"""

from __future__ import annotations

import pytest

from attribution.credit import allocate
from attribution.models import get_model
from tests.factories import (
    WORKED_CONTACTS,
    WORKED_DEALS,
    WORKED_TOUCHES,
    channel_credit,
    journeys_of,
)


def credit_of(model: str, **params) -> dict[str, int]:
    journeys = journeys_of(WORKED_TOUCHES, WORKED_DEALS, WORKED_CONTACTS)
    chosen = get_model(model, **params)
    return channel_credit(allocate(journeys, chosen.weights(journeys), model).collect())


def test_milestones_of_the_worked_journey():
    journeys = journeys_of(WORKED_TOUCHES, WORKED_DEALS, WORKED_CONTACTS)
    touches = journeys.touches.collect().sort("touch_index")
    assert touches["channel"].to_list() == [
        "podcast", "newsletter", "direct", "paid_search", "direct",
    ]
    assert touches["is_first"].to_list() == [True, False, False, False, False]
    assert touches["is_lead_creation"].to_list() == [False, True, False, False, False]
    assert touches["is_opportunity_creation"].to_list() == [False, False, False, True, False]
    assert touches["is_closed_won"].to_list() == [False, False, False, False, True]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # everything to touch 0
        ("first_touch", {"podcast": 100_000}),
        # everything to touch 4
        ("last_touch", {"direct": 100_000}),
        # touch 4 is direct, so the last non-direct touch is 3
        ("last_non_direct", {"paid_search": 100_000}),
        # 20000 cents per touch; direct has two touches
        ("linear",
         {"direct": 40_000, "newsletter": 20_000, "paid_search": 20_000, "podcast": 20_000}),
        # 40% first (40000), 40% last (40000), 20% over touches 1-3: 6666.67 each -> floors
        # 6666 x3 leave 2 cents, which go to the earlier touches 1 and 2 (equal fractions):
        # newsletter 6667, direct 40000 + 6667, paid_search 6666
        ("u_shaped",
         {"direct": 46_667, "newsletter": 6_667, "paid_search": 6_666, "podcast": 40_000}),
        # 30% each to first (0), lead (1), opportunity (3); 10% over touch 2, the one between
        # them (touch 4 comes after opportunity creation: nothing)
        ("w_shaped",
         {"direct": 10_000, "newsletter": 30_000, "paid_search": 30_000, "podcast": 30_000}),
        # 22.5% each to first (0), lead (1), opportunity (3), closed won (4); 10% to touch 2
        ("full_path",
         {"direct": 32_500, "newsletter": 22_500, "paid_search": 22_500, "podcast": 22_500}),
    ],
)
def test_model_on_worked_journey(model, expected):
    assert credit_of(model) == expected


def test_time_decay_on_worked_journey():
    # ages in days to the close (02-15): 45, 36, 26, 14, 5; score 2 ** (-age / 7)
    # weights 0.0118996, 0.0290115, 0.0780932, 0.2562504, 0.6247454
    # x 100000 -> 1189.96, 2901.15, 7809.32, 25625.04, 62474.54; floors sum to 99998,
    # the 2 cents go to the largest fractions (.96 touch 0, .54 touch 4)
    assert credit_of("time_decay") == {
        "podcast": 1_190,
        "newsletter": 2_901,
        "direct": 7_809 + 62_475,
        "paid_search": 25_625,
    }


def test_time_decay_relative_to_creation():
    # ages to the creation (02-03): 33, 24, 14, 2 days, and touch 4 comes after creation: 0
    # scores 2^(-33/7)=0.0380942, 2^(-24/7)=0.0928746, 2^(-14/7)=0.25, 2^(-2/7)=0.8203354, 1
    # sum 2.2013042 -> x 100000 / sum: 1730.53, 4219.07, 11356.90, 37265.88, 45427.62;
    # floors sum to 99997 and the 3 cents go to the largest fractions (.90, .88, .62)
    credit = credit_of("time_decay", reference="created")
    assert credit == {"podcast": 1_730, "newsletter": 4_219, "direct": 11_357 + 45_428,
                      "paid_search": 37_266}


def test_u_shaped_two_touches_is_half_and_half():
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "paid_search", "2025-01-05")],
        [("D", "A", "2025-01-06", "2025-01-10", "won", 999)],
    )
    credit = allocate(journeys, get_model("u_shaped").weights(journeys), "u").collect()
    # 40/40 scaled to 50/50; 499.5 each: one cent of residue to the earlier touch
    assert channel_credit(credit) == {"paid_search": 499, "podcast": 500}


def test_last_non_direct_all_direct_falls_back_to_last_touch():
    journeys = journeys_of(
        [("A", "x", "direct", "2025-01-01"), ("A", "y", "direct", "2025-01-05")],
        [("D", "A", "2025-01-06", "2025-01-10", "won", 1000)],
    )
    weights = get_model("last_non_direct").weights(journeys).collect().sort("touch_index")
    assert weights["weight"].to_list() == [0.0, 1.0]


def test_w_shaped_open_deal_lead_equals_first():
    # no lead date: the lead-creation touch is the first touch, which then earns 60%
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "events", "2025-01-05"),
         ("A", "x", "paid_search", "2025-01-07"), ("A", "x", "direct", "2025-01-09")],
        [("D", "A", "2025-01-08", None, "open", 10_000)],
        as_of=None,
    )
    credit = allocate(journeys, get_model("w_shaped").weights(journeys), "w").collect()
    # first+lead 60% (touch 0), opportunity 30% (touch 2), 10% to touch 1, the one between
    # them; touch 3 comes after opportunity creation and earns nothing
    assert channel_credit(credit, "pipeline_credit_cents") == {
        "podcast": 6_000, "events": 1_000, "paid_search": 3_000,
    }
    assert channel_credit(credit, "revenue_credit_cents") == {
        "podcast": 0, "events": 0, "paid_search": 0,
    }
    # spread="all": the 10% over touches 1 and 3
    spread_all = get_model("w_shaped", spread="all").weights(journeys)
    credit = allocate(journeys, spread_all, "w").collect()
    assert channel_credit(credit, "pipeline_credit_cents") == {
        "podcast": 6_000, "events": 500, "paid_search": 3_000, "direct": 500,
    }
