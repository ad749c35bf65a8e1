"""The definitions a user quotes, checked against their outside references (issue 21, item 7).

W-shaped follows Marketo Measure (Bizible); Markov's global allocation gives every channel its
removal-effect share of the total, to the cent; without contacts the lead milestone falls back
to the first touch, and the run says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from attribution.config import load_config
from attribution.credit import allocate
from attribution.errors import ConfigError
from attribution.models import get_model
from attribution.models.position import NO_CONTACTS_NOTE
from attribution.pipeline import prepare
from tests.factories import channel_credit, journeys_of

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo" / "attribution.toml"

# -- W-shaped: Marketo Measure's worked example ---------------------------------------------
# Adobe Experience League, "Marketo Measure attribution models" (Marketo Measure, formerly
# Bizible; https://experienceleague.adobe.com/en/docs/marketo-measure/using/
# introduction-to-marketo-measure/overview-resources/marketo-measure-attribution-models):
# "In this model, the FT, LC, and OC touchpoints are each attributed 30% of the attribution
# credit. The remaining 10% is attributed proportionally to any intermediary touchpoints that
# occur between the three milestone touchpoints." Its story, one buying group at one account:
# Kate's first visit through an AdWords ad (first touch); Austin fills out a form from a
# LinkedIn post and becomes the lead (lead creation); Hillary finds content through a Google
# search and fills out a form; Austin registers for a webinar from an email; Hillary visits the
# pricing page from an email and an opportunity is created (her visit is the opportunity-
# creation touch, "the closest marketing interaction to the Opportunity Creation date"). The
# full-path part of the page goes on after opportunity creation (the pitch to their CMO) to the
# close; we give that part two touches, an event and a direct visit, which W-shaped, whose
# journey ends at opportunity creation, does not credit. The deal: $100,000.00, won.
MARKETO_TOUCHES = [
    ("acme", "kate", "paid_search", "2025-01-02T10:00"),     # 0 FT: AdWords ad
    ("acme", "austin", "linkedin", "2025-01-10T10:00"),      # 1 LC: LinkedIn post, form
    ("acme", "hillary", "organic_search", "2025-01-20T10:00"),  # 2 Google search, form
    ("acme", "austin", "webinar", "2025-02-01T10:00"),       # 3 webinar registration (email)
    ("acme", "hillary", "email", "2025-02-10T10:00"),        # 4 OC: pricing page from an email
    ("acme", "kate", "events", "2025-03-01T10:00"),          # 5 after OC: pitch to the CMO
    ("acme", "hillary", "direct", "2025-03-20T10:00"),       # 6 closed won (last touch)
]
MARKETO_DEALS = [("opp-1", "acme", "2025-02-10T12:00", "2025-03-25", "won", 10_000_000)]
MARKETO_CONTACTS = [
    ("kate", "acme", None),
    ("austin", "acme", "2025-01-10T10:05"),  # the buying group's lead: Austin's form
    ("hillary", "acme", "2025-01-20T10:05"),
]


def marketo_credit(model: str, contacts=MARKETO_CONTACTS, **params) -> dict[str, int]:
    journeys = journeys_of(MARKETO_TOUCHES, MARKETO_DEALS, contacts)
    chosen = get_model(model, **params)
    return channel_credit(allocate(journeys, chosen.weights(journeys), model).collect())


def test_marketo_example_milestones() -> None:
    journeys = journeys_of(MARKETO_TOUCHES, MARKETO_DEALS, MARKETO_CONTACTS)
    touches = journeys.touches.collect().sort("touch_index")
    assert touches["is_first"].to_list() == [True] + [False] * 6
    assert touches["is_lead_creation"].to_list() == [False, True] + [False] * 5
    assert touches["is_opportunity_creation"].to_list() == [False] * 4 + [True, False, False]
    assert touches["is_closed_won"].to_list() == [False] * 6 + [True]


def test_w_shaped_on_marketos_worked_example() -> None:
    # 30% of 10,000,000 cents to each milestone; the 10% (1,000,000) over the two touches
    # between them (2 and 3): 500,000 each; touches 5 and 6 come after opportunity creation
    assert marketo_credit("w_shaped") == {
        "paid_search": 3_000_000, "linkedin": 3_000_000, "email": 3_000_000,
        "organic_search": 500_000, "webinar": 500_000,
    }


def test_w_shaped_spread_all_keeps_the_former_definition() -> None:
    # the 10% over every touch that is not a milestone: 2, 3, 5 and 6, 250,000 each
    assert marketo_credit("w_shaped", spread="all") == {
        "paid_search": 3_000_000, "linkedin": 3_000_000, "email": 3_000_000,
        "organic_search": 250_000, "webinar": 250_000, "events": 250_000, "direct": 250_000,
    }


def test_full_path_on_marketos_example() -> None:
    # 22.5% (2,250,000) each to FT, LC, OC and closed won (6); 10% over 2, 3 and 5:
    # 333,333.33 each, floors leave 1 cent, which goes to the earliest (touch 2)
    assert marketo_credit("full_path") == {
        "paid_search": 2_250_000, "linkedin": 2_250_000, "email": 2_250_000,
        "direct": 2_250_000, "organic_search": 333_334, "webinar": 333_333, "events": 333_333,
    }


def test_w_shaped_without_contacts_gives_the_first_touch_60_percent() -> None:
    # no lead dates: lead creation is the first touch (0), which takes 30% + 30%; the 10% goes
    # over touches 1, 2, 3 (between the first touch and opportunity creation, 4): 333,333.33
    # each, the leftover cent to the earliest (1)
    assert marketo_credit("w_shaped", contacts=()) == {
        "paid_search": 6_000_000, "email": 3_000_000,
        "linkedin": 333_334, "organic_search": 333_333, "webinar": 333_333,
    }


def test_w_shaped_spread_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"^w_shaped: spread must be one of between, all, "
                                          r"not 'middle'$"):
        get_model("w_shaped", spread="middle")


def test_w_shaped_without_touches_between_scales_the_milestones() -> None:
    # first touch = lead creation (no contacts), opportunity creation the next touch, a touch
    # after it: nothing lies between, so the 90% of the milestones is scaled to 100%
    # (two thirds to the first touch, one third to opportunity creation)
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "events", "2025-01-05"),
         ("A", "x", "direct", "2025-01-09")],
        [("D", "A", "2025-01-06", "2025-01-10", "won", 9_000)],
    )
    credit = allocate(journeys, get_model("w_shaped").weights(journeys), "w").collect()
    assert channel_credit(credit) == {"podcast": 6_000, "events": 3_000}


# -- the no-contacts note --------------------------------------------------------------------
def test_a_run_without_contacts_says_the_lead_is_the_first_touch() -> None:
    config = dataclasses.replace(load_config(DEMO), contacts=None,
                                 models=("last_touch", "w_shaped"))
    assert NO_CONTACTS_NOTE in prepare(config).notes
    assert NO_CONTACTS_NOTE == (
        "no contacts file: without lead-creation dates each journey's lead-creation touch is "
        "its first touch, so w_shaped gives the first touch 60% (first touch and lead "
        "creation) and full_path 45%; give --contacts FILE to place lead creation"
    )


def test_no_note_with_contacts_or_without_a_lead_model() -> None:
    config = load_config(DEMO)
    assert config.contacts is not None
    assert NO_CONTACTS_NOTE not in prepare(config.replace(models=("w_shaped",))).notes
    linear = dataclasses.replace(config, contacts=None, models=("linear",))
    assert NO_CONTACTS_NOTE not in prepare(linear).notes
