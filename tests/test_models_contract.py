"""One battery of checks run against every registered model (a pytest id per model).

Like scikit-learn's ``parametrize_with_checks``: schema, no negative credit, credit summing to
each deal's amount and channel totals to total pipeline and revenue (to the cent, on random
exports drawn by hypothesis), a one-touch journey credited whole to its channel,
determinism, and independence from the order of input rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution import credit as credit_module
from attribution.credit import allocate, deals_touched, summarise
from attribution.errors import ModelError
from attribution.intervals import won_deals_touched
from attribution.journeys import Journeys, TouchRuns, build_journeys
from attribution.models import MODELS, base, get_model
from attribution.schema import CREDIT_SCHEMA, DETAIL_COLUMNS, NO_TOUCH_CHANNEL, WEIGHT_SCHEMA
from tests.factories import (
    STATED_CYCLE,
    WORKED_CONTACTS,
    WORKED_DEALS,
    WORKED_TOUCHES,
    contacts_frame,
    deals_frame,
    journeys_of,
    touches_frame,
    with_answers,
)

CHANNELS = ["podcast", "newsletter", "community", "paid_search", "direct", "review_sites"]
ALL_MODELS = sorted(MODELS)

touch_rows = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C", "D"]),
        st.sampled_from(["p", "q", "r"]),
        st.sampled_from(CHANNELS),
        st.integers(min_value=0, max_value=120).map(lambda d: f"2025-01-01T00:00:00+{d:02d}:00"
                                                    if False else d),
    ),
    min_size=1,
    max_size=40,
)
deal_rows = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C", "E"]),
        st.integers(min_value=20, max_value=140),
        st.sampled_from(["won", "lost", "open"]),
        st.integers(min_value=0, max_value=10_000_000),
    ),
    min_size=1,
    max_size=8,
)


def _export(touches, deals):
    from datetime import timedelta

    from tests.factories import at

    start = at("2025-01-01")
    touch_frame = touches_frame(
        [(a, f"{a}-{c}", ch, (start + timedelta(days=d, hours=d % 7)).isoformat()[:19])
         for a, c, ch, d in touches]
    )
    deal_frame = deals_frame(
        [
            (f"D{i}", a, (start + timedelta(days=day)).isoformat()[:19],
             (start + timedelta(days=day + 10)).isoformat()[:19] if status != "open" else None,
             status, amount)
            for i, (a, day, status, amount) in enumerate(deals)
        ]
    )
    return touch_frame, deal_frame


def _journeys(touches, deals):
    touch_frame, deal_frame = _export(touches, deals)
    return build_journeys(touch_frame, deal_frame, contacts_frame([]), lookback_days=30)[0]


def _for(name, journeys, cycle=STATED_CYCLE):
    """The journeys a model is checked on: with self-reported answers (a channel no touch
    carries, one a touch may carry, no answer, in turn) for a model that needs them."""
    if base.NEEDS_SELF_REPORTED in MODELS[name].needs:
        return with_answers(journeys, cycle)
    return journeys


def assert_weight_schema(weights: pl.DataFrame) -> None:
    """The weight contract: its four columns first, then only touch details credit has."""
    assert pl.Schema(list(weights.schema.items())[:4]) == WEIGHT_SCHEMA
    extra = weights.columns[4:]
    assert set(extra) <= set(DETAIL_COLUMNS)
    assert all(weights.schema[c] == CREDIT_SCHEMA[c] for c in extra)


@pytest.mark.parametrize("name", ALL_MODELS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows)
def test_conservation_to_the_cent(name, touches, deals):
    touch_frame, deal_frame = _export(touches, deals)
    journeys, _ = build_journeys(touch_frame, deal_frame, contacts_frame([]), lookback_days=30)
    journeys = _for(name, journeys)
    model = get_model(name)
    weights = model.weights(journeys).collect()
    assert_weight_schema(weights)
    assert (weights["weight"] >= 0).all()
    credit = allocate(journeys, model.weights(journeys), name).collect()
    assert credit.schema == CREDIT_SCHEMA
    assert (credit["pipeline_credit_cents"] >= 0).all()
    assert (credit["revenue_credit_cents"] >= 0).all()
    per_deal = credit.group_by("journey_id").agg(
        pl.col("pipeline_credit_cents").sum(), pl.col("revenue_credit_cents").sum()
    )
    expected = journeys.journeys.filter(pl.col("status") != "none").collect().select(
        "journey_id", pl.col("amount_cents").alias("pipeline_credit_cents"),
        pl.col("revenue_cents").alias("revenue_credit_cents"),
    )
    assert_frame_equal(per_deal, expected, check_row_order=False)
    summary = summarise(credit, journeys)
    assert summary["pipeline_credit_cents"].sum() == deal_frame["amount_cents"].sum()
    assert summary["revenue_credit_cents"].sum() == deal_frame.filter(pl.col("status") == "won")[
        "amount_cents"
    ].sum()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_one_touch_journeys_credit_their_channel_whole(name):
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("B", "y", "podcast", "2025-01-02")],
        [("D1", "A", "2025-01-03", "2025-01-20", "won", 12_345),
         ("D2", "B", "2025-01-03", "2025-01-20", "lost", 500)],
    )
    journeys = _for(name, journeys, cycle=())  # no answers: the recommended model's credit
    credit = allocate(journeys, get_model(name).weights(journeys), name).collect()
    assert credit.filter(pl.col("journey_id") == "D1").select(
        "channel", "pipeline_credit_cents", "revenue_credit_cents"
    ).rows() == [("podcast", 12_345, 12_345)]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_deal_without_touch_goes_to_no_touch(name):
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "x", "direct", "2025-01-04")],
        [("D1", "A", "2025-01-03", "2025-01-20", "won", 1_000),
         ("D2", "B", "2025-01-03", "2025-01-20", "won", 700)],
    )
    journeys = _for(name, journeys, cycle=())
    credit = allocate(journeys, get_model(name).weights(journeys), name).collect()
    assert credit.filter(pl.col("journey_id") == "D2").select(
        "channel", "revenue_credit_cents"
    ).rows() == [(NO_TOUCH_CHANNEL, 700)]


@pytest.mark.parametrize("name", ALL_MODELS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows, seed=st.randoms(use_true_random=False))
def test_deterministic_and_row_order_independent(name, touches, deals, seed):
    touch_frame, deal_frame = _export(touches, deals)
    order = list(range(touch_frame.height))
    seed.shuffle(order)
    shuffled = touch_frame[order]
    deal_order = list(range(deal_frame.height))
    seed.shuffle(deal_order)
    results = []
    for t, d in [(touch_frame, deal_frame), (touch_frame, deal_frame),
                 (shuffled, deal_frame[deal_order])]:
        journeys, _ = build_journeys(t, d, contacts_frame([]), lookback_days=30)
        journeys = _for(name, journeys)
        model = get_model(name)
        credit = allocate(journeys, model.weights(journeys), name).collect()
        results.append(credit.drop("touchpoint_id"))  # ids follow input rows in the factory
    assert_frame_equal(results[0], results[1])
    assert_frame_equal(results[0], results[2])


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if not MODELS[n].uses_population])
def test_per_journey_models_ignore_other_journeys(name):
    # a model that says uses_population=False gets only the money journeys in a run: its
    # weights there must equal its weights computed with every journey present
    journeys = journeys_of(
        [("A", "x", "podcast", "2025-01-01"), ("A", "y", "direct", "2025-01-04"),
         ("B", "z", "events", "2025-01-02"), ("C", "w", "newsletter", "2025-01-03")],
        [("D1", "A", "2025-01-03", "2025-01-20", "won", 1_000)],
    )
    model = get_model(name)
    full = model.weights(journeys).collect().filter(pl.col("journey_id") == "D1")
    assert_frame_equal(full, model.weights(journeys.with_money_only()).collect())


@pytest.mark.parametrize("name", ["linear", "w_shaped", "time_decay", "markov"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows, seed=st.integers(0, 2**16))
def test_credit_is_the_same_with_or_without_carried_details_and_in_any_row_order(
    name, touches, deals, seed
):
    journeys = _journeys(touches, deals)
    weights = get_model(name).weights(journeys).collect()
    reference = allocate(journeys, weights.lazy(), name).collect()
    bare = allocate(journeys, weights.select(WEIGHT_SCHEMA.names()).lazy(), name).collect()
    shuffled = weights.sample(fraction=1.0, shuffle=True, seed=seed)
    assert bare.equals(reference)
    assert allocate(journeys, shuffled.lazy(), name).collect().equals(reference)


@pytest.mark.parametrize("name", ALL_MODELS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows, seed=st.integers(0, 2**16))
def test_weights_are_the_same_whatever_the_layout_of_the_touches(name, touches, deals, seed):
    # per-journey sums and maxima run over each journey's run of rows: the built touches and
    # the same touches in shuffled rows (grouped into runs first) give the same weights
    journeys = _for(name, _journeys(touches, deals))
    shuffled = Journeys(
        touches=journeys.touches.collect().sample(fraction=1.0, shuffle=True, seed=seed).lazy(),
        journeys=journeys.journeys,
        as_of=journeys.as_of,
        stated=journeys.stated,
    )
    order = ["journey_id", "touch_index", "channel"]
    model = get_model(name)
    expected = model.weights(journeys).collect().sort(order, nulls_last=True)
    got = model.weights(shuffled).collect().sort(order, nulls_last=True)
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-15)


def test_with_journey_columns_is_a_left_join_on_the_journey_whatever_the_layout():
    # runs of one journey (b twice, apart), a journey the table lacks (z) and a null id
    touches = pl.DataFrame({"journey_id": ["b", "b", "a", "z", "b", None, None],
                            "touch_index": [0, 1, 0, 0, 2, 0, 1]})
    table = pl.LazyFrame({"journey_id": ["a", "b", "c"], "v": [1, 2, 3], "w": ["x", "y", "z"]})
    found = base.with_journey_columns(touches, table, ["v", "w"])
    joined = touches.join(table.collect(), on="journey_id", how="left", maintain_order="left")
    assert_frame_equal(found, joined)
    assert found.get_column("v").to_list() == [2, 2, 1, None, 2, None, None]
    assert base.with_journey_columns(touches.clear(), table, ["v"]).height == 0


def test_with_journey_columns_of_a_journey_listed_twice_is_the_row_level_join():
    touches = pl.DataFrame({"journey_id": ["x", "x", "y"], "touch_index": [0, 1, 0]})
    table = pl.DataFrame({"journey_id": ["x", "x", "y"], "v": [1, 2, 3]})
    found = base.with_journey_columns(touches, table, ["v"])
    assert_frame_equal(found, touches.join(table, on="journey_id", how="left",
                                           maintain_order="left"))
    assert found.get_column("v").to_list() == [1, 2, 1, 2, 3]


def test_run_normalised_scores_over_their_journey_an_even_split_at_zero_and_nan_kept():
    runs = TouchRuns.of(pl.DataFrame({"journey_id": ["a", "a", "b", "b", "c", "c"]}))
    raw = np.array([1.0, 3.0, 0.0, 0.0, np.nan, 1.0])
    weights = base.run_normalised(runs, raw)
    assert weights[:4].tolist() == [0.25, 0.75, 0.5, 0.5]
    assert np.isnan(weights[4:]).all()  # refused by allocate, not split evenly


def test_time_decay_refuses_a_journey_listed_twice():
    journeys = journeys_of(WORKED_TOUCHES, WORKED_DEALS, WORKED_CONTACTS)
    twice = Journeys(touches=journeys.touches,
                     journeys=pl.concat([journeys.journeys, journeys.journeys]))
    with pytest.raises(ModelError, match="listed twice"):
        get_model("time_decay").weights(twice)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows, seed=st.integers(0, 2**16),
       marked=st.booleans())
def test_deals_touched_counts_each_deal_once_per_channel_in_any_layout(touches, deals, seed,
                                                                      marked):
    journeys = _journeys(touches, deals)
    rows = journeys.touches.collect()
    rows = rows.with_columns(  # a touch without a channel counts as its own (null) channel
        pl.when(pl.col("touch_index") == 1).then(None).otherwise(pl.col("channel"))
        .alias("channel"))
    shuffled = Journeys(touches=rows.sample(fraction=1.0, shuffle=True, seed=seed).lazy(),
                        journeys=journeys.journeys)
    money = journeys.journeys.filter(pl.col("status") != "none").collect()
    expected = {
        **dict(rows.join(money, on="journey_id", how="semi").select("journey_id", "channel")
               .unique().group_by("channel").len().iter_rows()),
        NO_TOUCH_CHANNEL: int((money.get_column("n_touches") == 0).sum()),
    }
    with pytest.MonkeyPatch.context() as patch:
        if not marked:  # the sorted count, as for very many journeys and channels
            patch.setattr(credit_module, "_MARKED_CELLS", 0)
        every = Journeys(touches=rows.lazy(), journeys=journeys.journeys)
        for scope in (every, shuffled, every.with_money_only()):
            got = deals_touched(scope)
            assert got.schema == pl.Schema({"channel": pl.String, "deals_touched": pl.UInt32})
            assert dict(got.iter_rows()) == expected
            assert_frame_equal(won_deals_touched(scope), _plain_won_deals_touched(scope))


def _plain_won_deals_touched(journeys: Journeys) -> pl.DataFrame:
    """The won deals (a path row's conversions) each channel touched, by a join and a
    group-by: the reference :func:`attribution.intervals.won_deals_touched` is compared with."""
    won = (journeys.journeys.filter(pl.col("status").is_in(["won", "path"]))
           .select("journey_id", "n_touches",
                   pl.when(pl.col("status") == "won").then(1)
                   .otherwise(pl.col("conversions").fill_null(0)).cast(pl.Int64).alias("_won"))
           .filter(pl.col("_won") > 0).collect())
    touched = (
        journeys.touches.select("journey_id", "channel").unique().collect()
        .join(won, on="journey_id", how="inner")
        .group_by("channel").agg(pl.col("_won").sum().alias("won_deals_touched"))
    )
    untouched = pl.DataFrame({
        "channel": [NO_TOUCH_CHANNEL],
        "won_deals_touched": [int(won.filter(pl.col("n_touches") == 0)
                                  .get_column("_won").sum())],
    }, schema={"channel": pl.String, "won_deals_touched": pl.Int64})
    return pl.concat([touched.with_columns(pl.col("won_deals_touched").cast(pl.Int64)),
                      untouched]).sort("channel")
