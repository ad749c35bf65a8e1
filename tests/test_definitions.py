"""The definitions a user quotes, checked against their outside references (issue 21, item 7).

W-shaped follows Marketo Measure (Bizible); Markov's global allocation gives every channel its
removal-effect share of the total, to the cent; without contacts the lead milestone falls back
to the first touch, and the run says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.config import load_config
from attribution.credit import allocate, split_by_totals
from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.models import get_model
from attribution.models.markov import MarkovModel
from attribution.models.position import NO_CONTACTS_NOTE
from attribution.paths import read_paths
from attribution.pipeline import prepare
from tests.factories import channel_credit, journeys_of
from tests.reference import split_by_totals as reference_split

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
    # without contacts the demo's touches that name only a contact are rejected: allow it
    config = dataclasses.replace(load_config(DEMO), contacts=None, max_reject_rate=1.0,
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
    linear = dataclasses.replace(config, contacts=None, models=("linear",), max_reject_rate=1.0)
    assert NO_CONTACTS_NOTE not in prepare(linear).notes


# -- Markov's global allocation: channel totals first -----------------------------------------
CA_CHANNELS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]


def write_small_value_paths(path: Path, rows: int = 10_000, seed: int = 7) -> None:
    """A path table in ChannelAttribution's layout and scale (its ``Data.csv``: 10,000 paths
    over channels alpha..iota, conversion values well below one unit, e.g. ``eta > iota >
    alpha > eta;1;0.244;3``), with ``delta`` a rare channel: a deal's share of delta is a
    small fraction of a cent, which rounding deal by deal loses."""
    rng = np.random.default_rng(seed)
    frequency = np.array([0.22, 0.18, 0.14, 0.015, 0.12, 0.1, 0.09, 0.075, 0.06])
    lines = ["path;total_conversions;total_conversion_value;total_null"]
    for _ in range(rows):
        length = int(rng.integers(1, 6))
        channels = rng.choice(CA_CHANNELS, size=length, p=frequency / frequency.sum())
        conversions = int(rng.integers(0, 3))
        value = sum(int(rng.integers(1, 10)) for _ in range(conversions))  # cents each
        lines.append(f"{' > '.join(channels)};{conversions};{value / 100:.2f};"
                     f"{int(rng.integers(0, 4))}")
    path.write_text("\n".join(lines) + "\n")


def deal_by_deal(journeys, weights) -> dict[str, int]:
    """Channel totals of the same weights rounded deal by deal (the former allocation)."""
    from attribution.credit import _largest_remainder

    rows = weights.collect().sort("journey_id", "channel")
    money = journeys.money.select("journey_id", "revenue_cents")
    rows = rows.join(money, on="journey_id", how="left", maintain_order="left")
    starts = np.flatnonzero(np.r_[True, rows["journey_id"].to_numpy()[1:]
                                  != rows["journey_id"].to_numpy()[:-1]])
    cents = _largest_remainder(rows["weight"].to_numpy(), rows["revenue_cents"].to_numpy()[starts],
                               starts)
    totals = rows.with_columns(pl.Series("cents", cents)).group_by("channel").agg(
        pl.col("cents").sum())
    return dict(totals.iter_rows())


@pytest.mark.parametrize("weight_by", ["conversions", "revenue"])
def test_markov_channel_credit_is_its_share_of_the_total_to_the_cent(tmp_path, weight_by):
    source = tmp_path / "Data.csv"
    write_small_value_paths(source)
    journeys = read_paths(source).journeys
    model = MarkovModel(weight_by=weight_by)
    fit = model.fit(journeys)
    weights = fit.weights(journeys)
    credit = allocate(journeys, weights, "markov").collect()
    share = dict(zip(fit.channels, fit.shares(), strict=True))
    revenue = int(journeys.money["revenue_cents"].sum())
    assert revenue == int(credit["revenue_credit_cents"].sum())
    got = channel_credit(credit)
    for channel, value in share.items():
        assert abs(got[channel] - value * revenue) < 1.0, channel
    pipeline = channel_credit(credit, "pipeline_credit_cents")
    amount = int(journeys.money["amount_cents"].sum())
    for channel, value in share.items():
        assert abs(pipeline[channel] - value * amount) < 1.0, channel
    # every deal still sums to its amount, to the cent, and no credit is negative
    per_deal = credit.group_by("journey_id").agg(pl.col("revenue_credit_cents").sum())
    expected = journeys.money.select("journey_id", "revenue_cents")
    assert dict(per_deal.iter_rows()) == dict(expected.filter(pl.col("revenue_cents") != 0)
                                              .iter_rows()) | {
        j: 0 for j in expected.filter(pl.col("revenue_cents") == 0)["journey_id"]}
    assert credit["revenue_credit_cents"].min() >= 0 and credit["pipeline_credit_cents"].min() >= 0
    # the data does what ChannelAttribution's does: deal by deal, delta is starved
    former = deal_by_deal(journeys, weights)
    assert former["delta"] < 0.75 * share["delta"] * revenue
    # the fit's own table says the same: removal_effects' revenue credit (major units) is the
    # share of the total revenue
    effects = fit.removal_effects()
    column = "share_value" if weight_by == "revenue" else "share"
    for channel, value in effects.select("channel", column).iter_rows():
        assert abs(got[channel] - value * revenue) < 1.0


def test_channelattribution_delta_numbers_from_the_issue(tmp_path):
    # the numbers the issue quotes, in the same shape: on this data, rounding deal by deal gives
    # delta about half its share of the total; totals first gives it its share to the cent
    source = tmp_path / "Data.csv"
    write_small_value_paths(source)
    journeys = read_paths(source).journeys
    fit = MarkovModel().fit(journeys)
    credit = allocate(journeys, fit.weights(journeys), "markov").collect()
    revenue = int(journeys.money["revenue_cents"].sum())
    delta = fit.shares()[fit.channels.index("delta")] * revenue
    assert revenue == 49_626 and round(delta, 2) == 889.14
    assert channel_credit(credit)["delta"] == 889
    assert deal_by_deal(journeys, fit.weights(journeys))["delta"] == 0


@st.composite
def split_cases(draw):
    amounts = draw(st.lists(st.one_of(st.integers(0, 12), st.integers(0, 10**9 + 7)),
                            min_size=1, max_size=40))
    raw = draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), min_size=1,
                        max_size=9).filter(lambda r: sum(r) > 0))
    return amounts, [r / math.fsum(raw) for r in raw]


@settings(max_examples=300, deadline=None)
@given(split_cases())
def test_split_by_totals_meets_both_margins(case):
    amounts, shares = case
    cents = split_by_totals(np.array(amounts), np.array(shares))
    assert cents.shape == (len(amounts), len(shares))
    assert (cents >= 0).all()
    assert cents.sum(axis=1).tolist() == amounts  # every deal: its amount, to the cent
    total = sum(amounts)
    exact = [s * total for s in shares]
    assert all(abs(c - e) < 1.0 for c, e in zip(cents.sum(axis=0).tolist(), exact, strict=True))
    assert cents.tolist() == reference_split(amounts, shares)  # the plain reference
    assert np.array_equal(cents, split_by_totals(np.array(amounts), np.array(shares)))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_markov_credit_does_not_depend_on_the_order_of_journeys_or_touches(seed):
    # the same journeys listed in another order (journeys frame and touch rows shuffled):
    # every journey gets the same cents, since the totals are spread over deals by journey_id
    source = Path(__file__).resolve().parents[1] / "fixtures" / "paths" / "sample.csv"
    journeys = read_paths(source).journeys
    rng = np.random.default_rng(seed)
    touches = journeys.touches.collect()
    table = journeys.journeys.collect()
    shuffled = Journeys.from_frames(touches[rng.permutation(touches.height).tolist()],
                                    table[rng.permutation(table.height).tolist()],
                                    has_timestamps=False, has_milestones=False)

    def cents(of: Journeys) -> list[tuple]:
        fit = MarkovModel().fit(of)
        credit = allocate(of, fit.weights(of), "markov").collect()
        return sorted(credit.select("journey_id", "channel", "pipeline_credit_cents",
                                    "revenue_credit_cents").rows())

    assert cents(shuffled) == cents(journeys)


# -- money units ------------------------------------------------------------------------------
#: words that make a column money (conversion counts and shares are not)
MONEY_WORDS = ("revenue", "pipeline", "amount", "value", "spend", "cost")


def test_every_money_column_of_a_result_set_says_its_unit(tmp_path):
    # every output of a run with every model (Shapley valued by revenue): money is a decimal
    # in major units (Decimal(38, 2) exact, or a float estimate such as share x total), and an
    # integer money column is named *_cents; run.json's money totals are *_cents
    from click.testing import CliRunner

    from attribution.cli import cli

    demo = DEMO.parent
    config = tmp_path / "attribution.toml"
    config.write_text(
        DEMO.read_text()
        .replace('touchpoints = "touchpoints.csv"', f'touchpoints = "{demo / "touchpoints.csv"}"')
        .replace('deals = "deals.csv"', f'deals = "{demo / "deals.csv"}"')
        .replace('contacts = "contacts.csv"', f'contacts = "{demo / "contacts.csv"}"')
        .replace('spend = "spend.csv"', f'spend = "{demo / "spend.csv"}"')
        + '\n[models.shapley]\nvalue = "revenue"\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["-q", "run", "--config", str(config), "--out", str(out),
                                      "--out-format", "parquet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = {path.stem: pl.read_parquet(path) for path in out.glob("*.parquet")}
    assert {"credit", "summary", "markov_removal_effects", "markov_transitions",
            "shapley_values"} <= set(written)
    for stem, frame in written.items():
        for name, dtype in frame.schema.items():
            if not any(word in name for word in MONEY_WORDS) or name.endswith("_share"):
                continue
            if dtype.is_integer():
                assert name.endswith("_cents"), (stem, name)
            else:
                assert isinstance(dtype, pl.Decimal) or dtype == pl.Float64, (stem, name, dtype)
    summary = written["summary"].filter(pl.col("model") == "last_touch")
    record = json.loads((out / "run.json").read_text())
    totals = record["totals"]
    # money: keep names from here (the files' names)
    assert "won_revenue" not in totals and "pipeline" not in totals
    assert totals["won_revenue_cents"] == int(summary["revenue_credit"].sum() * 100)
    assert totals["pipeline_cents"] == int(summary["pipeline_credit"].sum() * 100)
    # the Shapley revenue values are in major units: the simplified game's values add up to
    # the won revenue (of the won deals with touches), in dollars
    values = written["shapley_values"]["shapley_value"].sum()
    touched = written["credit"].filter((pl.col("model") == "last_touch")
                                       & (pl.col("channel") != "(no touch)"))
    assert values == pytest.approx(float(touched["revenue_credit"].sum()))
    # the transitions' conversion value is integer cents, and says so: the exits to
    # (conversion) carry the won revenue of the journeys with touches
    transitions = written["markov_transitions"]
    exits = transitions.filter(pl.col("to_state") == "(conversion)")["value_cents"].sum()
    assert exits == int(touched["revenue_credit"].sum() * 100)
    # money: keep names to here
