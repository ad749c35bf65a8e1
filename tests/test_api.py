"""The notebook API mirrors the CLI on the demo export."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import attribution as at

DEMO = Path(__file__).parent.parent / "fixtures" / "demo" / "attribution.toml"


def test_notebook_workflow_on_the_demo(tmp_path):
    config = at.load_config(DEMO).replace(models=("last_touch", "w_shaped"), out=tmp_path)
    result = at.run(config)
    totals = result.totals()
    summary = result.summary
    for model in ("last_touch", "w_shaped"):
        rows = summary.filter(pl.col("model") == model)
        assert rows["revenue_credit"].sum() == totals["won_revenue"]
        assert rows["pipeline_credit"].sum() == totals["pipeline"]
    comparison = result.comparison()
    assert set(comparison["model"]) == {"last_touch", "w_shaped"}
    spend = at.read_spend(result)
    card = at.scorecard(result, spend)
    assert (card.filter(pl.col("model") == "w_shaped")["revenue_credit"].sum()
            == totals["won_revenue"])
    funnel = at.scorecard(result, spend, grain="quarter")
    assert set(funnel["channel_group"]) >= {"total", "demand_creation", "demand_capture"}
    plan = at.recommend_budget(result, spend, "w_shaped", shift=0.3)
    assert plan["recommended"].sum() == plan["current_spend"].sum()
    path = at.write_report(result, tmp_path / "report.html", spend=spend)
    assert path.exists() and path.stat().st_size > 100_000


def test_a_run_keeps_the_fitted_tables_of_its_credit_from_one_fit(monkeypatch):
    from attribution import pipeline
    from attribution.models.markov import MarkovModel

    fits = []
    fit = MarkovModel.fit
    monkeypatch.setattr(MarkovModel, "fit", lambda self, j: fits.append(1) or fit(self, j))
    config = at.load_config(DEMO).replace(models=("last_touch", "markov", "shapley",
                                                  "incremental"))
    result = at.run(config)
    assert len(fits) == 1  # the credit's fit, not a second one for the tables
    kept = pipeline.model_diagnostics(result)
    assert len(fits) == 1
    assert list(kept) == ["markov_removal_effects", "markov_transitions", "shapley_values",
                          "incremental_effects"]
    import dataclasses

    refit = pipeline.model_diagnostics(dataclasses.replace(result, diagnostics=None))
    assert len(fits) == 2
    assert list(refit) == list(kept)
    for name, table in kept.items():
        assert table.equals(refit[name]), name


def test_a_subclass_of_a_fitted_model_keeps_its_tables():
    from dataclasses import dataclass

    from attribution import pipeline
    from attribution.models.markov import MarkovModel

    @dataclass(frozen=True)
    class OwnMarkov(MarkovModel):  # a custom model: the fit of its parent, a name of its own
        name = "own_markov"

    config = at.load_config(DEMO).replace(models=("last_touch",))
    prepared = pipeline.prepare(config)
    tables: dict = {}
    pipeline.run_models(prepared.journeys, [OwnMarkov()], diagnostics=tables)
    assert list(tables) == ["own_markov_removal_effects", "own_markov_transitions"]
    expected = MarkovModel().fit(prepared.journeys).removal_effects()
    assert tables["own_markov_removal_effects"].equals(expected)


def test_a_run_that_lets_the_inputs_go_gives_the_same_results():
    from attribution import pipeline

    config = at.load_config(DEMO).replace(models=("last_touch", "w_shaped", "markov"))
    kept = pipeline.run(config)
    lean = pipeline.run(config, keep_inputs=False)
    assert kept.inputs is not None and lean.inputs is None
    assert lean.credit.equals(kept.credit)
    assert lean.summary.equals(kept.summary)
    assert lean.totals() == kept.totals()
    assert [a.as_dict() for a in lean.accounting] == [a.as_dict() for a in kept.accounting]
    # the scorecard counts leads from the inputs: refused, not a silent zero
    with pytest.raises(at.ConfigError, match="keep_inputs=True"):
        at.scorecard(lean, at.read_spend(lean))


def test_a_run_that_hands_its_credit_on_gives_the_same_results():
    from attribution import pipeline
    from attribution.schema import CREDIT_SCHEMA

    config = at.load_config(DEMO).replace(models=("last_touch", "w_shaped", "markov"))
    kept = pipeline.run(config)
    parts: list[pl.DataFrame] = []
    lean = pipeline.run(config, keep_inputs=False, keep_credit=False, on_credit=parts.append)
    assert [p["model"].unique().to_list() for p in parts] == [["last_touch"], ["w_shaped"],
                                                               ["markov"]]
    assert pl.concat(parts).equals(kept.credit)
    assert lean.credit.height == 0 and lean.credit.schema == CREDIT_SCHEMA
    assert lean.summary.equals(kept.summary)  # summarised a model at a time, the same table
    assert lean.comparison().equals(kept.comparison())
    assert lean.totals() == kept.totals()
    # handed on and kept too
    both: list[pl.DataFrame] = []
    again = pipeline.run(config, on_credit=both.append)
    assert again.credit.equals(kept.credit) and pl.concat(both).equals(kept.credit)


def test_a_models_shares_do_not_depend_on_the_models_run_with_it():
    from attribution import pipeline

    config = at.load_config(DEMO)
    alone = pipeline.run(config.replace(models=("last_touch",))).summary
    together = pipeline.run(config.replace(models=("linear", "last_touch"))).summary
    assert together.filter(pl.col("model") == "last_touch").equals(alone)
    # each share is the correctly rounded quotient of the integer cents
    total = alone["revenue_credit"].sum()
    assert alone["revenue_share"].to_list() == [c / total for c in alone["revenue_credit"]]


def test_a_run_that_let_its_credit_go_is_refused_by_the_scorecard():
    from attribution import pipeline

    config = at.load_config(DEMO).replace(models=("last_touch", "linear"))
    lean = pipeline.run(config, keep_credit=False)
    with pytest.raises(at.ConfigError, match="keep_credit=True"):
        at.scorecard(lean, at.read_spend(lean))


def test_a_model_named_twice_runs_once():
    from attribution import pipeline

    config = at.load_config(DEMO)
    once = pipeline.run(config.replace(models=("last_touch", "linear")))
    twice = pipeline.run(config.replace(models=("last_touch", "linear", "linear", "last_touch")))
    assert [m.name for m in twice.models] == ["last_touch", "linear"]
    assert twice.credit.equals(once.credit) and twice.summary.equals(once.summary)


def test_no_model_gives_an_empty_credit_table_with_its_schema():
    from attribution import pipeline
    from attribution.schema import CREDIT_SCHEMA

    prepared = pipeline.prepare(at.load_config(DEMO))
    credit, summary = pipeline.run_models(prepared.journeys, [])
    assert credit.height == 0 and credit.schema == CREDIT_SCHEMA
    assert summary.height == 0


def test_public_names_survive_their_submodules_loading() -> None:
    # the package loads its names when first used; `compare` is also a submodule's name
    import importlib

    import attribution

    importlib.import_module("attribution.compare")
    assert callable(attribution.compare) and attribution.compare.__name__ == "compare"
    assert set(attribution.__all__) <= set(dir(attribution))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        attribution.nothing_here  # noqa: B018
