"""Markov chain attribution: a worked example by hand, an independent dense solve, weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys
from attribution.models import get_model
from attribution.models.markov import MarkovModel
from attribution.paths import read_paths


def deals(paths: list[tuple[str, str, int]]) -> Journeys:
    """One deal per (path, status, amount); path like 'a>b'."""
    touches, rows = [], []
    for number, (path, status, amount) in enumerate(paths):
        journey = f"d{number}"
        for index, channel in enumerate(path.split(">") if path else []):
            touches.append({"journey_id": journey, "touch_index": index, "channel": channel})
        rows.append(
            {
                "journey_id": journey,
                "status": status,
                "amount_cents": amount,
                "revenue_cents": amount if status == "won" else None,
                "n_touches": len(path.split(">")) if path else 0,
            }
        )
    touch_frame = pl.DataFrame(
        touches, schema={"journey_id": pl.String, "touch_index": pl.UInt32, "channel": pl.String}
    )
    return Journeys.from_frames(touch_frame, pl.DataFrame(rows))


# The worked example. Five deals:
#   d0  a > b  won  100
#   d1  a      lost
#   d2  b      won   50
#   d3  b > a  lost
#   d4  a      won  300
HAND = [("a>b", "won", 100), ("a", "lost", 70), ("b", "won", 50), ("b>a", "lost", 20),
        ("a", "won", 300)]


def test_hand_worked_example_transition_matrix() -> None:
    # (start)->a: d0, d1, d4 = 3 of 5;  (start)->b: d2, d3 = 2 of 5
    # a exits: a->b (d0), a->conv (d4), a->null (d1, d3)  = 1, 1, 2 of 4
    # b exits: b->conv (d0, d2), b->a (d3)                 = 2, 1 of 3
    fit = MarkovModel().fit(deals(HAND))
    expected = pl.DataFrame(
        {
            "from_state": ["(start)", "(start)", "a", "a", "a", "b", "b"],
            "to_state": ["a", "b", "(conversion)", "(null)", "b", "(conversion)", "a"],
            "count": [3, 2, 1, 2, 1, 2, 1],
            "probability": [3 / 5, 2 / 5, 1 / 4, 2 / 4, 1 / 4, 2 / 3, 1 / 3],
            "conversions": [2, 1, 1, 0, 1, 2, 0],
            "value_cents": [400, 50, 300, 0, 100, 150, 0],
        }
    )
    assert_frame_equal(fit.transition_matrix(), expected)


def test_hand_worked_example_removal_effects() -> None:
    # Absorption into conversion, x_s from state s:
    #   x_a = 1/4 + 1/4 x_b ;  x_b = 2/3 + 1/3 x_a
    #   => x_a = 1/4 + 1/6 + 1/12 x_a  => x_a = (5/12)/(11/12) = 5/11 ;  x_b = 2/3 + 5/33 = 9/11
    #   P = 3/5 * 5/11 + 2/5 * 9/11 = 33/55 = 3/5   (= 3 conversions / 5 deals)
    # Remove a (its traffic goes to null): P = 2/5 * 2/3 = 4/15   => RE(a) = 1 - (4/15)/(3/5) = 5/9
    # Remove b:                             P = 3/5 * 1/4 = 3/20   => RE(b) = 1 - (3/20)/(3/5) = 3/4
    # Shares: 5/9 + 3/4 = 47/36  => a = 20/47, b = 27/47; credit x 3 conversions = 60/47, 81/47
    # Value: each exit to conversion carries the mean value leaving the state:
    #   a: 300 over 4 exits = 75 per exit ; b: 150 over 3 exits = 50 per exit
    #   y_a = 75 + 1/4 y_b ; y_b = 50 + 1/3 y_a  => y_a = 1050/11, y_b = 900/11
    #   V = 3/5 * 1050/11 + 2/5 * 900/11 = 4950/55 = 90   (= 450 / 5 deals)
    # Remove a: V = 2/5 * 50 = 20  => RE_value(a) = 1 - 20/90 = 7/9
    # Remove b: V = 3/5 * 75 = 45  => RE_value(b) = 1 - 45/90 = 1/2
    # Value shares: 7/9 + 1/2 = 23/18 => a = 14/23, b = 9/23; x 450 = 6300/23, 4050/23
    fit = MarkovModel().fit(deals(HAND))
    assert fit.conversion_probability == pytest.approx(3 / 5, abs=1e-15)
    assert fit.conversion_value == pytest.approx(90, abs=1e-12)
    expected = pl.DataFrame(
        {
            "channel": ["a", "b"],
            "removal_effect": [5 / 9, 3 / 4],
            "share": [20 / 47, 27 / 47],
            "removal_effect_value": [7 / 9, 1 / 2],
            "share_value": [14 / 23, 9 / 23],
            "conversions_credit": [60 / 47, 81 / 47],
            "revenue_credit_cents": [6300 / 23, 4050 / 23],
        }
    )
    assert_frame_equal(fit.removal_effects(), expected, abs_tol=1e-12)


def test_global_and_per_deal_allocations_differ() -> None:
    journeys = deals(HAND)
    # global: every deal carries the global shares, so conversions credit = share x 3
    #   a = 60/47, b = 81/47
    # per deal: d0 (a > b) splits by RE 5/9 : 3/4 -> a 20/47, b 27/47; d2 -> b 1; d4 -> a 1
    #   a = 20/47 + 1 = 67/47, b = 27/47 + 1 = 74/47
    won = pl.LazyFrame({"journey_id": ["d0", "d2", "d4"]})

    def conversions(allocation: str) -> dict[str, float]:
        weights = MarkovModel(allocation=allocation).weights(journeys).join(won, on="journey_id")
        totals = weights.group_by("channel").agg(pl.col("weight").sum()).collect()
        return dict(totals.sort("channel").iter_rows())

    assert conversions("global") == pytest.approx({"a": 60 / 47, "b": 81 / 47})
    assert conversions("per_deal") == pytest.approx({"a": 67 / 47, "b": 74 / 47})


@pytest.mark.parametrize("allocation", ["global", "per_deal"])
@pytest.mark.parametrize("weight_by", ["conversions", "revenue"])
def test_weights_sum_to_one_per_journey_with_touches(allocation: str, weight_by: str) -> None:
    journeys = deals([*HAND, ("", "won", 10), ("c>c>a", "open", 5), ("direct", "lost", 0)])
    model = MarkovModel(allocation=allocation, weight_by=weight_by, drop_channels=("direct",))
    weights = model.weights(journeys).collect()
    sums = weights.group_by("journey_id").agg(pl.col("weight").sum()).sort("journey_id")
    assert sums["journey_id"].to_list() == ["d0", "d1", "d2", "d3", "d4", "d6", "d7"]
    assert sums["weight"].to_list() == pytest.approx([1.0] * 7)
    assert (weights["weight"] >= 0).all()
    if allocation == "global":
        assert weights["touch_index"].null_count() == weights.height
    else:
        assert weights["touch_index"].null_count() == 0


def test_per_deal_weights_follow_the_original_touches_through_transforms() -> None:
    # a > a > b collapses to a > b: the first a carries a's credit, the repeat gets none
    journeys = deals([("a>a>b", "won", 10), ("b", "lost", 0), ("a", "lost", 0)])
    weights = MarkovModel(allocation="per_deal", collapse_repeats=True).weights(journeys)
    d0 = weights.filter(pl.col("journey_id") == "d0").collect()
    assert d0["touch_index"].to_list() == [0, 1, 2]
    assert d0["channel"].to_list() == ["a", "a", "b"]
    assert d0["weight"][1] == 0.0
    assert d0["weight"].sum() == pytest.approx(1.0)


def test_one_touch_journey_gets_its_channel() -> None:
    journeys = deals([("email", "won", 100)])
    for allocation in ("global", "per_deal"):
        weights = MarkovModel(allocation=allocation).weights(journeys).collect()
        assert weights.select("channel", "weight").rows() == [("email", 1.0)]


def test_no_conversion_gives_zero_effects_and_even_weights() -> None:
    journeys = deals([("a>b", "lost", 0), ("b", "lost", 0)])
    fit = MarkovModel().fit(journeys)
    assert fit.conversion_probability == 0.0
    assert fit.removal_effects()["share"].to_list() == [0.0, 0.0]
    weights = MarkovModel().weights(journeys).collect()
    assert weights.filter(pl.col("journey_id") == "d1")["weight"].to_list() == [0.5, 0.5]


def test_open_deals_are_left_out_unless_asked() -> None:
    journeys = deals([("a", "won", 10), ("b", "open", 10)])
    assert MarkovModel().fit(journeys).channels == ["a"]
    fit = MarkovModel(include_open=True).fit(journeys)
    assert fit.channels == ["a", "b"]
    assert fit.conversion_probability == pytest.approx(0.5)


def test_registered_and_validated() -> None:
    assert isinstance(get_model("markov", order=3), MarkovModel)
    for bad in ({"order": 5}, {"order": 0}, {"weight_by": "deals"}, {"allocation": "x"},
                {"bootstrap": -1}, {"last_n": 0}, {"drop_channels": "direct"}):
        with pytest.raises(ConfigError):
            MarkovModel(**bad)


def test_deterministic_and_row_order_independent() -> None:
    journeys = deals(HAND * 3)
    shuffled = Journeys.from_frames(
        journeys.touches.collect().sample(fraction=1.0, shuffle=True, seed=3),
        journeys.journeys.collect().reverse(),
    )
    model = MarkovModel(order=2, bootstrap=20, seed=7)
    assert_frame_equal(model.fit(journeys).removal_effects(), model.fit(shuffled).removal_effects())
    assert_frame_equal(model.weights(journeys).collect(), model.weights(shuffled).collect())


def test_bootstrap_interval_brackets_the_share() -> None:
    fit = MarkovModel(bootstrap=200, seed=1).fit(deals(HAND * 20))
    effects = fit.removal_effects()
    assert effects.columns[-2:] == ["ci_low", "ci_high"]
    for row in effects.iter_rows(named=True):
        assert row["ci_low"] <= row["share"] <= row["ci_high"]
        assert 0.0 <= row["ci_low"] < row["ci_high"] <= 1.0


# -- an independent dense computation -------------------------------------------------------
def dense_removal_effects(paths: list[tuple[list[str], int, int]]) -> dict[str, float]:
    """Order-1 removal effects by textbook dense linear algebra, written separately."""
    channels = sorted({c for path, _, _ in paths for c in path})
    nodes = ["(start)", *channels, "(conversion)", "(null)"]
    at = {name: i for i, name in enumerate(nodes)}
    counts = np.zeros((len(nodes), len(nodes)))
    for path, conversions, nulls in paths:
        walk = ["(start)", *path]
        for here, there in zip(walk, walk[1:], strict=False):
            counts[at[here], at[there]] += conversions + nulls
        counts[at[path[-1]], at["(conversion)"]] += conversions
        counts[at[path[-1]], at["(null)"]] += nulls
    rows = counts.sum(axis=1, keepdims=True)
    matrix = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)

    def probability(removed: str | None) -> float:
        transient = [n for n in nodes[: -2] if n != removed]
        q = matrix[np.ix_([at[n] for n in transient], [at[n] for n in transient])]
        r = matrix[[at[n] for n in transient], at["(conversion)"]]
        fundamental = np.linalg.inv(np.eye(len(transient)) - q)
        return float((fundamental @ r)[0])

    full = probability(None)
    return {c: (1 - probability(c) / full) if full > 0 else 0.0 for c in channels}


path_strategy = st.lists(
    st.tuples(
        st.lists(st.sampled_from("abcde"), min_size=1, max_size=6),
        st.integers(0, 5),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=30,
)


def path_journeys(paths: list[tuple[list[str], int, int]]) -> Journeys:
    touches = pl.DataFrame(
        [
            {"journey_id": f"p{i}", "touch_index": k, "channel": c}
            for i, (path, _, _) in enumerate(paths)
            for k, c in enumerate(path)
        ]
    )
    rows = pl.DataFrame(
        {
            "journey_id": [f"p{i}" for i in range(len(paths))],
            "status": ["path"] * len(paths),
            "conversions": [c for _, c, _ in paths],
            "nulls": [n for _, _, n in paths],
        }
    )
    return Journeys.from_frames(touches, rows, has_timestamps=False, has_milestones=False)


@settings(max_examples=60, deadline=None)
@given(path_strategy)
def test_order_one_matches_dense_computation(paths: list[tuple[list[str], int, int]]) -> None:
    fit = MarkovModel().fit(path_journeys(paths))
    expected = dense_removal_effects(paths)
    got = dict(zip(fit.channels, fit.removal_effect, strict=True))
    assert set(got) == set(expected)
    for channel, value in expected.items():
        assert got[channel] == pytest.approx(value, abs=1e-9)


# -- higher orders on a first-order process ------------------------------------------------
def first_order_paths(n: int, seed: int) -> Journeys:
    """Journeys from a known first-order chain over 4 channels (vectorised with numpy)."""
    rng = np.random.default_rng(seed)
    channels = np.array(["a", "b", "c", "d"])
    start = np.array([0.4, 0.3, 0.2, 0.1])
    # rows: a, b, c, d ; columns: a, b, c, d, conversion, null
    step = np.array(
        [
            [0.10, 0.30, 0.20, 0.10, 0.05, 0.25],
            [0.20, 0.05, 0.30, 0.10, 0.10, 0.25],
            [0.10, 0.20, 0.05, 0.25, 0.20, 0.20],
            [0.15, 0.15, 0.15, 0.05, 0.30, 0.20],
        ]
    )
    state = rng.choice(4, size=n, p=start)
    alive = np.ones(n, dtype=bool)
    converted = np.zeros(n, dtype=bool)
    ids, positions, labels = [], [], []
    position = 0
    while alive.any():
        live = np.flatnonzero(alive)
        ids.append(live)
        positions.append(np.full(len(live), position))
        labels.append(channels[state[live]])
        cumulative = step[state[live]].cumsum(axis=1)
        nxt = (rng.random(len(live))[:, None] > cumulative).sum(axis=1)
        converted[live[nxt == 4]] = True
        alive[live[nxt >= 4]] = False
        state[live[nxt < 4]] = nxt[nxt < 4]
        position += 1
    touches = pl.DataFrame(
        {
            "journey_id": np.concatenate(ids).astype(str),
            "touch_index": np.concatenate(positions),
            "channel": np.concatenate(labels),
        }
    )
    rows = pl.DataFrame(
        {
            "journey_id": np.arange(n).astype(str),
            "status": np.where(converted, "won", "lost"),
            "amount_cents": np.full(n, 100),
        }
    )
    return Journeys.from_frames(touches, rows)


def test_higher_orders_agree_with_order_one_on_a_first_order_process() -> None:
    # On data from a first-order chain every order estimates the same removal effects; with
    # 100k journeys the sampling noise on the shares stays well under 0.01.
    journeys = first_order_paths(100_000, seed=11)
    shares = {order: MarkovModel(order=order).fit(journeys).shares() for order in (1, 2, 3, 4)}
    for order in (2, 3, 4):
        np.testing.assert_allclose(shares[order], shares[1], atol=0.01)


# -- ChannelAttribution's example data ------------------------------------------------------
def installed_data_csv() -> Path | None:
    """ChannelAttribution's Data.csv when ChannelAttribution itself imports (the ``bench``
    extra: it needs matplotlib, which CI does not install), else None (the tests skip)."""
    import contextlib
    import io

    try:
        import cypack  # ChannelAttribution ships its data in this package
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a banner on import
            import ChannelAttribution  # noqa: F401
    except ImportError:
        return None
    candidate = Path(cypack.__file__).parent / "data" / "Data.csv"
    return candidate if candidate.exists() else None


def channelattribution_exact(path: Path, order: int) -> dict[str, float]:
    """Removal effects from ChannelAttribution's transition_matrix, solved as absorbing chain."""
    import contextlib
    import io

    import pandas
    from ChannelAttribution import transition_matrix

    data = pandas.read_csv(path, sep=";")
    with contextlib.redirect_stdout(io.StringIO()):
        result = transition_matrix(
            data, "path", "total_conversions", "total_null", order=order, flg_pro=False
        )
    names = dict(zip(result["channels"]["id_channel"].astype(str),
                     result["channels"]["channel_name"], strict=True))
    table = result["transition_matrix"]
    nodes = sorted(set(table["channel_from"]) | set(table["channel_to"]))
    transient = [n for n in nodes if n not in ("(conversion)", "(null)")]
    transient.remove("(start)")
    transient.insert(0, "(start)")
    at = {n: i for i, n in enumerate(transient)}
    q = np.zeros((len(transient), len(transient)))
    r = np.zeros(len(transient))
    columns = table[["channel_from", "channel_to", "transition_probability"]]
    for src, dst, p in columns.itertuples(index=False):
        if dst == "(conversion)":
            r[at[src]] += p
        elif dst != "(null)":
            q[at[src], at[dst]] += p

    def probability(removed: str | None) -> float:
        keep = [i for n, i in at.items()
                if removed is None or n == "(start)" or removed not in n.split(" ")]
        return float(np.linalg.solve(np.eye(len(keep)) - q[np.ix_(keep, keep)], r[keep])[0])

    full = probability(None)
    return {name: 1 - probability(cid) / full for cid, name in names.items()}


@pytest.mark.skipif(installed_data_csv() is None, reason="channelattribution is not installed")
@pytest.mark.parametrize("order", [1, 2, 3])
def test_matches_channelattribution_exactly_on_its_data(order: int) -> None:
    path = installed_data_csv()
    assert path is not None
    table = read_paths(path, separator=">")
    fit = MarkovModel(order=order).fit(table.journeys)
    expected = channelattribution_exact(path, order)
    got = dict(zip(fit.channels, fit.removal_effect, strict=True))
    assert set(got) == set(expected)
    for channel, value in expected.items():
        assert got[channel] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_only_open_deals_split_each_journey_evenly() -> None:
    # nothing to fit (open deals are left out), yet every journey with touches needs weights
    weights = MarkovModel().weights(deals([("a>b", "open", 20)])).collect()
    assert weights.select("touch_index", "channel", "weight").rows() == [
        (0, "a", 0.5), (1, "b", 0.5)]


# -- fitted from tallies (transition counts per state, summed over parts) -----------------------
tallied_deals = st.lists(
    st.tuples(
        st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=0, max_size=6).map(">".join),
        st.sampled_from(["won", "lost", "open"]),
        st.integers(1, 10_000),
        st.integers(0, 3),  # which part the deal falls in
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(tallied_deals, st.sampled_from([
    {}, {"order": 2}, {"order": 3, "weight_by": "revenue"}, {"include_open": True},
    {"collapse_repeats": True, "order": 2}, {"allocation": "per_deal", "last_n": 3},
]))
def test_tallies_summed_over_parts_give_the_path_fit_exactly(rows, params) -> None:
    """What the Spark engine does: each part of the journeys is tallied on its own (a row per
    transition and per state), the tallies are stacked and the fit rebuilt from them; the
    chain, its counts, removal effects, tables and weights are the fit on everything, bit for
    bit."""
    model = MarkovModel(**params)
    everything = deals([(path, status, amount) for path, status, amount, _ in rows])
    expected = model.fit(everything)
    parts = [deals([(p, s, a) for p, s, a, part in rows if part == k]) for k in range(4)]
    tallies = [model.tally(part) for part in parts if part.journeys.collect().height]
    fit = model.fit_tallies({name: pl.concat([t[name] for t in tallies])
                             for name in ("edges", "exits")})
    assert fit.channels == expected.channels
    assert fit.chain.states == expected.chain.states
    assert fit.chain.windows == expected.chain.windows
    assert np.array_equal(fit.chain.edge_from, expected.chain.edge_from)
    assert np.array_equal(fit.chain.edge_to, expected.chain.edge_to)
    assert np.array_equal(fit.chain.contains, expected.chain.contains)
    for name in ("edge", "edge_conversions", "edge_value", "conversion", "null", "value"):
        assert np.array_equal(getattr(fit.counts, name), getattr(expected.counts, name)), name
    assert np.array_equal(fit.removal_effect, expected.removal_effect)
    assert np.array_equal(fit.removal_effect_value, expected.removal_effect_value)
    assert (fit.total_conversions, fit.total_revenue) == (expected.total_conversions,
                                                          expected.total_revenue)
    for name, table in expected.tables().items():
        assert_frame_equal(fit.tables()[name], table)
    assert_frame_equal(fit.weights(everything).collect(), expected.weights(everything).collect())


def test_a_bootstrap_is_not_fitted_from_tallies() -> None:
    model = MarkovModel(bootstrap=10)
    assert not model.fits_from_tallies() and MarkovModel().fits_from_tallies()
    with pytest.raises(ModelError, match="a Markov bootstrap resamples paths"):
        model.fit_tallies({})
