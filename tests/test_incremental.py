"""The time-ordered incremental model (the shared contract runs in test_models_contract.py)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from attribution.credit import allocate
from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.models import get_model
from attribution.models.incremental import EFFECT_SCHEMA, IncrementalModel
from attribution.schema import WEIGHT_SCHEMA
from tests.factories import channel_credit, journeys_of


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
            "revenue": [3_000_000, 500_000, 0],
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
