"""credit.allocate / summarise: exact money from weights, and the comparison with last-touch."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.compare import compare
from attribution.credit import _largest_remainder, allocate, exact_sum, summarise
from attribution.errors import ModelError
from attribution.journeys import Journeys
from attribution.models import get_model
from tests.factories import channel_credit, journeys_of
from tests.reference import largest_remainder, reference_credit


def three_touch_deal(amount: int) -> Journeys:
    return journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "newsletter", "2025-01-02"),
         ("A", "x", "paid_search", "2025-01-03")],
        [("D", "A", "2025-01-04", "2025-01-10", "won", amount)],
    )


def test_largest_remainder_gives_leftover_cents_to_earliest_equal_fractions():
    # 100 cents / 3 = 33.33 each: floors 33, 33, 33 leave 1 cent -> the first touch
    journeys = three_touch_deal(100)
    credit = allocate(journeys, get_model("linear").weights(journeys), "linear").collect()
    assert credit.sort("touch_index")["pipeline_credit_cents"].to_list() == [34, 33, 33]
    # 200 cents: 66.67 each, floors 66 x3 leave 2 cents -> touches 0 and 1
    journeys = three_touch_deal(200)
    credit = allocate(journeys, get_model("linear").weights(journeys), "linear").collect()
    assert credit.sort("touch_index")["pipeline_credit_cents"].to_list() == [67, 67, 66]


def test_largest_fraction_wins_over_position():
    # weights 0.15 / 0.25 / 0.6 of 7 cents: 1.05, 1.75, 4.2 -> floors 1, 1, 4 leave 1 cent
    # -> the largest fraction (.75, touch 1), not the first touch
    journeys = three_touch_deal(7)
    weights = pl.LazyFrame(
        {"journey_id": ["D"] * 3, "touch_index": [0, 1, 2],
         "channel": ["podcast", "newsletter", "paid_search"], "weight": [0.15, 0.25, 0.6]},
        schema_overrides={"touch_index": pl.UInt32},
    )
    credit = allocate(journeys, weights, "custom").collect().sort("touch_index")
    assert credit["pipeline_credit_cents"].to_list() == [1, 2, 4]
    assert credit["revenue_credit_cents"].to_list() == [1, 2, 4]
    assert credit["conversion_credit"].to_list() == pytest.approx([0.15, 0.25, 0.6])


def test_weights_not_summing_to_one_are_refused():
    journeys = three_touch_deal(100)
    weights = pl.LazyFrame(
        {"journey_id": ["D"] * 3, "touch_index": [0, 1, 2],
         "channel": ["podcast", "newsletter", "paid_search"], "weight": [0.5, 0.5, 0.5]},
        schema_overrides={"touch_index": pl.UInt32},
    )
    with pytest.raises(ModelError,
                       match=r"model 'bad' returned weights summing to 1.5 .* journey 'D'"):
        allocate(journeys, weights, "bad").collect()


@pytest.mark.parametrize("weight", [[0.0, 0.0, 0.0], None])
def test_a_deal_left_without_weight_is_refused(weight):
    # all-zero weights, or no row at all: the deal's money would vanish from the totals
    journeys = three_touch_deal(100)
    rows = {"journey_id": ["D"] * 3, "touch_index": [0, 1, 2],
            "channel": ["podcast", "newsletter", "paid_search"], "weight": weight or [1.0] * 3}
    weights = pl.LazyFrame(rows, schema_overrides={"touch_index": pl.UInt32})
    if weight is None:
        weights = weights.filter(pl.col("journey_id") != "D")
    with pytest.raises(ModelError, match=r"model 'bad' returned no weight above 0 for journey 'D'"):
        allocate(journeys, weights, "bad").collect()


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_missing_weight_is_refused_not_taken_as_zero(missing):
    # the other two weights sum to 1: dropping the missing one would hide the model's failure
    journeys = three_touch_deal(100)
    weights = pl.LazyFrame(
        {"journey_id": ["D"] * 3, "touch_index": [0, 1, 2],
         "channel": ["podcast", "newsletter", "paid_search"], "weight": [0.5, missing, 0.5]},
        schema_overrides={"touch_index": pl.UInt32, "weight": pl.Float64},
    )
    with pytest.raises(ModelError, match=r"model 'bad' returned weights summing to nan"):
        allocate(journeys, weights, "bad").collect()


def test_negative_weights_are_refused_even_when_they_sum_to_one():
    journeys = three_touch_deal(100)
    weights = pl.LazyFrame(
        {"journey_id": ["D"] * 3, "touch_index": [0, 1, 2],
         "channel": ["podcast", "newsletter", "paid_search"], "weight": [1.5, -0.5, 0.0]},
        schema_overrides={"touch_index": pl.UInt32},
    )
    with pytest.raises(ModelError, match=r"summing to 1.0 \(lowest -0.5\) for journey 'D'"):
        allocate(journeys, weights, "bad").collect()


def test_summary_and_comparison_figures():
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "paid_search", "2025-01-05"),
         ("B", "y", "paid_search", "2025-01-05"), ("C", "z", "newsletter", "2025-01-05")],
        [("D1", "A", "2025-01-06", "2025-01-10", "won", 10_000),
         ("D2", "B", "2025-01-06", "2025-01-10", "won", 30_000),
         ("D3", "C", "2025-01-06", "2025-01-10", "lost", 5_000),
         ("D4", "Z", "2025-01-06", "2025-01-10", "won", 1_000)],
    )
    credit = pl.concat(
        [allocate(journeys, get_model(m).weights(journeys), m).collect()
         for m in ("last_touch", "linear")]
    )
    summary = summarise(credit, journeys)
    rows = {(r["model"], r["channel"]): r for r in summary.iter_rows(named=True)}
    # linear: D1 splits 5000/5000, D2 all paid_search, D3 (lost) newsletter pipeline only,
    # D4 has no touch at all -> (no touch)
    assert rows[("linear", "paid_search")]["revenue_credit_cents"] == 35_000
    assert rows[("linear", "podcast")]["revenue_credit_cents"] == 5_000
    assert rows[("linear", "newsletter")]["revenue_credit_cents"] == 0
    assert rows[("linear", "newsletter")]["pipeline_credit_cents"] == 5_000
    assert rows[("linear", "(no touch)")]["revenue_credit_cents"] == 1_000
    assert rows[("linear", "paid_search")]["deals_touched"] == 2
    assert rows[("linear", "paid_search")]["revenue_share"] == pytest.approx(35 / 41)
    comparison = compare(summary)
    podcast = comparison.filter((pl.col("model") == "linear") & (pl.col("channel") == "podcast"))
    assert podcast.select(
        "last_touch_revenue_credit_cents", "revenue_shift_cents", "revenue_shift_pct"
    ).row(0) == (0, 5_000, None)
    search = comparison.filter((pl.col("model") == "linear") & (pl.col("channel") == "paid_search"))
    assert search.select("revenue_shift_cents", "revenue_shift_pct").row(0) == (-5_000,
                                                                                -5_000 / 40_000)
    assert channel_credit(credit.filter(pl.col("model") == "last_touch")) == {
        "(no touch)": 1_000, "newsletter": 0, "paid_search": 40_000,
    }


def test_comparison_needs_last_touch():
    journeys = three_touch_deal(100)
    credit = allocate(journeys, get_model("linear").weights(journeys), "linear").collect()
    with pytest.raises(ModelError, match="needs the 'last_touch' model"):
        compare(summarise(credit, journeys))


@settings(max_examples=60, deadline=None)
@given(
    journeys=st.lists(
        st.tuples(
            st.lists(st.integers(0, 9), min_size=1, max_size=7),  # raw scores of the touches
            st.integers(0, 10**9),  # the journey's amount in cents
        ),
        min_size=1,
        max_size=12,
    )
)
def test_largest_remainder_matches_the_rule_worked_by_hand(journeys):
    weights, totals, starts, expected = [], [], [], []
    for scores, total in journeys:
        share = [s / sum(scores) if sum(scores) else 1 / len(scores) for s in scores]
        starts.append(len(weights))
        weights += share
        totals.append(total)
        expected += largest_remainder(share, total)
    credit = _largest_remainder(np.array(weights), np.array(totals, np.int64),
                                np.array(starts, np.int64))
    assert credit.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 6),
    journeys=st.lists(
        st.tuples(st.lists(st.integers(0, 9), min_size=6, max_size=6), st.integers(0, 10**9)),
        min_size=1, max_size=12,
    ),
)
def test_largest_remainder_of_journeys_of_one_size_matches_the_rule(width, journeys):
    # every journey as many rows (channel-level weights): ranked as a table, row by row
    weights, totals, expected = [], [], []
    for scores, total in journeys:
        scores = scores[:width]
        share = [s / sum(scores) if sum(scores) else 1 / width for s in scores]
        weights += share
        totals.append(total)
        expected += largest_remainder(share, total)
    starts = np.arange(0, len(weights), width, dtype=np.int64)
    credit = _largest_remainder(np.array(weights), np.array(totals, np.int64), starts)
    assert credit.tolist() == expected


def test_large_inputs_rank_fractions_like_small_ones():
    # past 100,000 rows to rank the fractions are sorted by polars, below by numpy: same cents
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 9, 40_000)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    scores = rng.integers(0, 4, int(sizes.sum())).astype(np.float64) + 1.0
    weights = scores / np.repeat(np.add.reduceat(scores, starts), sizes)
    totals = rng.integers(0, 10**7, sizes.size)
    large = _largest_remainder(weights, totals, starts)
    assert (np.add.reduceat(large, starts) == totals).all()
    small = np.concatenate([  # the same journeys, a thousand at a time
        _largest_remainder(weights[starts[i]:starts[i] + sizes[i:i + 1000].sum()],
                           totals[i:i + 1000], starts[i:i + 1000] - starts[i])
        for i in range(0, sizes.size, 1000)
    ])
    assert large.tolist() == small.tolist()


def test_exact_sum_is_the_correctly_rounded_sum_in_any_order():
    # a plain group_by sum adds thread-partial sums in a varying order: last-digit noise
    rng = np.random.default_rng(11)
    frame = pl.DataFrame({"g": rng.integers(0, 3, 300_000),
                          "x": rng.random(300_000) * 1e3 - 100.0})
    expected = [math.fsum(frame.filter(pl.col("g") == g)["x"].to_list()) for g in range(3)]
    for seed in range(4):
        rows = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        eager = rows.group_by("g").agg(exact_sum(pl.col("x"))).sort("g")
        lazy = rows.lazy().group_by("g").agg(exact_sum(pl.col("x"))).sort("g").collect()
        assert eager["x"].to_list() == expected
        assert lazy["x"].to_list() == expected
    assert frame.select(exact_sum(pl.col("x"))).item() == math.fsum(frame["x"].to_list())
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 added left to right; exactly it rounds to 0.6
    assert pl.DataFrame({"x": [0.1, 0.2, 0.3]}).select(exact_sum(pl.col("x"))).item() == 0.6
    nothing = frame.group_by("g").agg(exact_sum(pl.col("x").filter(pl.col("x") > 1e6)))
    assert nothing["x"].to_list() == [0.0, 0.0, 0.0]


def test_weights_of_other_journeys_and_split_runs_change_nothing():
    # population models weigh deal-less accounts too (no money: ignored), and a journey's rows
    # need not come together or in order
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "newsletter", "2025-01-02"),
         ("B", "y", "events", "2025-01-02"), ("C", "z", "paid_search", "2025-01-03")],
        [("D1", "A", "2025-01-04", "2025-01-10", "won", 1_001),
         ("D2", "C", "2025-01-04", "2025-01-10", "lost", 500)],
    )
    clean = get_model("linear").weights(journeys).collect()
    expected = allocate(journeys, clean.lazy(), "linear").collect()
    assert expected["pipeline_credit_cents"].to_list() == [501, 500, 500]
    assert clean["journey_id"].to_list() == ["D1", "D1", "D2", "account:B"]
    messy = clean[[1, 3, 2, 0]]  # D1's touches apart, the deal-less account between them
    assert allocate(journeys, messy.lazy(), "linear").collect().equals(expected)


@pytest.mark.parametrize(
    ("weights", "total", "expected"),
    [
        ([1 / 3, 1 / 3, 1 / 3], 100, [34, 33, 33]),  # equal fractions: in row order already
        ([0.45, 0.35, 0.2], 10, [5, 3, 2]),  # .5 .5 0: falling, no ranking needed
        ([0.5, 0.3, 0.2], 8, [4, 2, 2]),  # 0 .4 .6: rising, the last outranks the second
        ([0.2, 0.3, 0.5], 7, [1, 2, 4]),  # .4 .1 .5: the last outranks the first
    ],
)
def test_leftover_cents_in_row_order_and_ranked(weights, total, expected):
    credit = _largest_remainder(np.array(weights), np.array([total], np.int64),
                                np.array([0], np.int64))
    assert credit.tolist() == expected == largest_remainder(weights, total)


def test_deal_columns_gathered_one_at_a_time_give_the_same_credit(monkeypatch):
    # large credit tables gather the deal columns column by column (less memory at the peak)
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "y", "newsletter", "2025-01-02"),
         ("B", "z", "events", "2025-01-02")],
        [("D1", "A", "2025-01-04", "2025-01-10", "won", 1_001),
         ("D2", "B", "2025-01-04", "2025-01-10", "open", 700),
         ("D3", "C", "2025-01-04", "2025-01-10", "lost", 300)],  # no touch
    )
    weights = get_model("linear").weights(journeys).collect().lazy()
    together = allocate(journeys, weights, "linear").collect()
    monkeypatch.setattr("attribution.credit.GATHER_BY_COLUMN_FROM", 0)
    apart = allocate(journeys, weights, "linear").collect()
    assert_frame_equal(apart, together)
    assert together.select("deal_id", "account_id", "status", "pipeline_credit_cents").rows() == [
        ("D1", "A", "won", 501), ("D1", "A", "won", 500), ("D2", "B", "open", 700),
        ("D3", "C", "lost", 300),
    ]


def test_weight_rows_without_a_journey_carry_no_money():
    # a weight row whose journey_id is null belongs to no journey: it is left out, wherever it
    # comes (first or between a journey's rows), and the journeys' own rows are credited
    journeys = three_touch_deal(1_000)
    weights = get_model("linear").weights(journeys).collect()
    expected = allocate(journeys, weights.lazy(), "linear").collect()
    stray = weights.head(1).with_columns(pl.lit(None, pl.String).alias("journey_id"))
    for rows in (pl.concat([stray, weights]), pl.concat([weights.head(1), stray, weights.tail(2)])):
        assert_frame_equal(allocate(journeys, rows.lazy(), "linear").collect(), expected)


def test_channel_level_weights_are_credited_in_channel_order_whatever_their_order():
    # no touch to order by: the channel decides, so the leftover cent of 101 / 2 goes to
    # newsletter, the first channel by name, however the weights list them
    journeys = three_touch_deal(101)
    for channels in (["newsletter", "podcast"], ["podcast", "newsletter"]):
        weights = pl.LazyFrame(
            {"journey_id": ["D", "D"], "touch_index": [None, None], "channel": channels,
             "weight": [0.5, 0.5]},
            schema_overrides={"touch_index": pl.UInt32},
        )
        credit = allocate(journeys, weights, "global").collect()
        assert credit.select("channel", "pipeline_credit_cents").rows() == [
            ("newsletter", 51), ("podcast", 50)]


def test_models_crediting_the_same_rows_share_the_deal_columns_and_others_do_not():
    # allocate keeps its last gather of the deal columns on the journeys: a model crediting the
    # same rows reuses it, one crediting other rows (fewer, or in another journey) gathers anew
    touches = [("A", "x", "podcast", "2025-01-01"), ("A", "y", "newsletter", "2025-01-02"),
               ("B", "z", "events", "2025-01-02"), ("B", "z", "webinar", "2025-01-03")]
    deals = [("D1", "A", "2025-01-04", "2025-01-10", "won", 1_001),
             ("D2", "B", "2025-01-04", "2025-01-10", "lost", 700)]
    journeys = journeys_of(touches, deals)
    names = ["linear", "first_touch", "u_shaped", "last_touch", "time_decay"]
    shared = [allocate(journeys, get_model(n).weights(journeys), n).collect() for n in names]
    for name, credit in zip(names, shared, strict=True):
        fresh = journeys_of(touches, deals)  # nothing kept from another model
        assert_frame_equal(credit, allocate(fresh, get_model(name).weights(fresh), name).collect())
    first = shared[1]
    assert first.select("deal_id", "status", "channel", "pipeline_credit_cents").rows() == [
        ("D1", "won", "podcast", 1_001), ("D2", "lost", "events", 700)]
    row, deal = journeys.deal_gather.rows, journeys.deal_gather.columns
    assert row is not None and deal is not None
    assert row.tolist() == [0, 0, 1, 1]  # time decay's rows: every touch, as linear's
    assert deal.get_column("deal_id").to_list() == ["D1", "D1", "D2", "D2"]


# -- allocate against the reference credit splitter ---------------------------------------------
REFERENCE_MODELS = ["first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
                    "u_shaped", "w_shaped", "full_path", "markov", "shapley"]


@st.composite
def credit_cases(draw):
    """Journeys (deals with and without touches, deal-less accounts) and how to weight them."""
    channels = ["podcast", "newsletter", "events", "direct", "paid_search"]
    touches = [
        (draw(st.sampled_from("ABCD")), draw(st.sampled_from(["ann", "bob", None])),
         draw(st.sampled_from(channels)),
         f"2025-01-{draw(st.integers(1, 28)):02d}T{draw(st.integers(0, 23)):02d}:00")
        for _ in range(draw(st.integers(1, 25)))
    ]
    deals = [
        (f"D{n}", account, "2025-01-20", None if status == "open" else "2025-02-01", status,
         draw(st.sampled_from([0, 1, 2, 99, 100, 1_001, 123_457, 10**9 + 7])))
        for n, (account, status) in enumerate(draw(st.lists(
            st.tuples(st.sampled_from("ABCDE"), st.sampled_from(["won", "lost", "open"])),
            min_size=1, max_size=6)))
    ]
    sources = draw(st.lists(st.sampled_from([*REFERENCE_MODELS, "scores", "channels"]),
                            min_size=1, max_size=3))
    layout = draw(st.sampled_from(["as made", "shuffled", "no details", "strays",
                                   "runs reordered"]))
    return touches, deals, sources, layout, draw(st.randoms(use_true_random=False)), draw(
        st.lists(st.integers(0, 4), min_size=64, max_size=64))


def _weights_of(source: str, journeys: Journeys, scores: list[int]) -> pl.DataFrame:
    """A model's weights, or made-up ones: touch scores (zeros among them) or channel-level."""
    if source in REFERENCE_MODELS:
        model = get_model(source)
        scope = journeys if model.uses_population else journeys.with_money_only()
        return model.weights(scope).collect()
    touches = journeys.touches.collect()
    if source == "scores":
        raw = [scores[n % len(scores)] for n in range(touches.height)]
        frame = touches.select("journey_id", "touch_index", "channel").with_columns(
            pl.Series("raw", raw, dtype=pl.Float64))
        total = pl.col("raw").sum().over("journey_id")
        even = 1.0 / pl.len().over("journey_id").cast(pl.Float64)
        return frame.select("journey_id", "touch_index", "channel",
                            pl.when(total > 0).then(pl.col("raw") / total).otherwise(even)
                            .alias("weight"))
    per_channel = touches.select("journey_id", "channel").unique(maintain_order=True)
    share = 1.0 / pl.len().over("journey_id").cast(pl.Float64)
    return per_channel.select("journey_id", pl.lit(None, pl.UInt32).alias("touch_index"),
                              "channel", share.alias("weight"))


@settings(max_examples=120, deadline=None)
@given(credit_cases(), st.booleans())
def test_allocate_matches_the_reference_credit_splitter(case, small_thresholds):
    # the fast paths (rows already in credit order, runs looked up once, the deal columns kept
    # for the next model, revenue split as the amount, one-size and ranked leftovers) against
    # a deal-by-deal split; with small thresholds the column-by-column gather and the polars
    # ranking are taken too
    from unittest import mock

    import attribution.credit as credit_module

    touches, deals, sources, layout, random, scores = case
    journeys = journeys_of(touches, deals)
    with mock.patch.multiple(credit_module, GATHER_BY_COLUMN_FROM=0 if small_thresholds else
                             credit_module.GATHER_BY_COLUMN_FROM,
                             POLARS_RANK_FROM=0 if small_thresholds else
                             credit_module.POLARS_RANK_FROM):
        for source in sources:  # one journeys for all: the kept deal columns are reused
            weights = _weights_of(source, journeys, scores)
            if layout == "shuffled":
                rows = list(range(weights.height))
                random.shuffle(rows)
                weights = weights[rows]
            elif layout == "runs reordered":  # each journey one run, journeys in another order
                ids = weights.get_column("journey_id").unique(maintain_order=True).to_list()
                random.shuffle(ids)
                order = pl.DataFrame({"journey_id": ids}, schema={"journey_id": pl.String})
                weights = (weights.join(order.with_row_index("_o"), on="journey_id",
                                        maintain_order="left")
                           .sort("_o", maintain_order=True).drop("_o"))
            elif layout == "no details":
                weights = weights.select("journey_id", "touch_index", "channel", "weight")
            elif layout == "strays":  # rows of journeys that carry no money, or of none
                stray = pl.DataFrame({"journey_id": ["account:Z", None], "touch_index": [0, 1],
                                      "channel": ["direct", "events"], "weight": [1.0, 1.0]},
                                     schema_overrides={"touch_index": pl.UInt32})
                weights = pl.concat([stray, weights.select(stray.columns), stray.reverse()])
            expected = reference_credit(journeys, weights, source)
            got = allocate(journeys, weights.lazy(), source).collect()
            assert_frame_equal(got, expected)


@settings(max_examples=60, deadline=None)
@given(
    paths=st.lists(
        st.tuples(st.lists(st.sampled_from(["podcast", "events", "direct"]), max_size=4),
                  st.integers(0, 5), st.integers(0, 3), st.integers(0, 10**7)),
        min_size=1, max_size=8),
    sources=st.lists(st.sampled_from(["first_touch", "last_touch", "linear", "markov",
                                      "scores", "channels"]), min_size=1, max_size=3),
    scores=st.lists(st.integers(0, 4), min_size=16, max_size=16),
)
def test_allocate_matches_the_reference_on_path_rows(paths, sources, scores):
    # path-table rows carry their own revenue (neither 0 nor the amount): split on its own
    touches = pl.DataFrame(
        [(f"p{n}", i, c) for n, (channels, *_) in enumerate(paths)
         for i, c in enumerate(channels)],
        schema={"journey_id": pl.String, "touch_index": pl.UInt32, "channel": pl.String},
        orient="row",
    ).with_columns(pl.col("channel").alias("channel_group"))
    rows = pl.DataFrame(
        [(f"p{n}", "path", value + conversions, value, conversions, nulls, len(channels))
         for n, (channels, conversions, nulls, value) in enumerate(paths)],
        schema={"journey_id": pl.String, "status": pl.String, "amount_cents": pl.Int64,
                "revenue_cents": pl.Int64, "conversions": pl.Int64, "nulls": pl.Int64,
                "n_touches": pl.UInt32},
        orient="row",
    )
    journeys = Journeys.from_frames(touches, rows, has_timestamps=False, has_milestones=False)
    for source in sources:
        weights = _weights_of(source, journeys, scores)
        assert_frame_equal(allocate(journeys, weights.lazy(), source).collect(),
                           reference_credit(journeys, weights, source))


def test_weights_of_built_journeys_are_credited_without_a_sort(monkeypatch):
    # the layout build_journeys gives is what lets allocate skip its sort: weights made from
    # the journeys' touches (touch-level and channel-level) must be found in credit order
    import attribution.credit as credit_module

    def refuse(*_args, **_kwargs):
        raise AssertionError("allocate checked or sorted the order: the layout was lost")

    monkeypatch.setattr(credit_module, "_in_order", refuse)
    touches = [("A", "ann", "podcast", "2025-01-01"), ("A", "bob", "events", "2025-01-02"),
               ("B", "cat", "direct", "2025-01-02"), ("B", "cat", "podcast", "2025-01-05"),
               ("C", None, "events", "2025-01-03")]
    deals = [("D1", "A", "2025-01-10", "2025-01-20", "won", 1_001),
             ("D2", "B", "2025-01-10", None, "open", 700),
             ("D3", "E", "2025-01-10", "2025-01-20", "lost", 5)]
    journeys = journeys_of(touches, deals)
    for name in REFERENCE_MODELS:
        model = get_model(name)
        scope = journeys if model.uses_population else journeys.with_money_only()
        weights = model.weights(scope)
        assert_frame_equal(allocate(scope, weights, name).collect(),
                           reference_credit(scope, weights.collect(), name))


@settings(max_examples=60, deadline=None)
@given(credit_cases(), st.sampled_from(["conversions", "revenue"]), st.integers(1, 3),
       st.booleans())
def test_summary_from_channel_totals_is_the_summary_of_the_allocated_credit(
        case, weight_by, order, as_paths):
    # a model whose credit is its channel shares in every journey (Markov's global
    # allocation) is summarised from totals when no credit rows are kept: the same frame as
    # summarising the credit allocate gives, with deals without a touch, open deals and
    # repeated conversion counts among the journeys
    from attribution.credit import deals_touched, summarise_shares
    from attribution.models.markov import MarkovModel

    touches, deals, *_ = case
    journeys = journeys_of(touches, deals)
    if as_paths:  # path rows: several conversions a row, revenue the amount
        money = journeys.journeys.collect()
        journeys = Journeys(
            touches=journeys.touches, index=journeys.index,
            journeys=money.with_columns(
                pl.lit("path").alias("status"),
                (pl.col("amount_cents") % 7).alias("conversions"),
                pl.col("amount_cents").alias("revenue_cents")).lazy(),
            has_timestamps=False, has_milestones=False)
    fitted = MarkovModel(order=order, weight_by=weight_by).fit(journeys)
    shares = fitted.channel_shares()
    touched = deals_touched(journeys)
    from_totals = (None if shares is None else
                   summarise_shares(journeys, shares, "markov", touched=touched))
    if from_totals is None:  # nothing split by totals: no shares, or no money journey touched
        assert shares is None or journeys.money.get_column("n_touches").max() in (0, None)
        return
    credit = allocate(journeys, fitted.weights(journeys), "markov")
    assert_frame_equal(from_totals, summarise(credit, journeys, touched=touched))
