"""The time-ordered incremental model (the shared contract runs in test_models_contract.py)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution.credit import allocate
from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.models import get_model
from attribution.models.incremental import EFFECT_SCHEMA, IncrementalModel
from attribution.schema import WEIGHT_SCHEMA
from tests.factories import channel_credit, journeys_of
from tests.test_models_contract import _journeys, deal_rows, touch_rows


def _brand_world(after_creation: bool = False) -> Journeys:
    """Twenty accounts hear the podcast, then click a paid-search ad and buy (won, $1,000);
    twenty hear the podcast and never search (no deal); twenty click an ad without the
    podcast and lose. The podcast matters only through the searches it brings."""
    touches, deals = [], []
    for i in range(20):
        touches += [(f"b{i}", f"b{i}", "podcast", "2025-01-01"),
                    (f"b{i}", f"b{i}", "paid_search", "2025-01-10")]  # fmt: skip
        if after_creation:  # between creation (01-12) and close (01-20): cannot cause the deal
            touches.append((f"b{i}", f"b{i}", "direct", "2025-01-15"))
        deals.append((f"Db{i}", f"b{i}", "2025-01-12", "2025-01-20", "won", 100_000))
        touches.append((f"c{i}", f"c{i}", "podcast", "2025-01-01"))
        touches.append((f"s{i}", f"s{i}", "paid_search", "2025-01-10"))
        deals.append((f"Ds{i}", f"s{i}", "2025-01-12", "2025-01-20", "lost", 100_000))
    return journeys_of(touches, deals)


def test_the_podcast_is_credited_with_the_searches_it_causes():
    journeys = _brand_world()
    fit = IncrementalModel().fit(journeys)
    effects = fit.effects()
    assert effects.schema == EFFECT_SCHEMA
    # the podcast's first touch always comes first: it is upstream of paid search
    assert effects["channel"].to_list() == ["podcast", "paid_search"]
    assert effects["position"].to_list() == [0.0, 1.0]
    # P(won | podcast) = 20/40 against 0/20 without; P(won | podcast, search) = 20/20
    # against 0/20 for the podcast alone: both effects are large and positive
    assert effects["conversion_effect"].min() > 1.0
    credit = allocate(journeys, fit.weights(journeys), "incremental").collect()
    won = channel_credit(credit.filter(pl.col("status") == "won"))
    last = channel_credit(
        allocate(journeys, get_model("last_touch").weights(journeys), "last_touch")
        .collect()
        .filter(pl.col("status") == "won")
    )
    assert last == {"paid_search": 2_000_000}  # last-touch: none to the podcast
    assert sum(won.values()) == 2_000_000
    # here the podcast's total effect (~ +0.5 in win probability, shrunk by the ridge) is
    # about half paid search's (~ +1 given the podcast): roughly a third of the revenue
    assert 0.2 < won["podcast"] / 2_000_000 < 0.5


def test_touches_after_the_deal_was_created_get_no_credit():
    journeys = _brand_world(after_creation=True)
    weights = IncrementalModel().weights(journeys).collect()
    assert weights.select(WEIGHT_SCHEMA.names()).schema == WEIGHT_SCHEMA
    direct = weights.filter(pl.col("channel") == "direct")
    assert direct.height == 20 and direct["weight"].to_list() == [0.0] * 20
    # ... unless every touch came after creation: then split evenly over them
    late = journeys_of(
        [("A", "a", "direct", "2025-01-15"), ("A", "a", "email", "2025-01-16")],
        [("D1", "A", "2025-01-12", "2025-01-20", "won", 1_000)],
    )
    assert IncrementalModel().weights(late).collect()["weight"].to_list() == [0.5, 0.5]
    # before_creation=False uses them as features and credits them
    every = IncrementalModel(before_creation=False).weights(journeys).collect()
    assert every.filter(pl.col("channel") == "direct")["weight"].sum() > 0


def test_conversions_value_and_revenue_value_agree_when_amounts_are_equal():
    journeys = _brand_world()
    revenue = IncrementalModel().weights(journeys).collect()
    conversions = IncrementalModel(value="conversions").weights(journeys).collect()
    assert_frame_equal(revenue, conversions, check_exact=False, abs_tol=1e-6)


def test_deterministic():
    journeys = _brand_world(after_creation=True)
    first, second = IncrementalModel().fit(journeys), IncrementalModel().fit(journeys)
    assert_frame_equal(first.effects(), second.effects())
    assert_frame_equal(first.weights(journeys).collect(), second.weights(journeys).collect())


def test_path_tables_work_without_timestamps():
    touches = pl.DataFrame(
        {
            "journey_id": ["p1", "p1", "p2", "p3"],
            "touch_index": [0, 1, 0, 0],
            "channel": ["podcast", "paid_search", "paid_search", "podcast"],
        }
    )
    rows = pl.DataFrame(
        {
            "journey_id": ["p1", "p2", "p3"],
            "status": ["path"] * 3,
            "n_touches": [2, 1, 1],
            "conversions": [30, 5, 0],
            "nulls": [10, 40, 50],
            "revenue_cents": [3_000_000, 500_000, 0],
        }
    )
    journeys = Journeys.from_frames(touches, rows, has_timestamps=False, has_milestones=False)
    weights = IncrementalModel().weights(journeys).collect()
    sums = weights.group_by("journey_id").agg(pl.col("weight").sum()).sort("journey_id")
    assert sums["weight"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert weights.filter(pl.col("journey_id") == "p1")["weight"].min() > 0


def test_nothing_to_fit_splits_evenly():
    open_only = journeys_of(
        [("A", "a", "podcast", "2025-01-01"), ("A", "a", "direct", "2025-01-02")],
        [("D1", "A", "2025-01-12", None, "open", 1_000)],
    )
    assert IncrementalModel().weights(open_only).collect()["weight"].to_list() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"l2": -1}, "incremental: l2 must be >= 0, not -1.0"),
        ({"value": "profit"}, "incremental: value 'profit' is not one of: revenue, conversions"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ConfigError) as error:
        get_model("incremental", **params)
    assert str(error.value) == message


# -- the weighted fit (a bootstrap's refit) against the plain fit on copied journeys ----------

WEIGHTED_VARIANTS = ({}, {"before_creation": False}, {"value": "conversions"}, {"l2": 0.25})


def _copies_of(journey_id: str) -> str:
    """The original id of a copy made by :func:`attribution.intervals.resampled_journeys`."""
    return journey_id.split("\x1e")[0]


def _cents(credit: pl.DataFrame) -> dict[str, list[tuple]]:
    """Per journey (copies under their original's id), its sorted credit rows."""
    rows: dict[str, list[tuple]] = {}
    for journey, channel, index, revenue, pipeline in credit.select(
            "journey_id", "channel", "touch_index", "revenue_credit_cents",
            "pipeline_credit_cents").iter_rows():
        rows.setdefault(journey, []).append((channel, index, revenue, pipeline))
    return {journey: sorted(found) for journey, found in rows.items()}


def _assert_weighted_equals_copies(journeys: Journeys, weights, params: dict) -> None:
    import numpy as np

    from attribution.intervals import resampled_journeys

    model = IncrementalModel(**params)
    counts = np.asarray(weights, dtype=np.int64)
    copies = resampled_journeys(journeys, counts)
    plain = model.fit(copies)
    prepared = model.weighted(journeys)
    weighted = prepared.fit(counts)
    # effects: the same channels in the same time order, the same numbers
    assert_frame_equal(weighted.effects(), plain.effects(), check_exact=False, rel_tol=1e-9,
                       abs_tol=1e-9)
    # credit: every copy of a drawn deal gets, to the cent, what the weighted fit gives it
    ids = journeys.journeys.select("journey_id").collect().get_column("journey_id")
    drawn = ids.filter(pl.Series(counts > 0))
    mine = _cents(allocate(journeys, weighted.weights(journeys), "incremental").collect()
                  .filter(pl.col("journey_id").is_in(drawn.implode())))
    theirs = allocate(copies, plain.weights(copies), "incremental").collect()
    for journey, rows in _cents(theirs).items():
        assert rows == mine[_copies_of(journey)], journey
    copied = {_copies_of(j) for j in theirs.get_column("journey_id").to_list()}
    assert copied == set(mine)
    # the bootstrap's channel revenue: the copies' cents before rounding (a cent per deal)
    summed = dict(theirs.group_by("channel").agg(pl.col("revenue_credit_cents").sum()).iter_rows())
    found = prepared.revenue_credit(counts)
    # (a channel the weights give nothing is listed with 0, as the bootstrap's naive rerun
    # lists it; allocate leaves out rows without credit)
    assert set(summed) <= set(found)
    for channel, value in found.items():
        assert abs(value - summed.get(channel, 0)) <= len(copied) + 1e-6, channel


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows,
       weights=st.lists(st.integers(0, 3), min_size=16, max_size=16),
       variant=st.sampled_from(WEIGHTED_VARIANTS))
def test_the_weighted_fit_equals_the_fit_on_copied_journeys(touches, deals, weights, variant):
    import numpy as np

    journeys = _journeys(touches, deals)
    n_journeys = journeys.journeys.collect().height
    counts = np.resize(np.asarray(weights), n_journeys)
    assume(counts.sum() > 0)
    _assert_weighted_equals_copies(journeys, counts, variant)


def test_the_weighted_fit_equals_the_fit_on_copied_demo_journeys():
    from attribution import pipeline
    from attribution.config import load_config
    from attribution.intervals import draw_counts, resampling_units

    journeys = pipeline.prepare(load_config("fixtures/demo/attribution.toml")).journeys
    units, n_units, _ = resampling_units(journeys)
    _assert_weighted_equals_copies(journeys, draw_counts(n_units, 1, seed=11)[0, units], {})
    # weighted by ones, the weighted fit is the plain fit, byte for byte
    ones = [1] * units.size
    plain, weighted = IncrementalModel().fit(journeys), IncrementalModel().weighted(journeys)
    assert weighted.fit(ones).effects().equals(plain.effects())
    assert weighted.fit(ones).weights(journeys).collect().equals(
        plain.weights(journeys).collect())


@pytest.mark.parametrize("weights", [[1, 1], [1, -1], [0.5, 1], [1]])
def test_weights_must_be_whole_numbers_one_per_journey(weights):
    from attribution.errors import ModelError

    journeys = _brand_world()
    n_journeys = journeys.journeys.collect().height
    weighted = IncrementalModel().weighted(journeys)
    counts = (weights * n_journeys)[:n_journeys] if len(weights) == 2 else weights
    if len(weights) == 2 and weights == [1, 1]:
        assert weighted.fit(counts).effects().equals(IncrementalModel().fit(journeys).effects())
        return
    with pytest.raises(ModelError, match="whole-number journey weights >= 0"):
        weighted.fit(counts)


def test_positions_are_exact_means_and_ties_go_by_name():
    # each channel is first in one two-channel journey and second in the other: both at
    # exactly 0.5, so the name decides; counted twice, nothing changes
    touches = [("a", "a", "podcast", "2025-01-01"), ("a", "a", "events", "2025-01-02"),
               ("b", "b", "events", "2025-01-01"), ("b", "b", "podcast", "2025-01-02")]
    deals = [("D1", "a", "2025-01-05", "2025-01-09", "won", 1_000),
             ("D2", "b", "2025-01-05", "2025-01-09", "lost", 1_000)]
    journeys = journeys_of(touches, deals)
    effects = IncrementalModel().fit(journeys).effects()
    assert effects["channel"].to_list() == ["events", "podcast"]
    assert effects["position"].to_list() == [0.5, 0.5]
    # D1 (podcast, then events) counted twice: podcast at (0*2 + 1)/3, events at (1*2 + 0)/3
    doubled = IncrementalModel().weighted(journeys).fit([2, 1]).effects()
    assert doubled["channel"].to_list() == ["podcast", "events"]
    assert doubled["position"].to_list() == [1 / 3, 2 / 3]


# -- fitted from tallies (summed over disjoint parts, as the Spark engine sums them) ----------

#: priors over the contract's journeys (January to May 2025): each metric, a channel tested
#: twice, one with a negative lift, one the journeys may not have
TALLY_PRIORS = (
    ("paid_search", "2025-01-01", "2025-03-31", "revenue", 250_000),
    ("podcast", "2025-02-01", "2025-05-31", "pipeline", 1_000_000),
    ("paid_search", "2025-04-01", "2025-05-31", "revenue", -3),
    ("tiktok", "2025-01-01", "2025-05-31", "revenue", 10),
)
TALLY_VARIANTS = (*WEIGHTED_VARIANTS, {"priors": TALLY_PRIORS},
                  {"priors": TALLY_PRIORS[1:2], "before_creation": False})


def _part(journeys: Journeys, ids: list[str]) -> Journeys:
    """The journeys ``ids`` (with their touches): a part of a split by journey."""
    keep = pl.col("journey_id").is_in(pl.Series(ids, dtype=pl.String).implode())
    return Journeys(touches=journeys.touches.filter(keep), journeys=journeys.journeys.filter(keep),
                    as_of=journeys.as_of)


def _assert_tallied_fit_is_the_fit(journeys: Journeys, parts: list[int], params: dict) -> None:
    """Tally each part of ``journeys`` (journey ``j`` in part ``parts[j]``), stack the tables
    and fit on them: the effects and the lookup of the plain fit on every journey, bit for
    bit, and so the same cents."""
    import numpy as np

    model = IncrementalModel(**params)
    plain = model.fit(journeys)
    ids = journeys.journeys.select("journey_id").collect().get_column("journey_id").to_list()
    split = np.resize(np.asarray(parts), len(ids))
    tallies = [model.tally(_part(journeys, [j for j, p in zip(ids, split, strict=True) if p == k]))
               for k in sorted(set(split.tolist()))]
    for tally in tallies:  # bounded by channel sets, not touches or journeys
        assert tally["sets"].height == tally["sets"].get_column("channels").n_unique()
    fit = model.fit_tallies({name: pl.concat([t[name] for t in tallies])
                             for name in ("positions", "sets")})
    assert fit.channels == plain.channels
    assert_frame_equal(fit.effects(), plain.effects(), check_exact=True)
    assert_frame_equal(fit._key_scores, plain._key_scores, check_exact=True)
    mine = allocate(journeys, fit.weights(journeys), "incremental").collect()
    theirs = allocate(journeys, plain.weights(journeys), "incremental").collect()
    assert_frame_equal(mine, theirs, check_exact=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows,
       parts=st.lists(st.integers(0, 3), min_size=1, max_size=16),
       variant=st.sampled_from(TALLY_VARIANTS))
def test_tallies_summed_over_parts_give_the_plain_fit_exactly(touches, deals, parts, variant):
    _assert_tallied_fit_is_the_fit(_journeys(touches, deals), parts, variant)


@pytest.mark.parametrize("params", [{}, {"value": "conversions", "before_creation": False},
                                    {"priors": TALLY_PRIORS}])
def test_tallies_of_the_demo_give_its_plain_fit_exactly(params):
    from attribution import pipeline
    from attribution.config import load_config

    journeys = pipeline.prepare(load_config("fixtures/demo/attribution.toml")).journeys
    _assert_tallied_fit_is_the_fit(journeys, [0, 1, 2, 1, 3, 0, 0, 2, 4], params)
    # a tally holds a row per channel set (as many as the fit's patterns) and per channel and
    # gap, however many journeys and touches
    tally = IncrementalModel().tally(journeys)
    fit = IncrementalModel().fit(journeys)
    assert tally["sets"].height == fit._key_scores.get_column("mask").n_unique()
    assert tally["sets"].height < journeys.journeys.collect().height
    assert tally["positions"].height <= len(fit.channels) ** 2


def test_the_tallies_of_no_journeys_have_their_schemas():
    from attribution.models.incremental import POSITION_TALLY_SCHEMA, SET_TALLY_SCHEMA

    nothing = Journeys.from_frames(pl.DataFrame(), pl.DataFrame())
    tally = IncrementalModel(priors=TALLY_PRIORS[:1]).tally(nothing)
    assert tally["positions"].schema == POSITION_TALLY_SCHEMA
    assert tally["sets"].schema == pl.Schema({**SET_TALLY_SCHEMA, "_prior0": pl.Int64,
                                              "_prior0_missing": pl.Int64})
    assert IncrementalModel().fits_from_tallies()
