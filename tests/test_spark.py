"""The Spark engine gives the polars engine's results: same credit to the cent, same summary,
same rejects and messages, same accounting.

Runs Spark in local mode with one session for the module. Skipped when pyspark is not
installed, unless the environment variable CI is set (CI installs the ``spark`` extra, so a
missing pyspark there is a failure).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from attribution.models.self_reported import SELF_REPORTED_MODELS
from tests.factories import rejected_and_blanked_contacts

try:
    import pyspark  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("pyspark is not installed (pip install 'revenue-attribution[spark]')",
                allow_module_level=True)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME") and not os.environ.get("CI"):
    pytest.skip("Spark needs Java", allow_module_level=True)


import attribution.spark as engine
from attribution import graph, pipeline
from attribution.config import Config, load_config
from attribution.errors import AttributionError
from attribution.models import get_model, model_names
from attribution.output import money_to_decimal
from attribution.pipeline import RunResult
from attribution.simulate import simulate

pytestmark = pytest.mark.slow  # Spark sessions: minutes on 2 cores

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
MESSY = ROOT / "fixtures" / "messy"


@pytest.fixture(scope="module")
def spark():
    session = engine.session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            # small file splits, so one Parquet file is read by several tasks
            "spark.sql.files.maxPartitionBytes": "4096",
            "spark.sql.files.openCostInBytes": "0",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def by_model(credit: pl.DataFrame, models) -> pl.DataFrame:
    order = {m.name: i for i, m in enumerate(models)}
    return credit.sort(
        pl.col("model").replace_strict(order), "journey_id", "touch_index", "channel",
        nulls_last=True,
    )


def assert_same(expected: RunResult, result: engine.SparkRunResult) -> None:
    """Every table and count of a polars run equals the Spark run's."""
    local = result.to_local()
    assert_frame_equal(local.rejects, expected.rejects)
    assert [a.as_dict() for a in local.accounting] == [a.as_dict() for a in expected.accounting]
    assert local.stats == expected.stats
    assert local.totals() == expected.totals()
    assert result.totals() == expected.totals()
    assert local.currency == expected.currency
    assert_frame_equal(local.unmapped, expected.unmapped)
    # same rows (row order inside these tables is not part of the contract)
    journey_keys = ["journey_id"]
    assert_frame_equal(local.journeys.journeys.collect().sort(journey_keys),
                       expected.journeys.journeys.collect().sort(journey_keys))
    touch_keys = ["journey_id", "touch_index"]
    assert_frame_equal(local.journeys.touches.collect().sort(touch_keys),
                       expected.journeys.touches.collect().sort(touch_keys))
    assert [m.name for m in local.models] == [m.name for m in expected.models]
    # touch-level credit: every row, every cent, every weight
    assert_frame_equal(by_model(local.credit, local.models),
                       by_model(expected.credit, expected.models))
    # the summary: money and counts exact; conversion credit is a float sum, its order differs
    exact = expected.summary.drop("conversion_credit")
    assert_frame_equal(result.summary.drop("conversion_credit"), exact)
    assert_frame_equal(
        result.summary.select("conversion_credit"), expected.summary.select("conversion_credit"),
        check_exact=False, rel_tol=1e-12, abs_tol=1e-9,
    )
    assert_frame_equal(result.comparison().drop(pl.selectors.contains("conversion")),
                       expected.comparison().drop(pl.selectors.contains("conversion")))


def test_demo_export_gives_the_polars_credit_and_summary(spark):
    config = load_config(DEMO / "attribution.toml")
    # every configured model the engine runs (see engine.supported)
    config = config.replace(
        models=tuple(m for m in config.models if engine.supported(get_model(m))))
    assert {"markov", "shapley", "w_shaped"} <= set(config.models)
    expected = pipeline.run(config)
    result = engine.run(config, spark=spark, buckets=4)
    assert_same(expected, result)
    assert result.summary.height and result.models[0].name == "last_touch"
    # Markov and Shapley were fitted once on the summed paths: same diagnostics as polars
    diagnostics = pipeline.model_diagnostics(expected)
    for name, table in result.diagnostics().items():
        assert_frame_equal(table, diagnostics[name])
    # the `paths` command's tables, from the summed distinct paths
    for include_open in (False, True):
        paths = result.path_journeys(include_open=include_open)
        assert_frame_equal(graph.top_paths(paths, None),
                           graph.top_paths(expected.journeys, None, include_open=include_open))
        assert_frame_equal(graph.path_length_distribution(paths),
                           graph.path_length_distribution(expected.journeys,
                                                          include_open=include_open))
        assert_frame_equal(graph.transition_table(paths, order=2),
                           graph.transition_table(expected.journeys, order=2,
                                                  include_open=include_open))
    assert_frame_equal(result.time_to_close, graph.time_to_close_distribution(expected.journeys))


def test_simulated_export_split_across_partitions(spark, tmp_path):
    export = simulate(200, seed=1, messy=True)
    paths = {}
    for name in ("touchpoints", "deals", "contacts"):
        paths[name] = tmp_path / f"{name}.parquet"
        # small row groups: Spark reads each file in several splits, numbered back in order
        export.tables()[name].write_parquet(paths[name], row_group_size=200)
    config = Config(
        touchpoints=paths["touchpoints"], deals=paths["deals"], contacts=paths["contacts"],
        models=("last_touch", "linear", "w_shaped", "time_decay", "markov", "shapley"),
        model_params={"markov": {"order": 2}, "shapley": {"variant": "ordered"}},
    )
    expected = pipeline.run(config)
    source = engine.read_input(spark, paths["touchpoints"], "touchpoints")
    assert source.frame.rdd.getNumPartitions() >= 4
    assert_same(expected, engine.run(config, spark=spark, buckets=8))


@pytest.fixture(scope="module")
def messy(spark):
    config = Config(touchpoints=MESSY / "touchpoints.csv", deals=MESSY / "deals.csv",
                    contacts=MESSY / "contacts.csv", max_reject_rate=1.0)
    return config, engine.run(config, spark=spark, buckets=3)


def test_messy_export_gives_the_same_rejects_and_messages(messy):
    config, result = messy
    # every model the engine runs; the ones it does not are named, never dropped silently
    # (the self-reported models are default models only when there are answers: none here)
    assert result.skipped_models == [m for m in model_names() if not engine.supported(get_model(m))
                                     and m not in SELF_REPORTED_MODELS]
    expected = pipeline.run(config.replace(models=tuple(m.name for m in result.models)))
    # 3 touchpoints, 7 deals, 1 contact (fixtures/messy/README.md)
    assert result.rejects.height == 11
    assert set(result.rejects["reason"]) >= {
        "unknown status; expected won, lost or open",
        "duplicate deal_id with different values on another row",
        "unknown account: not in the contacts file and never touched",
    }
    assert_same(expected, result)


def test_folder_of_csv_files_reads_as_one_export(spark, tmp_path):
    """A folder of part files is one export, its rows in file-name then row order."""
    export = simulate(60, seed=3)
    folder = tmp_path / "touchpoints"
    folder.mkdir()
    touchpoints = export.touchpoints
    third = touchpoints.height // 3 + 1
    for part in range(3):
        touchpoints.slice(part * third, third).write_csv(folder / f"part-{part}.csv")
    touchpoints.write_csv(tmp_path / "touchpoints.csv")
    export.deals.write_csv(tmp_path / "deals.csv")
    export.contacts.write_csv(tmp_path / "contacts.csv")
    whole = Config(touchpoints=tmp_path / "touchpoints.csv", deals=tmp_path / "deals.csv",
                   contacts=tmp_path / "contacts.csv", models=("first_touch", "markov"))
    expected = pipeline.run(whole)
    result = engine.run(whole.replace(touchpoints=folder), spark=spark).to_local()
    assert_frame_equal(by_model(result.credit, result.models),
                       by_model(expected.credit, expected.models))
    assert result.files[1].path == str(folder) and result.files[1].rows == touchpoints.height


def test_file_errors_read_the_same(spark, tmp_path):
    (tmp_path / "touchpoints.csv").write_text("when,channel,account_id\n2025-01-01,direct,A\n")
    config = Config(touchpoints=tmp_path / "touchpoints.csv", deals=MESSY / "deals.csv")

    def error_of(run) -> tuple[type, str]:
        with pytest.raises(AttributionError) as raised:
            run(config)
        return type(raised.value), str(raised.value)

    expected = error_of(pipeline.run)
    assert "timestamp" in expected[1]
    assert error_of(lambda c: engine.run(c, spark=spark)) == expected
    missing = Config(touchpoints=tmp_path / "nowhere.csv", deals=MESSY / "deals.csv")
    with pytest.raises(AttributionError, match="nowhere.csv: no such touchpoints file"):
        engine.run(missing, spark=spark)


def test_write_results_as_parquet_with_decimal_money(messy, tmp_path):
    _config, result = messy
    written = engine.write_results(result, tmp_path / "out")
    assert {"credit", "summary", "comparison", "rejects", "markov_removal_effects"} <= set(written)
    summary = pl.read_parquet(tmp_path / "out" / "summary" / "*.parquet")
    assert_frame_equal(summary, money_to_decimal(result.summary), check_dtypes=False)
    credit = pl.read_parquet(tmp_path / "out" / "credit" / "*.parquet")
    assert credit.height == result.credit().height
    assert credit["revenue_credit"].dtype == pl.Decimal(38, 2)  # money: keep name (the file's)
    # an estimate (float cents in the library) is written in major units, as by polars
    effects = pl.read_parquet(tmp_path / "out" / "markov_removal_effects" / "*.parquet")
    expected = money_to_decimal(result.diagnostics()["markov_removal_effects"])
    assert_frame_equal(effects, expected, check_dtypes=False)
    # D1, the one won deal; the file's name
    assert effects["revenue_credit"].sum() == pytest.approx(12000.0)  # money: keep name


def test_cli_engine_spark_prints_the_same_comparison(spark, tmp_path):
    # the CLI reuses the module's session (getOrCreate): compare on both engines, same JSON
    import json

    from click.testing import CliRunner

    from attribution.cli import cli

    args = ["-q", "compare", "--config", str(DEMO / "attribution.toml"), "--model", "w_shaped",
            "--format", "json", "--out", str(tmp_path)]
    polars_rows = json.loads(CliRunner().invoke(cli, args).stdout)
    spark_result = CliRunner().invoke(cli, [*args, "--engine", "spark"])
    assert spark_result.exit_code == 0, spark_result.stderr
    assert json.loads(spark_result.stdout) == polars_rows


def test_a_rule_based_run_collects_no_path_table(spark):
    """The summed distinct paths (a row per distinct path: it grows with the input) come to
    the driver only when a fit or the path statistics read them."""
    config = load_config(DEMO / "attribution.toml").replace(models=("last_touch", "w_shaped"))
    result = engine.run(config, spark=spark, buckets=2)
    local = result.to_result()
    assert local.summary.height and not result.path_counts.collected
    # the path statistics still read them, on demand: the polars engine's own
    expected = pipeline.run(config)
    assert_frame_equal(graph.top_paths(local.path_journeys(), None),
                       graph.top_paths(expected.journeys, None))
    assert result.path_counts.collected
    # Markov fits from transition counts per state summed by Spark, not from the paths ...
    markov = config.replace(models=("last_touch", "markov"), model_params={"markov": {"order": 2}})
    fitted = engine.run(markov, spark=spark, buckets=2)
    assert not fitted.path_counts.collected
    expected = pipeline.run(markov)
    assert_frame_equal(fitted.summary.drop("conversion_credit"),
                       expected.summary.drop("conversion_credit"))
    for name, table in pipeline.model_diagnostics(expected).items():
        assert_frame_equal(fitted.diagnostics()[name], table)
    assert_frame_equal(by_model(fitted.credit(), fitted.models),
                       by_model(expected.credit, expected.models))
    # ... Shapley from its channel sets summed by Spark ...
    shapley = config.replace(models=("shapley",), model_params={"shapley": {"variant": "rate"}})
    fitted = engine.run(shapley, spark=spark, buckets=2)
    assert not fitted.path_counts.collected
    expected = pipeline.run(shapley)
    assert_frame_equal(fitted.diagnostics()["shapley_values"],
                       pipeline.model_diagnostics(expected)["shapley_values"])
    assert_frame_equal(by_model(fitted.credit(), fitted.models),
                       by_model(expected.credit, expected.models))
    # ... and a Markov bootstrap, which resamples paths, from the summed paths
    bootstrap = config.replace(models=("markov",), model_params={"markov": {"bootstrap": 3}})
    assert engine.run(bootstrap, spark=spark, buckets=2).path_counts.collected


def test_incremental_fits_from_tallies_summed_by_spark(spark, monkeypatch):
    """``incremental`` on Spark: each batch tallies its channel sets before creation and its
    first-touch ranks, Spark sums them and the driver fits once: the local engine's effects
    and credit to the cent, with experiment priors too, and no path table or deal list
    collected."""
    from attribution.experiments import load_experiments
    from attribution.models.priors import priors_of

    def no_population(_built):
        raise AssertionError("only channel-total fits (Markov's global allocation) need it")

    monkeypatch.setattr(engine, "_population", no_population)

    planted = ROOT / "fixtures" / "experiments" / "planted"
    experiments = load_experiments(planted / "experiments.csv", ["paid_search", "podcast"])
    priors = priors_of(experiments.rows)
    assert priors
    for folder, params in ((DEMO, {}),
                           (DEMO, {"value": "conversions", "before_creation": False}),
                           (planted, {"priors": priors})):
        config = load_config(folder / "attribution.toml").replace(
            models=("last_touch", "incremental"), model_params={"incremental": params})
        expected = pipeline.run(config)
        result = engine.run(config, spark=spark, buckets=3)
        assert not result.path_counts.collected and not result.skipped_models
        assert_frame_equal(result.diagnostics()["incremental_effects"],
                           pipeline.model_diagnostics(expected)["incremental_effects"])
        assert_same(expected, result)


def test_rejects_are_written_by_the_executors_in_the_local_order(spark, tmp_path):
    """A systematically bad column rejects half the touchpoints: the executors write them
    (``rejects.csv`` byte for byte the local engine's, rows in its order, formula cells
    neutralised and commas and quotes quoted across batches) and the driver holds only their
    count by input and reason."""
    from attribution.results import write_rejects

    export = simulate(400, seed=5)
    tables = export.tables()
    bad = ["not a time", '=HYPERLINK("x")', "a,b", 'say "hi"', "+1", "2025-13-45", "-2"]
    stamps = tables["touchpoints"].get_column("timestamp").to_list()
    stamps = [bad[(i // 2) % len(bad)] if i % 2 == 0 else stamp
              for i, stamp in enumerate(stamps)]
    paths = {}
    for name in ("touchpoints", "deals", "contacts"):
        frame = tables[name]
        if name == "touchpoints":
            frame = frame.with_columns(pl.Series("timestamp", stamps))
        paths[name] = tmp_path / f"{name}.csv"
        frame.write_csv(paths[name])
    config = Config(touchpoints=paths["touchpoints"], deals=paths["deals"],
                    contacts=paths["contacts"], models=("last_touch",), max_reject_rate=1.0)
    expected = pipeline.run(config)
    assert expected.rejects.height > 1000
    local = write_rejects(expected.rejects, tmp_path / "local").read_bytes()

    result = engine.run(config, spark=spark, buckets=4)
    engine.write_results(result, tmp_path / "spark")
    assert not result.reject_rows.collected  # only the counts came to the driver
    assert (tmp_path / "spark" / "rejects.csv").read_bytes() == local
    assert result.reject_rows.rows == expected.rejects.height
    assert_frame_equal(result.reject_rows.counts.drop("count"),
                       expected.rejects.group_by("input", "reason").len()
                       .sort("input", "reason").drop("len"))
    folder = pl.read_parquet(tmp_path / "spark" / "rejects" / "*.parquet")
    assert_frame_equal(folder.sort("row"), expected.rejects.sort("row"), check_dtypes=False)
    assert result.to_result(keep_rejects=False).rejects_elsewhere == expected.rejects.height

    # --rejects FILE too, and the driver's own rejects (an experiments file's) after them
    extra = expected.rejects.head(3).with_columns(pl.lit("experiments").alias("input"))
    writer = engine.SparkWriter(str(tmp_path / "again"), tmp_path / "again", spark=spark,
                                rejects_file=str(tmp_path / "mine.csv"),
                                reject_rows=result.reject_rows)
    written = writer.rejects(extra)
    both = write_rejects(pl.concat([expected.rejects, extra]), tmp_path / "both").read_bytes()
    assert written[1:] == [str(tmp_path / "again" / "rejects.csv"), str(tmp_path / "mine.csv")]
    assert (tmp_path / "mine.csv").read_bytes() == both
    assert (tmp_path / "again" / "rejects.csv").read_bytes() == both
    assert not result.reject_rows.collected
    # as a table, when asked for: the polars engine's
    assert_frame_equal(result.rejects, expected.rejects)


def test_a_rejected_contact_and_a_blanked_lead_date_read_the_same(spark, tmp_path):
    """A contact without an account is rejected and its touch says so (not "unknown
    contact"); a contact whose lead date cannot be read is kept, the cell listed with the
    rejects and counted as blanked, not rejected: on Spark as in the local engine."""
    config = rejected_and_blanked_contacts(tmp_path, ("last_touch", "linear"))
    expected = pipeline.run(config)
    assert expected.rejects.select("input", "row").rows() == [
        ("contacts", 2), ("contacts", 3), ("touchpoints", 2)]
    assert expected.rejects["reason"][2].startswith("contact rejected in the contacts file")
    assert_same(expected, engine.run(config, spark=spark, buckets=2))
