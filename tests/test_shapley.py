"""Tests of the Shapley models: hand-worked games, brute force, the weight contract."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.credit import allocate
from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys
from attribution.models import get_model
from attribution.models.shapley import ShapleyModel
from attribution.schema import WEIGHT_SCHEMA
from tests.test_models_contract import _journeys, deal_rows, touch_rows

VARIANTS = ("simplified", "rate", "ordered")


def make_journeys(paths: dict[str, tuple[str, list[str]]], amounts: dict[str, int] | None = None):
    """``{journey_id: (status, [channel, ...])}`` -> Journeys (amount = revenue of won deals)."""
    amounts = amounts or {}
    touches = pl.DataFrame(
        [
            {"journey_id": jid, "touch_index": i, "channel": channel}
            for jid, (_, path) in paths.items()
            for i, channel in enumerate(path)
        ],
        schema={"journey_id": pl.String, "touch_index": pl.UInt32, "channel": pl.String},
    )
    rows = pl.DataFrame(
        [
            {"journey_id": jid, "status": status, "amount_cents": amounts.get(jid, 0)}
            for jid, (status, _) in paths.items()
        ],
        schema={"journey_id": pl.String, "status": pl.String, "amount_cents": pl.Int64},
    )
    return Journeys.from_frames(touches, rows)


def weights_of(model: ShapleyModel, journeys: Journeys) -> dict[tuple[str, int], float]:
    frame = model.weights(journeys).collect().select(WEIGHT_SCHEMA.names())
    return {(j, i): w for j, i, _, w in frame.iter_rows()}


def values_of(fit) -> dict[str, float]:
    """Channel -> value: conversions, or with value="revenue" minor units (the column then
    says so: ``shapley_value_cents``)."""
    column = "shapley_value_cents" if fit.value == "revenue" else "shapley_value"
    return dict(fit.values().select("channel", column).iter_rows())


# -- hand-worked examples ----------------------------------------------------------------


# Four deals over search (s), email (e) and event (v):
#   d1 won $100: s > e      d2 won $100: e      d3 won $300: s > v > e      d4 lost: s
HAND = {
    "d1": ("won", ["search", "email"]),
    "d2": ("won", ["email"]),
    "d3": ("won", ["search", "event", "email"]),
    "d4": ("lost", ["search"]),
}
HAND_AMOUNTS = {"d1": 10_000, "d2": 10_000, "d3": 30_000}


def test_simplified_by_hand():
    # v(S) = won deals whose channel set lies in S. Even split of each won deal over its
    # distinct channels: d1 gives s, e 1/2 each; d2 gives e 1; d3 gives s, v, e 1/3 each.
    #   search = 1/2 + 1/3 = 5/6    email = 1/2 + 1 + 1/3 = 11/6    event = 1/3    (sum 3 = wins)
    fit = ShapleyModel(variant="simplified").fit(make_journeys(HAND, HAND_AMOUNTS))
    assert values_of(fit) == pytest.approx({"email": 11 / 6, "event": 1 / 3, "search": 5 / 6})
    assert fit.total == 3
    assert (fit.method, fit.channel_sets) == ("closed_form", 4)
    # revenue: d1 $100 -> s, e $50; d2 $100 -> e; d3 $300 -> s, v, e $100 each, in cents
    # (the minor units the run holds; the files give major units): search = 50 + 100 = 150
    # email = 50 + 100 + 100 = 250   event = 100 (dollars)
    revenue = ShapleyModel(variant="simplified", value="revenue").fit(
        make_journeys(HAND, HAND_AMOUNTS)
    )
    assert values_of(revenue) == {"email": 25_000.0, "event": 10_000.0, "search": 15_000.0}
    assert revenue.values().columns == ["channel", "shapley_value_cents", "share",
                                        "standard_error_cents"]
    assert revenue.total == 50_000.0
    assert revenue.values()["share"].to_list() == pytest.approx([0.5, 0.2, 0.3])
    # weights: the even split; the lost deal d4 (one channel) gets 100% on its one touch
    assert weights_of(ShapleyModel(), make_journeys(HAND)) == pytest.approx(
        {
            ("d1", 0): 1 / 2, ("d1", 1): 1 / 2,
            ("d2", 0): 1.0,
            ("d3", 0): 1 / 3, ("d3", 1): 1 / 3, ("d3", 2): 1 / 3,
            ("d4", 0): 1.0,
        }
    )  # fmt: skip


# Conversion-rate game on search (s) and email (e):
#   {s} alone: 1 won of 4      {e} alone: 1 won of 2      {s, e}: 1 won of 1 (touches s > e > s)
RATE = {
    "s1": ("won", ["search"]), "s2": ("lost", ["search"]),
    "s3": ("lost", ["search"]), "s4": ("none", ["search"]),
    "e1": ("won", ["email"]), "e2": ("lost", ["email"]),
    "b1": ("won", ["search", "email", "search"]),
}  # fmt: skip


def test_rate_by_hand_differs_from_linear():
    # v({}) = 0   v({s}) = 1/4   v({e}) = 1/2   v({s, e}) = 3 wins / 7 journeys = 3/7
    # phi_s = 1/2 [(v(s) - v({})) + (v(se) - v(e))] = 1/2 [1/4 + (3/7 - 1/2)] = 5/56
    # phi_e = 1/2 [(v(e) - v({})) + (v(se) - v(s))] = 1/2 [1/2 + (3/7 - 1/4)] = 19/56
    # efficiency: 5/56 + 19/56 = 24/56 = 3/7 = v({s, e})
    # b1 splits 5 : 19 over (s, e): search 5/24 over its two touches (5/48 each), email 19/24.
    # Linear would give each touch 1/3 (even by touch) and the simplified model 1/2 per
    # channel: email converts at twice search's rate, so it earns more here.
    journeys = make_journeys(RATE)
    fit = ShapleyModel(variant="rate").fit(journeys)
    assert fit.method == "exact"
    assert fit.total == pytest.approx(3 / 7)
    assert values_of(fit) == pytest.approx({"email": 19 / 56, "search": 5 / 56})
    assert fit.values()["share"].to_list() == pytest.approx([19 / 24, 5 / 24])
    weights = weights_of(ShapleyModel(variant="rate"), journeys)
    assert [weights[("b1", i)] for i in range(3)] == pytest.approx([5 / 48, 19 / 24, 5 / 48])
    linear = get_model("linear").weights(journeys).collect().filter(pl.col("journey_id") == "b1")
    assert linear["weight"].to_list() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert weights_of(ShapleyModel(variant="simplified"), journeys)[("b1", 1)] == 0.5


def test_rate_negative_value_gets_no_credit():
    # sets: {s, e}: 1 won of 1 (d1)    {s}: 0 won of 2 (d2, d4)    {e}: 1 won of 2 (d3, d5)
    #   v(s) = 0   v(e) = 1/2   v(se) = 2/5
    #   phi_s = 1/2 [0 + (2/5 - 1/2)] = -1/20      phi_e = 1/2 [1/2 + 2/5] = 9/20
    # search's value is negative (its journeys convert worse): inside d1 it scores
    # max(-1/20, 0) = 0, so email takes 100%; the signed value stays in values().
    journeys = make_journeys(
        {
            "d1": ("won", ["search", "email", "search"]),
            "d2": ("lost", ["search"]),
            "d3": ("won", ["email"]),
            "d4": ("lost", ["search"]),
            "d5": ("lost", ["email"]),
        }
    )
    fit = ShapleyModel(variant="rate").fit(journeys)
    assert values_of(fit) == pytest.approx({"email": 9 / 20, "search": -1 / 20})
    assert fit.values()["share"].to_list() == pytest.approx([9 / 8, -1 / 8])
    weights = weights_of(ShapleyModel(variant="rate"), journeys)
    assert [weights[("d1", i)] for i in range(3)] == [0.0, 1.0, 0.0]
    # an open deal touched only by search: its one channel scores 0 -> even split, 100%
    journeys_with_open = make_journeys(
        {"d1": ("won", ["search", "email"]), "d2": ("lost", ["search"]),
         "d3": ("won", ["email"]), "d4": ("lost", ["search"]), "d5": ("lost", ["email"]),
         "o1": ("open", ["search", "search"])}
    )  # fmt: skip
    weights = weights_of(ShapleyModel(variant="rate"), journeys_with_open)
    assert (weights[("o1", 0)], weights[("o1", 1)]) == (0.5, 0.5)


def test_rate_revenue_per_journey_by_hand():
    # value="revenue": v(S) = revenue / journeys of the sets inside S
    #   {s}: $400 over 2 journeys   {e}: $0 over 1   {s, e}: $200 over 1
    #   v(s) = $200   v(e) = 0   v(se) = $600 / 4 = $150 (held in cents)
    #   phi_s = 1/2 [200 + (150 - 0)] = 175   phi_e = 1/2 [0 + (150 - 200)] = -25
    journeys = make_journeys(
        {"a": ("won", ["search"]), "b": ("lost", ["search"]), "c": ("lost", ["email"]),
         "d": ("won", ["email", "search"])},
        {"a": 40_000, "d": 20_000},
    )  # fmt: skip
    fit = ShapleyModel(variant="rate", value="revenue").fit(journeys)
    assert fit.total == pytest.approx(15_000)
    assert values_of(fit) == pytest.approx({"email": -2_500.0, "search": 17_500.0})


# Ordered (Zhao et al. 2018): the even split, counted at each channel's first position.
#   d1 won: s > e      d2 won: e > s      d3 won: s > e > v      d4 won: s      o1 open: v > s
ORDERED = {
    "d1": ("won", ["search", "email"]),
    "d2": ("won", ["email", "search", "email"]),
    "d3": ("won", ["search", "email", "event"]),
    "d4": ("won", ["search"]),
    "o1": ("open", ["event", "search"]),
}


def test_ordered_by_hand():
    # position values phi_c^p (p = order of first appearance):
    #   search@1 = d1 1/2 + d3 1/3 + d4 1 = 11/6     search@2 = d2 1/2
    #   email@1  = d2 1/2                            email@2  = d1 1/2 + d3 1/3 = 5/6
    #   event@3  = d3 1/3
    # channel totals = simplified values: search 7/3, email 4/3, event 1/3 (sum 4 = wins)
    fit = ShapleyModel(variant="ordered").fit(make_journeys(ORDERED))
    assert values_of(fit) == pytest.approx({"email": 4 / 3, "event": 1 / 3, "search": 7 / 3})
    positions = {(c, p): v for c, p, v, _ in fit.position_values().iter_rows()}
    assert positions == pytest.approx(
        {("email", 1): 1 / 2, ("email", 2): 5 / 6, ("event", 3): 1 / 3,
         ("search", 1): 11 / 6, ("search", 2): 1 / 2}
    )  # fmt: skip
    assert fit.position_values()["share"].sum() == pytest.approx(1.0)
    # weights: d1 = s@1 : e@2 = 11/6 : 5/6 -> 11/16, 5/16
    #          d2 = e@1 : s@2 = 1/2 : 1/2 -> e's two touches 1/4 each, s 1/2
    #          (same channel set as d1, different order, different split)
    #          d3 = s@1 : e@2 : v@3 = 11/6 : 5/6 : 1/3 = 11 : 5 : 2 -> 11/18, 5/18, 2/18
    #          o1 = v@1 : s@2 = 0 : 1/2 -> search 100% (event never led a won journey)
    weights = weights_of(ShapleyModel(variant="ordered"), make_journeys(ORDERED))
    assert weights == pytest.approx(
        {
            ("d1", 0): 11 / 16, ("d1", 1): 5 / 16,
            ("d2", 0): 1 / 4, ("d2", 1): 1 / 2, ("d2", 2): 1 / 4,
            ("d3", 0): 11 / 18, ("d3", 1): 5 / 18, ("d3", 2): 2 / 18,
            ("d4", 0): 1.0,
            ("o1", 0): 0.0, ("o1", 1): 1.0,
        }
    )  # fmt: skip


def test_position_values_only_for_ordered():
    fit = ShapleyModel(variant="rate").fit(make_journeys(HAND))
    with pytest.raises(ModelError, match="only for the ordered Shapley variant"):
        fit.position_values()


# -- brute force -------------------------------------------------------------------------


def brute_force_shapley(players: list[str], worth) -> dict[str, Fraction]:
    """The textbook formula, in exact fractions, over every coalition."""
    n = len(players)
    values = {}
    for player in players:
        others = [p for p in players if p != player]
        total = Fraction(0)
        for size in range(n):
            weight = Fraction(
                math.factorial(size) * math.factorial(n - size - 1), math.factorial(n)
            )
            for coalition in itertools.combinations(others, size):
                members = frozenset(coalition)
                total += weight * (worth(members | {player}) - worth(members))
        values[player] = total
    return values


def random_paths(rng: random.Random, n_journeys: int, channels: list[str]):
    statuses = ["won", "won", "lost", "none", "open"]
    return {
        f"j{k:03d}": (
            rng.choice(statuses),
            [rng.choice(channels) for _ in range(rng.randint(1, 5))],
        )
        for k in range(n_journeys)
    }


@pytest.mark.parametrize("value", ["conversions", "revenue"])
@pytest.mark.parametrize("seed", range(8))
def test_simplified_equals_even_split_and_brute_force(seed, value):
    rng = random.Random(seed)
    channels = ["direct", "email", "event", "search", "social"][: rng.randint(2, 5)]
    paths = random_paths(rng, 30, channels)
    amounts = {jid: rng.randint(1, 9) * 1000 for jid in paths}
    journeys = make_journeys(paths, amounts)
    worth_of_deal = {jid: 1 if value == "conversions" else amounts[jid] for jid in paths}
    won = [(frozenset(path), worth_of_deal[jid])
           for jid, (status, path) in paths.items() if status == "won"]  # fmt: skip

    def worth(coalition):
        return sum(Fraction(deal) for channel_set, deal in won if channel_set <= coalition)

    present = sorted({c for _, path in paths.values() for c in path})
    brute_force = brute_force_shapley(present, worth)
    even_split = dict.fromkeys(present, Fraction(0))
    for channel_set, deal in won:
        for channel in channel_set:
            even_split[channel] += Fraction(deal, len(channel_set))
    assert brute_force == even_split
    expected = {c: float(v) for c, v in brute_force.items()}
    fit = ShapleyModel(variant="simplified", value=value).fit(journeys)
    assert values_of(fit) == pytest.approx(expected)  # revenue: minor units, as the amounts
    # the won deals' credit per channel, from the weights, gives the values back
    credit = (
        fit.weights(journeys)
        .join(journeys.journeys.select("journey_id", "status", "amount_cents"), on="journey_id")
        .filter(pl.col("status") == "won")
        .group_by("channel")
        .agg((pl.col("weight") * (1 if value == "conversions" else pl.col("amount_cents"))).sum())
        .collect()
    )
    assert dict(credit.iter_rows()) == pytest.approx({c: v for c, v in expected.items() if v})


@pytest.mark.parametrize("seed", range(8))
def test_rate_equals_brute_force(seed):
    rng = random.Random(100 + seed)
    channels = ["direct", "email", "event", "search", "social", "webinar"][: rng.randint(1, 6)]
    paths = random_paths(rng, 40, channels)
    observed = [(frozenset(path), status == "won") for status, path in paths.values()
                if status != "open"]  # fmt: skip

    def worth(coalition):
        inside = [won for channel_set, won in observed if channel_set <= coalition]
        return Fraction(sum(inside), len(inside)) if inside else Fraction(0)

    players = sorted({c for channel_set, _ in observed for c in channel_set})
    expected = {c: float(v) for c, v in brute_force_shapley(players, worth).items()}
    only_open = {c for _, path in paths.values() for c in path} - set(players)
    expected |= {c: 0.0 for c in only_open}
    fit = ShapleyModel(variant="rate").fit(make_journeys(paths))
    assert values_of(fit) == pytest.approx(expected, abs=1e-12)
    assert sum(expected.values()) == pytest.approx(fit.total)


def test_path_rows_count_like_the_journeys_they_stand_for():
    # a path row (search > email, 2 conversions, 3 nulls, $500) == 2 won + 3 lost such deals
    touches = pl.DataFrame(
        {"journey_id": ["p1", "p1", "p2"], "touch_index": [0, 1, 0],
         "channel": ["search", "email", "email"]}
    )  # fmt: skip
    rows = pl.DataFrame(
        {"journey_id": ["p1", "p2"], "status": ["path", "path"], "conversions": [2, 1],
         "nulls": [3, 0], "revenue_cents": [50_000, 7_000]}
    )  # fmt: skip
    from_paths = Journeys.from_frames(touches, rows, has_timestamps=False, has_milestones=False)
    expanded = make_journeys(
        {f"w{k}": ("won", ["search", "email"]) for k in range(2)}
        | {f"l{k}": ("lost", ["search", "email"]) for k in range(3)}
        | {"x": ("won", ["email"])},
        {"w0": 25_000, "w1": 25_000, "x": 7_000},
    )
    for variant in VARIANTS:
        for value in ("conversions", "revenue"):
            model = ShapleyModel(variant=variant, value=value)
            assert_frame_equal(model.fit(from_paths).values(), model.fit(expanded).values())


# -- the weight contract -----------------------------------------------------------------


@st.composite
def journeys_strategy(draw):
    channels = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True))
    n = draw(st.integers(1, 25))
    paths = {
        f"j{k}": (
            draw(st.sampled_from(["won", "lost", "open", "none"])),
            draw(st.lists(st.sampled_from(channels), min_size=0, max_size=6)),
        )
        for k in range(n)
    }
    amounts = {jid: draw(st.integers(0, 10**6)) for jid in paths}
    return paths, amounts


@settings(max_examples=60, deadline=None)
@given(journeys_strategy(), st.sampled_from(VARIANTS), st.sampled_from(["conversions", "revenue"]))
def test_weights_nonnegative_and_sum_to_one(case, variant, value):
    paths, amounts = case
    journeys = make_journeys(paths, amounts)
    frame = ShapleyModel(variant=variant, value=value).weights(journeys).collect()
    assert frame.select(WEIGHT_SCHEMA.names()).schema == WEIGHT_SCHEMA
    assert set(frame.columns[4:]) <= {"touchpoint_id", "timestamp", "channel_group"}
    assert frame["weight"].null_count() == 0
    assert (frame["weight"] >= 0).all()
    # every journey that carries money and has touches; deal-less accounts play, get no rows
    touched = {jid for jid, (status, path) in paths.items() if path and status != "none"}
    sums = dict(frame.group_by("journey_id").agg(pl.col("weight").sum()).iter_rows())
    assert set(sums) == touched
    assert all(abs(total - 1) < 1e-12 for total in sums.values())
    assert frame.height == sum(len(path) for jid, (_, path) in paths.items() if jid in touched)


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_touch_journey_gives_its_channel_everything(variant):
    journeys = make_journeys({"d1": ("won", ["email"]), "d2": ("lost", ["search", "email"])})
    assert weights_of(ShapleyModel(variant=variant), journeys)[("d1", 0)] == 1.0


@pytest.mark.parametrize("variant", VARIANTS)
def test_deterministic_and_row_order_independent(variant):
    rng = random.Random(7)
    paths = random_paths(rng, 200, ["direct", "email", "event", "search", "social", "webinar"])
    amounts = {jid: rng.randint(0, 10**6) for jid in paths}
    journeys = make_journeys(paths, amounts)
    shuffled = Journeys.from_frames(
        journeys.touches.collect().sample(fraction=1.0, shuffle=True, seed=3),
        journeys.journeys.collect().sample(fraction=1.0, shuffle=True, seed=4),
    )
    model = ShapleyModel(variant=variant, value="revenue")
    expected = model.weights(journeys).collect()
    assert_frame_equal(model.weights(journeys).collect(), expected)
    # rows follow the touches' order; their content does not depend on it
    in_order = ["journey_id", "touch_index"]
    assert_frame_equal(model.weights(shuffled).collect().sort(in_order), expected.sort(in_order))
    assert_frame_equal(model.fit(shuffled).values(), model.fit(journeys).values())


def test_journeys_without_touches_and_open_only_channels():
    journeys = make_journeys(
        {"d1": ("won", ["email"]), "d2": ("won", []), "d3": ("lost", []),
         "o1": ("open", ["event", "email"])}
    )  # fmt: skip
    fit = ShapleyModel(variant="rate").fit(journeys)
    # d2, d3 have no channel set: only d1 plays, so v({email}) = 1; event is seen only in an
    # open deal, is no player, and scores 0
    assert values_of(fit) == {"email": 1.0, "event": 0.0}
    weights = weights_of(ShapleyModel(variant="rate"), journeys)
    assert weights == {("d1", 0): 1.0, ("o1", 0): 0.0, ("o1", 1): 1.0}


def test_channel_name_with_the_key_separator_is_refused():
    journeys = make_journeys({"d1": ("won", ["e\x1fmail"])})
    with pytest.raises(ModelError, match="U\\+001F"):
        ShapleyModel().fit(journeys)


def test_no_touches_at_all():
    journeys = make_journeys({"d1": ("won", [])})
    for variant in VARIANTS:
        fit = ShapleyModel(variant=variant).fit(journeys)
        assert fit.values().height == 0
        assert fit.weights(journeys).collect().height == 0


# -- limits and sampling -----------------------------------------------------------------


def wide_journeys(n_channels: int, n_journeys: int = 400, seed: int = 1) -> Journeys:
    rng = random.Random(seed)
    channels = [f"c{k:02d}" for k in range(n_channels)]
    return make_journeys(
        {
            f"j{k}": (rng.choice(["won", "lost", "lost"]), rng.sample(channels, rng.randint(1, 4)))
            for k in range(n_journeys)
        }
    )


def test_rate_beyond_max_channels_is_refused():
    message = (
        r"exact for up to max_channels=4 channels; these journeys have 6 "
        r"\(c00, c01, c02, c03, c04, c05\)\. Pass samples=N for a seeded estimate"
    )
    with pytest.raises(ModelError, match=message):
        ShapleyModel(variant="rate", max_channels=4).fit(wide_journeys(6))
    # the closed-form variants have no such limit
    for variant in ("simplified", "ordered"):
        fit = ShapleyModel(variant=variant, max_channels=4).fit(wide_journeys(6))
        assert fit.values().height == 6


def test_rate_sampling_is_seeded_and_close_to_exact():
    journeys = wide_journeys(6)
    exact = ShapleyModel(variant="rate").fit(journeys)
    sampled = ShapleyModel(variant="rate", max_channels=4, samples=4000, seed=11).fit(journeys)
    assert (sampled.method, sampled.samples) == ("sampled", 4000)
    again = ShapleyModel(variant="rate", max_channels=4, samples=4000, seed=11).fit(journeys)
    assert_frame_equal(sampled.values(), again.values())
    other = ShapleyModel(variant="rate", max_channels=4, samples=4000, seed=12).fit(journeys)
    assert not sampled.values().equals(other.values())
    errors = sampled.values()["standard_error"].to_numpy()
    assert (errors > 0).all()
    estimate = sampled.values()["shapley_value"].to_numpy()
    difference = estimate - exact.values()["shapley_value"].to_numpy()
    assert (np.abs(difference) < 5 * errors).all()
    # every sampled order is efficient, so the estimates still add up to v(N)
    assert sampled.values()["shapley_value"].sum() == pytest.approx(exact.total)
    assert exact.values()["standard_error"].null_count() == 6
    weights = sampled.weights(journeys).collect()
    sums = weights.group_by("journey_id").agg(pl.col("weight").sum())["weight"].to_numpy()
    assert sums == pytest.approx(1.0)


def test_rate_exact_on_twenty_channels():
    fit = ShapleyModel(variant="rate").fit(wide_journeys(20, n_journeys=2000))
    assert fit.method == "exact"
    assert fit.values()["shapley_value"].sum() == pytest.approx(fit.total)


# -- parameters and registry -------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"variant": "markov"}, "variant 'markov' is not one of: simplified, rate, ordered"),
        ({"value": "pipeline"}, "shapley value 'pipeline' is not one of: conversions, revenue"),
        ({"max_channels": 40}, "max_channels must be between 1 and 30, not 40"),
        ({"samples": 1}, "samples must be at least 2, not 1"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        ShapleyModel(**params)


def test_registered():
    model = get_model("shapley", variant="rate", value="revenue")
    assert isinstance(model, ShapleyModel)
    assert model.params() == {
        "variant": "rate", "value": "revenue", "max_channels": 20, "samples": None, "seed": 0
    }  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(journeys_strategy())
def test_channel_set_keys_from_bit_masks_match_the_grouped_keys(case):
    # the bit-mask shortcut for channel sets gives the same keys as grouping by channel
    from attribution.models import shapley

    journeys = make_journeys(*case)
    masked = shapley._set_keys(journeys)
    assert masked is not None
    by_mask = masked.collect().sort("journey_id")
    by_group = shapley._journey_keys(journeys, ordered=True).collect()  # grouped path...
    grouped = by_group.with_columns(pl.col("channels").list.sort()).with_columns(
        pl.col("channels").list.join("\x1f").alias("key")  # ...as sets
    ).sort("journey_id")
    assert_frame_equal(by_mask.select(grouped.columns), grouped)


def test_more_channels_than_a_bit_mask_holds_take_the_grouped_keys():
    from attribution.models import shapley

    channels = [f"c{i:02d}" for i in range(63)]
    paths = {"d1": ("won", channels), "d2": ("won", channels[:2])}
    journeys = make_journeys(paths, {"d1": 100, "d2": 100})
    assert shapley._set_keys(journeys) is None
    values = ShapleyModel().fit(journeys).values()
    # simplified: each won deal's conversion split evenly over its distinct channels
    by_channel = dict(values.select("channel", "shapley_value").iter_rows())
    assert by_channel["c00"] == pytest.approx(1 / 63 + 1 / 2)
    assert by_channel["c62"] == pytest.approx(1 / 63)


# -- the game under journey weights (a bootstrap's refit) against copied journeys -------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows,
       weights=st.lists(st.integers(0, 3), min_size=16, max_size=16),
       params=st.sampled_from(({}, {"variant": "rate"}, {"variant": "ordered"},
                               {"value": "revenue"})))
def test_the_weighted_game_equals_the_game_on_copied_journeys(touches, deals, weights, params):
    from attribution.intervals import resampled_journeys

    journeys = _journeys(touches, deals)
    counts = np.resize(np.asarray(weights), journeys.journeys.collect().height)
    assume(counts.sum() > 0)
    model = get_model("shapley", **params)
    copies = resampled_journeys(journeys, counts)
    plain = model.fit(copies)
    prepared = model.weighted(journeys)
    weighted = prepared.fit(counts)
    # the key table's sums are whole numbers either way: the same game, the same bits
    for name, table in plain.tables().items():
        assert weighted.tables()[name].equals(table), name
    # the credit the weighted fit gives each drawn journey is its copies' (to the cent), and
    # the bootstrap's channel revenue is their sum before rounding (within a cent a deal)
    theirs = allocate(copies, plain.weights(copies), "shapley").collect()
    # (scored on the drawn journeys, each once: the game knows nothing of an undrawn set)
    drawn = resampled_journeys(journeys, np.minimum(counts, 1))
    mine = allocate(drawn, weighted.weights(drawn), "shapley").collect()
    per_copy = theirs.with_columns(pl.col("journey_id").str.split("\x1e").list.first())
    key = ["journey_id", "channel", "touch_index"]
    columns = key + ["revenue_credit_cents"]
    assert (per_copy.unique(columns).sort(key).select(columns)
            .equals(mine.sort(key).select(columns)))
    summed = dict(theirs.group_by("channel").agg(pl.col("revenue_credit_cents").sum()).iter_rows())
    found = prepared.revenue_credit(counts)
    assert set(summed) <= set(found)
    copied_deals = theirs.get_column("journey_id").n_unique()
    for channel, value in found.items():
        assert abs(value - summed.get(channel, 0)) <= copied_deals + 1e-6, channel
# -- fitted from tallies (a row per channel set, summed over parts) ---------------------------
@pytest.mark.parametrize("params", [
    {}, {"value": "revenue"}, {"variant": "rate"}, {"variant": "rate", "value": "revenue"},
    {"variant": "ordered"}, {"variant": "rate", "max_channels": 2, "samples": 200},
])
@pytest.mark.parametrize("seed", range(6))
def test_tallies_summed_over_parts_give_the_journey_fit_exactly(seed, params):
    """What the Spark engine does: each part of the journeys tallies its channel sets, the
    tallies are stacked and the game played on their sums: the values, position values and
    weights of the fit on every journey, exactly."""
    rng = random.Random(seed)
    paths = random_paths(rng, rng.randint(1, 40), ["s", "e", "v", "p"])
    amounts = {j: rng.randint(1, 900) * 100 for j in paths}
    model = ShapleyModel(**params)
    everything = make_journeys(paths, amounts)
    expected = model.fit(everything)
    parts: list[dict] = [{}, {}, {}]
    for journey, path in paths.items():
        parts[rng.randrange(3)][journey] = path
    tallies = [model.tally(make_journeys(part, amounts)) for part in parts if part]
    fit = model.fit_tallies({"keys": pl.concat([t["keys"] for t in tallies])})
    assert_frame_equal(fit.values(), expected.values())
    assert (fit.channel_sets, fit.total, fit.method) == (expected.channel_sets, expected.total,
                                                          expected.method)
    if model.variant == "ordered":
        assert_frame_equal(fit.position_values(), expected.position_values())
    assert_frame_equal(fit.weights(everything).collect(), expected.weights(everything).collect())


def _indexed(journeys):
    """The journeys with their layout index, as built journeys carry it (make_journeys lists
    each journey's touches as one run, in touch order)."""
    import dataclasses

    from attribution.journeys import JourneyIndex

    touches = journeys.touches.collect()
    return dataclasses.replace(journeys, index=JourneyIndex.of(
        touches.get_column("journey_id"), touches.get_column("touch_index")))


@settings(max_examples=80, deadline=None)
@given(journeys_strategy(), st.sampled_from(["simplified", "rate"]),
       st.sampled_from(["conversions", "revenue"]))
def test_weights_on_runs_match_the_joins(case, variant, value):
    # the fast path (numpy over the runs) against the plain joins, row for row and bit for bit
    from attribution.models import shapley

    journeys = _indexed(make_journeys(*case))
    fitted = ShapleyModel(variant=variant, value=value).fit(journeys)
    keys = fitted._source_keys
    on_runs = shapley._weights_on_runs(journeys, keys, fitted._key_weights)
    assert on_runs is not None  # built journeys in run order: the fast path applies
    by_joins = shapley._weights_by_joins(journeys, keys, fitted._key_weights).collect()
    assert_frame_equal(on_runs, by_joins, check_exact=True)
    assert_frame_equal(fitted.weights(journeys).collect(), by_joins, check_exact=True)


def test_weights_without_an_index_take_the_joins():
    from attribution.models import shapley

    journeys = make_journeys({"d1": ("won", ["a", "b", "a"]), "d2": ("none", ["b"])},
                             {"d1": 100})
    fitted = ShapleyModel().fit(journeys)
    assert shapley._weights_on_runs(journeys, fitted._source_keys, fitted._key_weights) is None
    assert weights_of(ShapleyModel(), journeys) == {("d1", 0): 0.25, ("d1", 1): 0.5,
                                                    ("d1", 2): 0.25}
