"""The notebook API mirrors the CLI on the demo export."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import attribution as at
from attribution.output import money_to_decimal
from attribution.schema import MONEY_COLUMNS, major_name

DEMO = Path(__file__).parent.parent / "fixtures" / "demo" / "attribution.toml"


def test_notebook_workflow_on_the_demo(tmp_path):
    config = at.load_config(DEMO).replace(models=("last_touch", "w_shaped"), out=tmp_path)
    result = at.run(config)
    totals = result.totals()
    summary = result.summary
    for model in ("last_touch", "w_shaped"):
        rows = summary.filter(pl.col("model") == model)
        assert rows["revenue_credit_cents"].sum() == totals["won_revenue_cents"]
        assert rows["pipeline_credit_cents"].sum() == totals["pipeline_cents"]
    comparison = result.comparison()
    assert set(comparison["model"]) == {"last_touch", "w_shaped"}
    spend = at.read_spend(result)
    card = at.scorecard(result, spend)
    assert (card.filter(pl.col("model") == "w_shaped")["revenue_credit_cents"].sum()
            == totals["won_revenue_cents"])
    funnel = at.scorecard(result, spend, grain="quarter")
    assert set(funnel["channel_group"]) >= {"total", "demand_creation", "demand_capture"}
    plan = at.recommend_budget(result, spend, "w_shaped", shift=0.3)
    assert plan["recommended_cents"].sum() == plan["current_spend_cents"].sum()
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
    total = alone["revenue_credit_cents"].sum()
    assert alone["revenue_share"].to_list() == [c / total for c in alone["revenue_credit_cents"]]


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


# -- every money column names its unit (issue #21, item 7) ------------------------------------
#: the money columns' names in major units (the files' names): a column of an API table whose
#: name, without a ``_cents`` suffix, is one of these holds money (``amount`` and ``revenue``
#: too: the models' input has no exception)
MONEY_NAMES = {major_name(c) for c in MONEY_COLUMNS} | {"value", "shapley_value",
                                                       "standard_error"}


def unnamed_money(name: str, frame: pl.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold money without saying its unit: a money column must be
    ``*_cents`` (integer, or a float estimate) or a Decimal in major units."""
    wrong = []
    for column, dtype in frame.schema.items():
        if major_name(column) not in MONEY_NAMES:
            continue
        if column.endswith("_cents"):
            if not (dtype.is_integer() or dtype.is_float()):
                wrong.append(f"{name}.{column}: {dtype}, not minor units")
        elif not isinstance(dtype, pl.Decimal) and dtype != pl.Null:
            # a conversions-valued Shapley table is not money
            if not (name.endswith("shapley_values") and column in {"shapley_value",
                                                                   "standard_error"}):
                wrong.append(f"{name}.{column}: {dtype} without _cents")
    return wrong


def test_a_money_column_without_its_unit_is_found():
    # the check below can fail: the journeys' and the exports' old names are money without a
    # unit, and so is a money column of the wrong type
    old = pl.DataFrame({"journey_id": ["d1"], "amount": [100], "revenue": [100],
                        "revenue_cents": ["1.00"], "channel": ["email"]})
    assert unnamed_money("journeys", old) == [
        "journeys.amount: Int64 without _cents", "journeys.revenue: Int64 without _cents",
        "journeys.revenue_cents: String, not minor units"]
    assert unnamed_money("file", pl.DataFrame({"amount": [1]}, schema={"amount": pl.Decimal(
        38, 2)})) == []


def test_every_money_column_of_every_api_table_says_its_unit(tmp_path):
    from attribution import budget as budgeting
    from attribution import db, graph, pipeline
    from attribution.intervals import with_intervals

    config = at.load_config(DEMO).replace(
        models=("last_touch", "linear", "markov", "shapley", "incremental"), bootstrap=20,
        model_params={"shapley": {"value": "revenue"}})
    result = with_intervals(at.run(config))
    spend = at.read_spend(result)
    plan = at.recommend_budget(result, spend, "linear")
    proposal = plan.select("channel", (pl.col("recommended_cents") * 2).alias("spend_cents"))
    history = tmp_path / "history.duckdb"
    db.write_result_set(history, {"summary": result.summary},
                        {"currency": result.currency, "totals": result.totals()})
    tables = {
        "credit": result.credit, "summary": result.summary, "comparison": result.comparison(),
        **pipeline.model_diagnostics(result),
        "scorecard": at.scorecard(result, spend),
        "funnel": at.scorecard(result, spend, grain="month"),
        "budget": plan, "what_if": budgeting.what_if(proposal, result.summary, spend, "linear"),
        "spend.daily": spend.daily, "spend.rows": spend.rows,
        "history": db.history(history),
        "channel_history": db.channel_history(history, "podcast", "linear"),
        # the models' input and the path tables made from it
        "journeys": result.journeys.journeys.collect(),
        "touches": result.journeys.touches.collect(),
        "journeys.money": result.journeys.money,
        # (their rejects' ``value`` is the cell's text, not money)
        **{f"inputs.{name}": frame for name, frame in vars(result.inputs).items()
           if isinstance(frame, pl.DataFrame) and name != "rejects"},
        "distinct_paths": graph.distinct_paths(result.journeys),
        "top_paths": graph.top_paths(result.journeys),
        "path_lengths": graph.path_length_distribution(result.journeys),
        "time_to_close": graph.time_to_close_distribution(result.journeys),
    }
    assert {"amount_cents", "revenue_cents"} <= set(tables["journeys"].columns)
    assert "amount_cents" in tables["inputs.deals"].columns
    assert "amount_cents" in tables["spend.rows"].columns
    assert "revenue_cents" in tables["distinct_paths"].columns
    assert "revenue_credit_low_cents" in tables["summary"].columns  # the intervals' bounds too
    assert "shapley_value_cents" in tables["shapley_values"].columns
    wrong = [problem for name, frame in tables.items() for problem in unnamed_money(name, frame)]
    assert wrong == []
    # the totals name theirs too
    assert {"won_revenue_cents", "pipeline_cents"} <= set(result.totals())
    assert not {"won_revenue", "pipeline"} & set(result.totals())  # money: keep name
    # every money column the library writes is named in minor units, the models' input too
    assert {c for c in MONEY_COLUMNS if not c.endswith("_cents")} == set()
    # and the files drop the suffix, in major units: what the writers give for the summary
    written = money_to_decimal(result.summary)
    # money: keep names from here
    assert "revenue_credit" in written.columns and "revenue_credit_cents" not in written.columns
    assert isinstance(written.schema["revenue_credit"], pl.Decimal)
    # money: keep names to here
    assert unnamed_money("summary file", written) == []


def test_public_names_survive_their_submodules_loading() -> None:
    # the package loads its names when first used; `compare` is also a submodule's name
    import importlib

    import attribution

    importlib.import_module("attribution.compare")
    assert callable(attribution.compare) and attribution.compare.__name__ == "compare"
    assert set(attribution.__all__) <= set(dir(attribution))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        attribution.nothing_here  # noqa: B018
