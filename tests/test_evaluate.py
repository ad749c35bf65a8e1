"""The evaluation: exact truths of simulated worlds, share errors, and evaluate() itself."""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from attribution.evaluate import (
    ADVERSARIAL,
    DARK_FUNNEL_WORLDS,
    ERROR_SCHEMA,
    SHARE_SCHEMA,
    SUMMARY_SCHEMA,
    TRUTH_SCHEMA,
    evaluate,
    evaluation_worlds,
    score_shares,
    share_errors,
    summarise_errors,
    world_truth,
)
from attribution.simulate import (
    CHANNELS,
    SCENARIOS,
    draw,
    random_world,
    realise,
    scenario,
    shapley_truth,
    simulate,
)
from tests.factories import hand_world

_hand_world = hand_world


# -- the truth of a tiny world, by hand ------------------------------------------------------


def test_truth_of_a_hand_world():
    export = simulate(40, seed=1, world=_hand_world())
    # 30 of the 40 deals close inside the window, all won (10 are still open)
    assert export.deals["status"].value_counts().sort("status").rows() == [
        ("open", 10), ("won", 30)]
    # Per account, with P = podcast, S = paid search, D = direct (in USD):
    #   v(PSD) = 20,000 (won, doubled); v(PS) = 10,000; every other coalition is 0
    #   (without P there is no S, without S no win).
    # Over the 6 join orders, the marginal contributions are
    #   P: 0, 0, 10,000 (SPD), 20,000 (SDP), 0, 20,000 (DSP)  -> 50,000 / 6 = 8,333.33
    #   S: 10,000 (PSD), 20,000 (PDS), 0, 0, 20,000 (DPS), 0  -> 50,000 / 6 = 8,333.33
    #   D: 10,000 (PSD), 0, 10,000 (SPD), 0, 0, 0             -> 20,000 / 6 = 3,333.33
    # summing to v(PSD) - v({}) = 20,000. Thirty accounts, in cents: 30 x 833,333.33 =
    # 25,000,000 for P and S, 30 x 333,333.33 = 10,000,000 for D; shares 5/12, 5/12, 1/6.
    # Removal: without P or S every deal is lost (30 x 2,000,000 = 60,000,000 cents);
    # without D every deal halves (30,000,000); shares 0.4, 0.4, 0.2.
    truth = world_truth(export)
    expected = pl.DataFrame(
        {
            "world": ["hand"] * 3,
            "channel": ["podcast", "paid_search", "direct"],
            "channel_group": ["demand_creation", "demand_capture", "demand_capture"],
            "revenue_removed_cents": [60_000_000, 60_000_000, 30_000_000],
            "removal_share": [0.4, 0.4, 0.2],
            "shapley_revenue_cents": [25_000_000.0, 25_000_000.0, 10_000_000.0],
            "shapley_share": [5 / 12, 5 / 12, 1 / 6],
        },
        schema=TRUTH_SCHEMA,
    )
    assert_frame_equal(truth, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-6)


def test_truth_with_a_channel_that_loses_money():
    # direct now *halves* the amount (10,000 -> 5,000 USD): v(PSD) = 5,000, v(PS) = 10,000.
    #   P: 0, 0, 10,000, 5,000, 0, 5,000 -> 20,000 / 6 = 3,333.33; S likewise;
    #   D: -5,000 in the two orders where it joins P and S last -> -10,000 / 6 = -1,666.67
    # Thirty won deals: 10,000,000, 10,000,000 and -5,000,000 cents. Shares are over the sum
    # of absolute values (25,000,000): 0.4, 0.4, -0.2.
    # Removal: P or S loses 30 x 500,000 = 15,000,000; removing D *gains* 15,000,000;
    # shares over 45,000,000: 1/3, 1/3, -1/3.
    export = simulate(40, seed=1, world=_hand_world(size_effect={"direct": math.log(0.5)}))
    truth = world_truth(export)
    assert truth["revenue_removed_cents"].to_list() == [15_000_000, 15_000_000, -15_000_000]
    assert truth["shapley_revenue_cents"].to_list() == pytest.approx([1e7, 1e7, -5e6], abs=1e-6)
    assert truth["shapley_share"].to_list() == pytest.approx([0.4, 0.4, -0.2], abs=1e-12)
    assert truth["removal_share"].to_list() == pytest.approx([1 / 3, 1 / 3, -1 / 3], abs=1e-12)


# -- the Shapley truth is exact: brute force over every coalition ---------------------------


def _brute_force_shapley(export) -> dict[str, Fraction]:
    """Shapley values from v on all 2^n coalitions (one realise() each), in exact fractions."""
    players = list(export.world.channels)
    n = len(players)
    worth = {}
    for size in range(n + 1):
        for coalition in itertools.combinations(players, size):
            off = tuple(c for c in players if c not in coalition)
            worth[frozenset(coalition)] = export.outcomes(off).revenue_cents
    values = {}
    for player in players:
        others = [c for c in players if c != player]
        total = Fraction(0)
        for size in range(n):
            weight = Fraction(math.factorial(size) * math.factorial(n - size - 1),
                              math.factorial(n))
            for coalition in itertools.combinations(others, size):
                before = frozenset(coalition)
                total += weight * (worth[before | {player}] - worth[before])
        values[player] = total
    return values


@pytest.mark.parametrize(
    "world",
    [scenario("brand_drives_search"), scenario("last_touch_world"), random_world(5)],
    ids=lambda w: w.name,
)
def test_shapley_truth_equals_brute_force_enumeration(world):
    export = simulate(150, seed=3, world=world)
    brute = _brute_force_shapley(export)
    fast = dict(shapley_truth(export).select("channel", "shapley_revenue_cents").iter_rows())
    assert set(fast) == set(brute)
    for channel, value in brute.items():
        assert fast[channel] == pytest.approx(float(value), abs=1e-6), channel
    assert sum(brute.values()) != 0


def test_shapley_truth_is_efficient_and_deterministic_with_every_channel():
    # 14 channels: the values add up to v(all) - v(none), to floating-point precision
    export = simulate(800, seed=4, world=scenario("baseline"))
    truth = shapley_truth(export)
    assert truth.height == len(CHANNELS)
    marketing = export.outcomes().revenue_cents - export.outcomes(CHANNELS).revenue_cents
    assert truth["shapley_revenue_cents"].sum() == pytest.approx(marketing, abs=1e-3)
    assert_frame_equal(truth, shapley_truth(simulate(800, seed=4, world=scenario("baseline"))))


def test_shapley_truth_skips_channels_already_removed():
    export = simulate(150, seed=3, world=scenario("brand_drives_search"), removed=("podcast",))
    brute_players = [c for c in export.world.channels if c != "podcast"]
    truth = shapley_truth(export)
    assert truth["channel"].to_list() == brute_players
    # efficiency in the counterfactual world
    marketing = export.outcomes().revenue_cents - export.outcomes(brute_players).revenue_cents
    assert truth["shapley_revenue_cents"].sum() == pytest.approx(marketing, abs=1e-6)


def test_present_mask_and_take_play_accounts_in_counterfactual_worlds():
    world, draws = scenario("brand_drives_search"), draw(300, seed=6)
    everyone = np.ones((len(CHANNELS), 300), dtype=bool)
    factual = realise(world, draws)
    assert np.array_equal(realise(world, draws, present=everyone).exposed, factual.exposed)
    # the same accounts twice: once with podcast switched off, once as they were
    twice = draws.take(np.concatenate([np.arange(300), np.arange(300)]))
    present = np.ones((len(CHANNELS), 600), dtype=bool)
    present[CHANNELS.index("podcast"), :300] = False
    both = realise(world, twice, present=present)
    without = realise(world, draws, ("podcast",))
    assert np.array_equal(both.exposed[:, :300], without.exposed)
    assert np.array_equal(both.exposed[:, 300:], factual.exposed)
    assert np.array_equal(both.won[:300], without.won)
    with pytest.raises(ValueError, match=r"present must have shape \(14, 300\), not \(14, 2\)"):
        realise(world, draws, present=np.ones((14, 2), dtype=bool))


# -- scoring, by hand ---------------------------------------------------------------------------


def _hand_truth() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "world": ["hand"] * 3,
            "channel": ["podcast", "paid_search", "direct"],
            "channel_group": ["demand_creation", "demand_capture", "demand_capture"],
            "revenue_removed_cents": [60, 60, 30],
            "removal_share": [0.4, 0.4, 0.2],
            "shapley_revenue_cents": [25.0, 25.0, 10.0],
            "shapley_share": [5 / 12, 5 / 12, 1 / 6],
        },
        schema=TRUTH_SCHEMA,
    )


def test_scores_by_hand():
    credit = pl.DataFrame(
        {
            "model": ["last_touch"] * 4 + ["linear"] * 3,
            "channel": ["direct", "paid_search", "organic_search", "(no touch)"]
            + ["podcast", "paid_search", "direct"],
            "revenue_credit_cents": [50, 30, 20, 1_000, 40, 40, 20],
        }
    )
    shares = score_shares(_hand_truth(), credit, "scenario")
    assert shares.schema == SHARE_SCHEMA
    # (no touch) is never scored; organic_search (credited, truth 0) is
    last = shares.filter(pl.col("model") == "last_touch")
    assert last["channel"].to_list() == ["podcast", "paid_search", "direct", "organic_search"]
    assert last["share"].to_list() == pytest.approx([0.0, 0.3, 0.5, 0.2])
    assert last["shapley_share"].to_list() == pytest.approx([5 / 12, 5 / 12, 1 / 6, 0.0])
    errors = share_errors(shares)
    assert errors.schema == ERROR_SCHEMA
    rows = {r["model"]: r for r in errors.iter_rows(named=True)}
    # last-touch: |0 - 5/12| + |0.3 - 5/12| + |0.5 - 1/6| + |0.2 - 0| = 5/12 + 7/60 + 1/3 + 1/5
    #   = 16/15 over 4 channels: mae 4/15; misallocated 8/15; demand creation (podcast) 5/12
    #   removal: |0 - 0.4| + |0.3 - 0.4| + |0.5 - 0.2| + 0.2 = 1.0 -> 0.25
    assert rows["last_touch"]["mae"] == pytest.approx(4 / 15)
    assert rows["last_touch"]["misallocated"] == pytest.approx(8 / 15)
    assert rows["last_touch"]["mae_demand_creation"] == pytest.approx(5 / 12)
    assert rows["last_touch"]["mae_removal"] == pytest.approx(0.25)
    # linear: 0.4, 0.4, 0.2, 0 -> 1/60 + 1/60 + 1/30 + 0 = 1/15 over 4: mae 1/60
    assert rows["linear"]["mae"] == pytest.approx(1 / 60)
    assert rows["linear"]["last_touch_mae"] == pytest.approx(4 / 15)
    assert rows["linear"]["beats_last_touch"] is True
    assert rows["last_touch"]["beats_last_touch"] is False
    summary = summarise_errors(errors)
    assert summary.schema == SUMMARY_SCHEMA
    assert summary["model"].to_list() == ["linear", "last_touch"]
    # 1 - (1/60) / (4/15) = 1 - 1/16
    assert summary["improvement"].to_list() == pytest.approx([15 / 16, 0.0])
    assert summary["beats_last_touch"].to_list() == [1, 0]


def test_a_model_crediting_nothing_scores_zero_shares():
    credit = pl.DataFrame(
        {"model": ["last_touch"], "channel": ["(no touch)"], "revenue_credit_cents": [9]})
    shares = score_shares(_hand_truth(), credit, "scenario")
    assert shares["share"].to_list() == [0.0, 0.0, 0.0]


# -- evaluate() ---------------------------------------------------------------------------------


def test_default_worlds_are_the_scenarios_the_adversaries_and_random_worlds():
    names = [w.name for w in evaluation_worlds(3, seed=10)]
    assert names == [*SCENARIOS, *ADVERSARIAL, *DARK_FUNNEL_WORLDS, "random_10", "random_11",
                     "random_12"]


def test_evaluate_is_deterministic_on_a_small_set():
    worlds = [scenario("brand_drives_search"), random_world(3)]
    models = ["last_touch", "linear", "markov", "incremental"]
    first = evaluate(worlds, n_accounts=500, seed=2, models=models)
    second = evaluate(worlds, n_accounts=500, seed=2, models=models)
    for name in ("truth", "shares", "errors"):
        assert_frame_equal(getattr(first, name), getattr(second, name))
    assert_frame_equal(first.worlds.drop("seconds"), second.worlds.drop("seconds"))
    assert first.errors.select("world", "model").rows() == [
        (w.name, m) for w in worlds for m in models
    ]
    assert first.worlds["seed"].to_list() == [2, 3]
    # each world's model shares sum to 1 over the scored channels
    sums = first.shares.group_by("world", "model").agg(pl.col("share").sum())
    assert sums["share"].to_list() == pytest.approx([1.0] * sums.height)
    # the truth frame is the world's own truth
    export = simulate(500, seed=2, world=worlds[0])
    assert_frame_equal(first.truth.filter(pl.col("world") == worlds[0].name), world_truth(export))


def test_evaluate_adds_last_touch_and_labels_variants():
    result = evaluate(
        [scenario("last_touch_world")],
        n_accounts=300,
        models=["markov", dataclasses.replace(_markov(), weight_by="revenue")],
    )
    assert result.errors["model"].to_list() == [
        "last_touch", "markov", "markov(weight_by=revenue)"
    ]  # fmt: skip
    assert result.summary().filter(pl.col("model") == "last_touch")["improvement"].item() == 0.0


def _markov():
    from attribution.models import get_model

    return get_model("markov")


def test_the_incremental_model_beats_last_touch_where_brand_drives_search():
    # the motivating case: brand channels cause later paid clicks
    result = evaluate(
        [scenario("brand_drives_search")], n_accounts=3000, models=["last_touch", "incremental"]
    )
    errors = dict(result.errors.select("model", "mae_demand_creation").iter_rows())
    assert errors["incremental"] < errors["last_touch"] / 2
