"""Budget: the recommendation by hand on the economics fixture, bounds, exact totals, what-if.

Fixture figures (tests/test_economics.py): spend events 3,000.00, paid_search 1,000.00,
paid_social 600.00 (total 4,600.00). Revenue credit under linear: events 30,000.00,
paid_search 30,500.00, paid_social 500.00 (61,000.00); under last-touch paid_search 61,000.00.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.budget import (
    BUDGET_SCHEMA,
    WHAT_IF_SCHEMA,
    Share,
    largest_remainder,
    parse_bound,
    parse_bound_option,
    read_budget,
    recommend_budget,
    what_if,
)
from attribution.errors import ConfigError, InputError, ModelError

SUMMARY = pl.DataFrame(
    {
        "model": ["linear"] * 3 + ["last_touch"] * 2,
        "channel": ["events", "paid_search", "paid_social", "paid_search", "paid_social"],
        "channel_group": ["demand_creation", "demand_capture", "demand_creation",
                          "demand_capture", "demand_creation"],
        "revenue_credit_cents": [3000000, 3050000, 50000, 6100000, 0],
    }
)
SPEND = pl.DataFrame(
    {"channel": ["events", "paid_search", "paid_social"], "spend_cents": [300000, 100000, 60000]}
)


def column(frame: pl.DataFrame, name: str) -> dict[str, object]:
    return dict(zip(frame["channel"], frame[name], strict=True))


def test_the_fixture_run_gives_the_figures_used_here() -> None:
    from attribution.spend import load_spend, spend_by_channel
    from tests.test_economics import FIXTURES, run_export

    credit, journeys, _leads = run_export(FIXTURES)
    from attribution.credit import summarise

    summary = summarise(credit, journeys)
    assert sorted(summary.select("model", "channel", "revenue_credit_cents").filter(
        pl.col("revenue_credit_cents") > 0).rows()) == sorted(
        SUMMARY.filter(pl.col("revenue_credit_cents") > 0)
        .select("model", "channel", "revenue_credit_cents").rows())
    spend = load_spend(FIXTURES / "spend.csv")
    assert spend_by_channel(spend).select("channel", "spend_cents").rows() == SPEND.rows()
    budget = recommend_budget(summary, spend, "linear")
    assert budget["recommended_cents"].sum() == 460000


def test_recommendation_by_hand_with_the_default_shift() -> None:
    budget = recommend_budget(SUMMARY, SPEND, "linear")
    assert budget.schema == BUDGET_SCHEMA
    # target = 460000 x (0.8 x spend share + 0.2 x revenue share)
    # events      460000 x (0.8 x 300/460 + 0.2 x 3000000/6100000) = 240000 + 45245.90 = 285245.90
    # paid_search 460000 x (0.8 x 100/460 + 0.2 x 3050000/6100000) =  80000 + 46000    = 126000
    # paid_social 460000 x (0.8 x  60/460 + 0.2 x   50000/6100000) =  48000 +   754.10 =  48754.10
    # cents: 285245 + 126000 + 48754 = 459999; the last cent to events (.90 vs .10)
    assert column(budget, "recommended_cents") == {
        "events": 285246, "paid_search": 126000, "paid_social": 48754
    }
    assert column(budget, "change_cents") == {
        "events": -14754, "paid_search": 26000, "paid_social": -11246
    }
    # the same decision on last-touch credit: events and paid_social earn nothing
    # events 240000 + 0, paid_search 80000 + 0.2 x 460000 = 172000, paid_social 48000
    assert column(budget, "last_touch_recommended_cents") == {
        "events": 240000, "paid_search": 172000, "paid_social": 48000,
    }
    # deciding on linear instead of last-touch keeps 452.46 more on events
    assert column(budget, "decision_shift_cents") == {
        "events": 45246, "paid_search": -46000, "paid_social": 754
    }
    assert column(budget, "roas") == {
        "events": 10.0, "paid_search": 30.5, "paid_social": 50000 / 60000
    }
    assert budget["channel"].to_list() == ["events", "paid_search", "paid_social"]
    assert (budget["recommended_cents"].sum() == budget["last_touch_recommended_cents"].sum()
            == 460000)


def test_shift_zero_keeps_the_mix_scaled_to_the_total() -> None:
    budget = recommend_budget(SUMMARY, SPEND, "linear", shift=0, total=100000, baseline=None)
    # 100000 x 300/460 = 65217.39, x 100/460 = 21739.13, x 60/460 = 13043.48 -> +1 cent to events
    assert column(budget, "recommended_cents") == {
        "events": 65217, "paid_search": 21739, "paid_social": 13044
    }
    assert budget["last_touch_recommended_cents"].null_count() == 3


def test_floors_and_caps_as_shares_and_amounts() -> None:
    budget = recommend_budget(
        SUMMARY, SPEND, "linear", shift=1, floors={"paid_social": "10%"},
        caps={"paid_search": "500"},
    )
    # shift 1: targets by revenue share; paid_search capped at 500.00, paid_social held at its
    # floor 10% of 4,600.00 = 460.00; events takes the rest: 460000 - 50000 - 46000 = 364000
    assert column(budget, "recommended_cents") == {
        "events": 364000, "paid_search": 50000, "paid_social": 46000
    }
    bounds = {"events": None, "paid_search": "cap", "paid_social": "floor"}  # money: keep name
    assert column(budget, "bound") == bounds
    assert column(budget, "floor_cents") == {"events": None, "paid_search": None,
                                             "paid_social": 46000}
    # last-touch sends everything to paid_search, capped: the other 410000 go by the current
    # mix 300:60 -> events 341666.67, paid_social 68333.33 (above its floor)
    assert column(budget, "last_touch_recommended_cents") == {
        "events": 341667, "paid_search": 50000, "paid_social": 68333,
    }


def test_a_floor_on_a_channel_without_spend_gives_it_exactly_the_floor() -> None:
    summary = pl.concat([SUMMARY, pl.DataFrame({"model": ["linear"], "channel": ["podcast"],
                                                "channel_group": ["demand_creation"],
                                                "revenue_credit_cents": [0]})])
    budget = recommend_budget(summary, SPEND, "linear", floors={"podcast": 20000}, baseline=None)
    assert column(budget, "recommended_cents")["podcast"] == 20000
    # the default total is the current spend: the floor comes out of the paid channels
    assert budget["recommended_cents"].sum() == 460000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"floors": {"paid_socal": 1}},
         r"floor for unknown channel 'paid_socal' \(did you mean 'paid_social'\?\)"),
        ({"floors": {"events": "5000", "paid_search": "5000"}},
         r"the floors add up to 10,000.00, more than the total 4,600.00"),
        ({"floors": {"events": "60%"}, "caps": {"events": "50%"}},
         r"the floor of 'events' \(2,760.00\) is above its cap \(2,300.00\)"),
        ({"caps": {"events": 1, "paid_search": 1, "paid_social": 1}},
         r"the caps allow at most 0.03 of the total 4,600.00"),
        ({"shift": 1.5}, "shift must be between 0 and 1, not 1.5"),
        ({"floors": {"events": "lots"}}, r"'lots' is not an amount or a share"),
    ],
)
def test_impossible_bounds_are_refused(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        recommend_budget(SUMMARY, SPEND, "linear", **options)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ModelError, match="model 'markov' is not in the run"):
        recommend_budget(SUMMARY, SPEND, "markov")
    with pytest.raises(ModelError, match="add --model last_touch"):
        recommend_budget(SUMMARY.filter(pl.col("model") == "linear"), SPEND, "linear")


def test_parse_bound() -> None:
    assert parse_bound("10%") == Share(0.1)
    assert parse_bound(" $5,000.50 ") == 500050
    assert parse_bound(42) == 42
    assert parse_bound_option("Podcast=12.5%") == ("podcast", Share(0.125))
    with pytest.raises(ConfigError, match="expected CHANNEL=AMOUNT"):
        parse_bound_option("podcast", "--cap")
    with pytest.raises(ConfigError, match="between 0% and 100%"):
        parse_bound("120%")
    with pytest.raises(ConfigError, match="cannot be negative"):
        parse_bound("-3")


@st.composite
def budgets(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    names = [f"c{i}" for i in range(n)]
    spend = [draw(st.integers(min_value=1, max_value=10**9)) for _ in names]
    revenue = [draw(st.integers(min_value=0, max_value=10**10)) for _ in names]
    total = draw(st.integers(min_value=0, max_value=10**10))
    floors, caps = {}, {}
    for name in names:
        kind = draw(st.sampled_from(["none", "floor", "cap", "both"]))  # money: keep name
        low = draw(st.integers(min_value=0, max_value=max(total // n, 0)))
        share = draw(st.integers(min_value=0, max_value=100))
        if kind in ("floor", "both"):  # money: keep name
            floors[name] = low if draw(st.booleans()) else Share(share / 100 / n)
        if kind in ("cap", "both"):  # money: keep name
            caps[name] = low + draw(st.integers(min_value=0, max_value=10**9))
    shift = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    return names, spend, revenue, total, floors, caps, shift


@settings(max_examples=300, deadline=None)
@given(budgets())
def test_total_is_kept_to_the_cent_and_bounds_hold(case) -> None:
    names, spend, revenue, total, floors, caps, shift = case
    summary = pl.DataFrame({"model": ["m"] * len(names), "channel": names,
                            "channel_group": ["g"] * len(names), "revenue_credit_cents": revenue})
    spend_frame = pl.DataFrame({"channel": names, "spend_cents": spend})
    try:
        budget = recommend_budget(summary, spend_frame, "m", total=total, shift=shift,
                                  floors=floors, caps=caps, baseline=None)
    except ConfigError as exc:
        # only infeasible bounds may be refused
        assert (
            "floors add up" in str(exc) or "caps allow" in str(exc) or "above its cap" in str(exc)
        )
        return
    assert budget["recommended_cents"].sum() == total
    for row in budget.iter_rows(named=True):
        assert row["recommended_cents"] >= 0
        if row["floor_cents"] is not None:
            assert row["recommended_cents"] >= row["floor_cents"]
        if row["cap_cents"] is not None:
            assert row["recommended_cents"] <= row["cap_cents"]
    again = recommend_budget(summary.reverse(), spend_frame.reverse(), "m", total=total,
                             shift=shift, floors=floors, caps=caps, baseline=None)
    assert again.equals(budget)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fractions(min_value=0, max_value=10**6), min_size=1, max_size=8))
def test_largest_remainder_keeps_the_total(parts) -> None:
    scale = Fraction(1000) / (sum(parts) or 1)
    amounts = {f"c{i}": p * scale for i, p in enumerate(parts)}
    if sum(parts) == 0:
        amounts = {name: Fraction(1000, len(parts)) for name in amounts}
    cents = largest_remainder(amounts, 1000)
    assert sum(cents.values()) == 1000
    assert all(abs(cents[n] - amounts[n]) < 1 for n in amounts)


def test_what_if_inside_above_and_below_the_band() -> None:
    plan = {"events": 500000, "paid_search": 120000, "paid_social": 20000}
    result = what_if(plan, SUMMARY, SPEND, "linear")
    assert result.schema == WHAT_IF_SCHEMA
    rows = {r["channel"]: r for r in result.iter_rows(named=True)}
    # events: r = 10; band 150000..450000; 500000 is above: counted 450000 -> 4,500,000.00...
    # in cents
    assert (
        rows["events"]["counted_spend_cents"], rows["events"]["expected_revenue_cents"]
    ) == (450000, 4500000)
    assert (rows["events"]["in_band"], rows["events"]["note"]) == (False, "above band: capped")
    # paid_search: r = 30.5, 120000 in band -> 3,660,000
    assert (
        rows["paid_search"]["expected_revenue_cents"], rows["paid_search"]["in_band"]
    ) == (3660000, True)
    # paid_social: r = 5/6, band 30000..90000; 20000 below: proportional 20000 x 5/6 = 16666.67
    assert rows["paid_social"]["expected_revenue_cents"] == 16667
    assert rows["paid_social"]["revenue_change_cents"] == 16667 - 50000
    flat = what_if(plan, SUMMARY, SPEND, "linear", below_band="flat")
    # flat below the band: revenue held at 30000 x 5/6 = 25000
    assert column(flat, "expected_revenue_cents")["paid_social"] == 25000
    narrow = what_if(plan, SUMMARY, SPEND, "linear", band=0.1)
    # +-10%: paid_search counted up to 110000 -> 3,355,000
    assert column(narrow, "expected_revenue_cents")["paid_search"] == 3355000


def test_what_if_keeps_left_out_channels_and_accepts_a_recommendation() -> None:
    result = what_if({"events": 300000}, SUMMARY, SPEND, "linear")
    assert column(result, "expected_revenue_cents") == {
        "events": 3000000, "paid_search": 3050000, "paid_social": 50000
    }
    assert column(result, "note")["paid_search"] == "unchanged"
    budget = recommend_budget(SUMMARY, SPEND, "linear")
    from_budget = what_if(budget, SUMMARY, SPEND, "linear")
    # 285246 x 10 = 2852460; 126000 x 30.5 = 3843000; 48754 x 5/6 = 40628.33
    assert column(from_budget, "expected_revenue_cents") == {
        "events": 2852460, "paid_search": 3843000, "paid_social": 40628,
    }
    new = what_if({"podcast": 10000}, SUMMARY, SPEND, "linear")
    assert column(new, "note")["podcast"] == "no current spend"
    with pytest.raises(ConfigError, match="below_band must be"):
        what_if({}, SUMMARY, SPEND, "linear", below_band="linear")


def test_read_budget(tmp_path: Path) -> None:
    path = tmp_path / "budget.csv"
    path.write_text("channel,amount\nEvents,4500\npaid_search,\"1,200.50\"\nevents,500\n")
    assert read_budget(path).rows() == [("events", 500000), ("paid_search", 120050)]
    path.write_text("channel,amount\nevents,lots\n")
    with pytest.raises(
        InputError, match=r"budget.csv: row 1, column 'amount': not a number \(value 'lots'\)"
    ):
        read_budget(path)


# -- the evidence check: money moves only where the data supports a move -----------------------
def test_without_evidence_for_any_channel_nothing_moves_and_the_model_alone_is_kept() -> None:
    from attribution.budget import headline, notes, verdict

    plain = recommend_budget(SUMMARY, SPEND, "linear")
    evidence = {"events": "too few deals to tell: 1 won deal touched it (fewer than 30)",
                "paid_search": "too few deals to tell: 2 won deals touched it (fewer than 30)"}
    budget = recommend_budget(SUMMARY, SPEND, "linear", evidence=evidence)
    assert budget.schema == BUDGET_SCHEMA
    # every channel keeps its spend (paid_social, absent from the evidence, had no won deal)
    assert column(budget, "recommended_cents") == column(budget, "current_spend_cents")
    assert column(budget, "last_touch_recommended_cents") == column(budget, "current_spend_cents")
    assert set(budget["bound"]) == {"held"} and set(budget["supported"]) == {False}
    assert column(budget, "evidence")["paid_social"] == (
        "too few deals to tell: no won deal touched it")
    # what linear alone would do: the plain recommendation, to the cent
    assert column(budget, "unchecked_recommended_cents") == column(plain, "recommended_cents")
    assert column(budget, "unchecked_change_cents") == column(plain, "change_cents")
    found = verdict(budget)
    assert found.checked and not found.supported
    assert found.reason == "every paid channel has too few deals to tell"
    assert headline(budget) == ("No budget move is supported by the data: every paid channel "
                                "has too few deals to tell")
    lines = notes(budget, min_deals=30)
    assert lines[0].startswith("no move is supported by the data")
    assert lines[1] == ("left to its credit alone, linear would move $260 of spend, most into "
                        "paid_search (+$260), most out of events (-$148): not supported by the "
                        "data")
    assert "at least 30 won deals touched it" in lines[2]
    # unchecked, as before: nothing is said about support
    assert verdict(plain).checked is False and set(plain["supported"].to_list()) == {None}
    assert headline(plain).startswith("Move $260 of spend: most into paid_search")


def test_only_supported_channels_move_and_one_alone_cannot() -> None:
    from attribution.budget import headline, verdict

    two = recommend_budget(SUMMARY, SPEND, "linear", shift=0.5,
                           evidence={"events": None, "paid_search": None})
    rows = {r["channel"]: r for r in two.iter_rows(named=True)}
    assert rows["paid_social"]["bound"] == "held" and not rows["paid_social"]["supported"]
    assert rows["paid_social"]["recommended_cents"] == 60000
    assert rows["events"]["recommended_cents"] + rows["paid_search"]["recommended_cents"] == 400000
    assert rows["paid_search"]["change_cents"] > 0 > rows["events"]["change_cents"]
    assert verdict(two).supported and verdict(two).held == ("paid_social",)
    assert headline(two).startswith("Move $")
    assert "between the 2 channels the data supports" in headline(two)
    one = recommend_budget(SUMMARY, SPEND, "linear", evidence={"events": None})
    assert column(one, "change_cents") == {"events": 0, "paid_search": 0, "paid_social": 0}
    assert verdict(one).reason == ("only events has the evidence to move its budget, and money "
                                   "moves between two channels or more")


def test_held_channels_keep_the_total_and_leave_room_for_a_floor() -> None:
    # every channel held with a total that is not the current spend: the current mix of it,
    # to the cent (no channel is left a bound it cannot meet)
    budget = recommend_budget(SUMMARY, SPEND, "linear", total=100001, evidence={})
    assert budget["recommended_cents"].sum() == 100001
    assert column(budget, "recommended_cents") == column(
        recommend_budget(SUMMARY, SPEND, "linear", total=100001, shift=0), "recommended_cents")
    # a floor on a new channel with every paid channel held: the held ones share what it leaves
    summary = pl.concat([SUMMARY, pl.DataFrame({
        "model": ["linear"], "channel": ["podcast"], "channel_group": ["demand_creation"],
        "revenue_credit_cents": [0]})])
    budget = recommend_budget(summary, SPEND, "linear", floors={"podcast": "50%"}, evidence={},
                              baseline=None)
    rows = column(budget, "recommended_cents")
    assert rows["podcast"] >= 230000 and sum(rows.values()) == 460000
    assert rows["events"] * 100 == pytest.approx(rows["paid_search"] * 300, abs=300)


def test_move_evidence_is_the_sufficiency_rule_and_with_intervals_the_overlap() -> None:
    from attribution.budget import move_evidence

    marked = pl.DataFrame({
        "model": ["m", "m", "m", "m", "last_touch", "last_touch", "last_touch", "last_touch"],
        "channel": ["a", "b", "c", "d"] * 2,
        "revenue_credit_cents": [600, 300, 100, 0, 400, 600, 0, 0],
        "revenue_share": [0.6, 0.3, 0.1, 0.0, 0.4, 0.6, 0.0, 0.0],
        "revenue_share_low": [0.5, 0.1, 0.0, 0.0, 0.3, 0.5, 0.0, 0.0],
        "revenue_share_high": [0.7, 0.5, 0.3, 0.0, 0.5, 0.7, 0.0, 0.0],
        "won_deals_touched": [40, 35, 31, 2, 40, 35, 31, 2],
        "sufficient": [True, True, True, False, True, True, True, False],
    })
    assert move_evidence(marked, "m", min_deals=30) == {
        "a": None, "b": None,
        "c": "its interval of m's share holds last-touch's share",
        "d": "too few deals to tell: 2 won deals touched it (fewer than 30)",
    }
    wide = marked.with_columns(pl.lit(False).alias("sufficient"))
    assert move_evidence(wide, "m", min_deals=30)["a"] == (
        "too few deals to tell: its interval is wider than its credit")
    with pytest.raises(ConfigError, match="sufficiency"):
        move_evidence(marked.drop("sufficient"), "m")
