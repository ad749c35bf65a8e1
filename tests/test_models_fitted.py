"""The fitted battery: every model that learns from the population (a pytest id per model).

A fitted model declares what its fit reads (``fit_input``) and what it returns (``fit_type``);
its weights are its fit's. The battery checks that the declaration is enforced when a class is
defined, that every fit's tables are written by a run, that refitting the same data gives the
same fit, that a fit survives pickling (an engine ships it to other processes) and that, where
the tag says the fit merges, a fit on partitions' summed path counts equals the fit on the
whole.
"""

from __future__ import annotations

import pickle
import zlib
from dataclasses import dataclass
from typing import ClassVar

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution import pipeline
from attribution.config import load_config
from attribution.errors import ModelError
from attribution.journeys import Journeys
from attribution.models import MODELS, get_model
from attribution.models.base import AttributionModel, Fit, FitInput, WeightedFits
from attribution.models.counts import merge_path_counts, path_counts
from attribution.schema import MONEY_COLUMNS, major_name
from tests.test_models_contract import _journeys, deal_rows, touch_rows

FITTED = sorted(name for name, cls in MODELS.items() if cls.fit_input is not None)
MERGING = sorted(name for name in FITTED if MODELS[name].fit_input.merges)
DEMO = "fixtures/demo/attribution.toml"


def test_the_fitted_models_and_their_tags():
    tags = {name: MODELS[name].fit_input for name in FITTED}
    assert tags == {"incremental": FitInput.JOURNEYS, "markov": FitInput.PATH_COUNTS,
                    "shapley": FitInput.CHANNEL_SETS}
    for name, cls in MODELS.items():
        assert (cls.fit_type is None) == (cls.fit_input is None), name


def test_a_model_that_says_it_fits_must_implement_fit():
    with pytest.raises(TypeError, match="declares fit_input='journeys', so it must implement "
                                        r"fit\(journeys\) -> Fit and name the Fit subclass"):
        @dataclass(frozen=True)
        class NoFit(AttributionModel):
            name: ClassVar[str] = "no_fit"
            fit_input: ClassVar[FitInput | None] = FitInput.JOURNEYS


def test_a_fitted_model_takes_its_weights_from_its_fit():
    from attribution.models.markov import MarkovModel

    with pytest.raises(TypeError, match=r"take its weights from its fit \(Fit.weights\)"):
        @dataclass(frozen=True)
        class OwnWeights(MarkovModel):
            def weights(self, journeys):
                return super().weights(journeys)


@pytest.mark.parametrize("missing", ["weights", "tables"])
def test_a_fit_must_implement_weights_and_tables(missing):
    body = {
        "weights": lambda self, journeys: pl.LazyFrame(),
        "tables": lambda self: {},
    }
    del body[missing]
    with pytest.raises(TypeError, match=f"HalfFit is a Fit and must implement {missing}"):
        type("HalfFit", (Fit,), body)


@pytest.mark.parametrize("name", FITTED)
def test_a_run_writes_every_table_of_every_fit(name, tmp_path):
    from click.testing import CliRunner

    from attribution.cli import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["-q", "run", "--config", DEMO, "--model", "last_touch",
                                      "--model", name, "--out", str(out), "--out-format", "csv"])
    assert result.exit_code == 0, result.output
    config = load_config(DEMO)
    fit = get_model(name, **config.params_for(name)).fit(pipeline.prepare(config).journeys)
    assert fit.tables(), name
    for table, frame in fit.tables().items():
        written = pl.read_csv(out / f"{name}_{table}.csv")
        # the file names a money column it gives in major units without the in-memory
        # ``_cents`` (an integer one it keeps in minor units, value_cents, keeps its name)
        assert written.columns == [major_name(c) if c in MONEY_COLUMNS else c
                                   for c in frame.columns]
        assert written.height == frame.height


@pytest.fixture(scope="module")
def demo_journeys() -> Journeys:
    return pipeline.prepare(load_config(DEMO)).journeys


def _assert_same_tables(first: Fit, second: Fit) -> None:
    one, two = first.tables(), second.tables()
    assert list(one) == list(two)
    for table in one:
        assert_frame_equal(one[table], two[table], check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("name", FITTED)
def test_refitting_the_same_data_gives_the_same_fit(name, demo_journeys):
    model = get_model(name)
    first, second = model.fit(demo_journeys), model.fit(demo_journeys)
    for table in first.tables():
        assert first.tables()[table].equals(second.tables()[table]), table
    assert first.weights(demo_journeys).collect().equals(
        second.weights(demo_journeys).collect())


@pytest.mark.parametrize("name", FITTED)
def test_a_pickled_fit_weighs_like_the_fit_it_came_from(name, demo_journeys):
    fit = get_model(name).fit(demo_journeys)
    shipped = pickle.loads(pickle.dumps(fit))
    for attribute in type(fit).transient:
        assert getattr(shipped, attribute) is None  # caches tied to the journeys stay home
    _assert_same_tables(fit, shipped)
    # scored from scratch on journeys it holds no cache for, the weights are the fit's own
    assert_frame_equal(shipped.weights(demo_journeys).collect(),
                       fit.weights(demo_journeys).collect())


def _partition(journeys: Journeys, parts: int) -> list[Journeys]:
    """Journeys split by journey id into ``parts`` disjoint sets (as an engine's hash
    partitions of accounts would)."""
    table = journeys.journeys.collect()
    part = pl.Series([zlib.crc32(j.encode()) % parts for j in table["journey_id"]])
    pieces = []
    for index in range(parts):
        ids = table.filter(part == index).select("journey_id")
        pieces.append(Journeys(
            touches=journeys.touches.join(ids.lazy(), on="journey_id", how="semi",
                                          maintain_order="left"),
            journeys=ids.lazy().join(journeys.journeys, on="journey_id", how="left"),
            has_timestamps=journeys.has_timestamps,
            has_milestones=journeys.has_milestones,
            as_of=journeys.as_of,
        ))
    return pieces


@pytest.mark.parametrize("name", MERGING)
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_a_fit_merged_from_partitions_equals_the_fit_on_the_whole(name, parts, demo_journeys):
    model = get_model(name)
    whole = model.fit(demo_journeys)
    merged = model.fit_counts(merge_path_counts(path_counts(p) for p in _partition(demo_journeys,
                                                                                   parts)))
    _assert_same_tables(whole, merged)


@pytest.mark.parametrize("name", MERGING)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(touches=touch_rows, deals=deal_rows, parts=st.integers(1, 4))
def test_merged_fits_equal_whole_fits_on_random_exports(name, touches, deals, parts):
    journeys = _journeys(touches, deals)
    variants = {"markov": ({}, {"include_open": True}, {"order": 2}),
                "shapley": ({}, {"variant": "rate"}, {"variant": "ordered"})}
    for params in variants[name]:
        model = get_model(name, **params)
        counts = merge_path_counts(path_counts(p) for p in _partition(journeys, parts))
        _assert_same_tables(model.fit(journeys), model.fit_counts(counts))


def test_a_fit_on_every_journey_refuses_path_counts(demo_journeys):
    with pytest.raises(ModelError, match="'incremental' fits on every journey at once"):
        get_model("incremental").fit_counts(path_counts(demo_journeys))


def test_the_models_refitted_under_journey_weights():
    from attribution.models.incremental import IncrementalWeightedFits
    from attribution.models.shapley import ShapleyWeightedFits

    weighted = {name: MODELS[name].weighted_type for name in FITTED
                if MODELS[name].weighted_type is not None}
    assert weighted == {"incremental": IncrementalWeightedFits, "shapley": ShapleyWeightedFits}
    with pytest.raises(ModelError, match="'markov' cannot be fitted under journey weights"):
        get_model("markov").weighted(pipeline.prepare(load_config(DEMO)).journeys)


def test_a_weighted_type_must_be_weighted_fits():
    from attribution.models.incremental import IncrementalModel

    with pytest.raises(TypeError, match="name a WeightedFits subclass"):
        @dataclass(frozen=True)
        class Misnamed(IncrementalModel):
            weighted_type: ClassVar = Fit  # type: ignore[assignment]


@pytest.mark.parametrize("missing", ["prepare", "fit", "revenue_credit"])  # money: keep name
def test_weighted_fits_must_implement_prepare_fit_and_revenue_credit(missing):
    body = {
        "prepare": classmethod(lambda cls, model, journeys: cls()),
        "fit": lambda self, weights: None,
        "revenue_credit": lambda self, weights: {},  # money: keep name
    }
    del body[missing]
    with pytest.raises(TypeError, match=f"HalfWeighted is a WeightedFits and must implement "
                                        f"{missing}"):
        type("HalfWeighted", (WeightedFits,), body)
