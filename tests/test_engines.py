"""Every verb honours --engine: the same command on Spark prints what it prints locally.

Spark in local mode (the ``spark`` extra and Java); skipped without them, except in CI.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

try:
    import pyspark  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("pyspark is not installed", allow_module_level=True)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME") and not os.environ.get("CI"):
    pytest.skip("Spark needs Java", allow_module_level=True)

from attribution.cli import cli  # noqa: E402
from attribution.engine import LocalEngine, SparkEngine, get_engine  # noqa: E402
from attribution.errors import AttributionError  # noqa: E402

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
INPUTS = ["--touchpoints", str(DEMO / "touchpoints.csv"), "--deals", str(DEMO / "deals.csv"),
          "--contacts", str(DEMO / "contacts.csv")]
SPARK = ["--engine", "spark", "--spark-master", "local[2]",
         "--spark-conf", "spark.sql.shuffle.partitions=4"]


def _json(*arguments: str) -> object:
    result = CliRunner().invoke(cli, ["-q", *arguments, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_get_engine_names_the_engines():
    assert isinstance(get_engine("polars"), LocalEngine)
    assert get_engine("spark", spark_master="local[1]") == SparkEngine("local[1]", {})
    # a Spark Connect server instead of the master; packed environments as spark.archives
    remote = get_engine("spark", spark_remote="sc://127.0.0.1:15002",
                        spark_conf={"spark.archives": "a.tar.gz#a"},
                        spark_archives=("env.tar.gz#env",))
    assert remote == SparkEngine("sc://127.0.0.1:15002",
                                 {"spark.archives": "a.tar.gz#a,env.tar.gz#env"})
    with pytest.raises(AttributionError, match=r"--spark-remote 127.0.0.1:15002: expected a "
                                               r"Spark Connect address, sc://HOST:PORT"):
        get_engine("spark", spark_remote="127.0.0.1:15002")


def test_the_package_ships_as_one_zip_named_by_its_content():
    import zipfile

    import attribution
    from attribution.spark import package_zip

    first, again = package_zip(), package_zip()
    assert first == again and first.read_bytes() == again.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    package = Path(attribution.__file__).parent
    assert "attribution/spark.py" in names and "attribution/default_channels.toml" in names
    assert "attribution/models/markov.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert (zipfile.ZipFile(first).read("attribution/credit.py")
            == (package / "credit.py").read_bytes())


@pytest.mark.parametrize("verb, extra", [
    ("validate", []),
    ("compare", ["--model", "last_touch", "--model", "linear", "--model", "markov"]),
    ("compare", ["--model", "last_touch", "--model", "incremental"]),
    ("scorecard", ["--model", "linear", "--spend", str(DEMO / "spend.csv"), "--no-hygiene"]),
    ("budget", ["--model", "linear", "--spend", str(DEMO / "spend.csv")]),
    ("paths", ["--top", "5"]),
])
def test_a_verb_on_spark_prints_what_it_prints_locally(verb, extra):
    local = _json(verb, *INPUTS, *extra)
    spark = _json(verb, *INPUTS, *extra, *SPARK)
    assert spark == local


def test_run_on_spark_writes_the_local_result_set(tmp_path):
    import polars as pl

    models = ["--model", "last_touch", "--model", "linear", "--model", "markov"]
    local = CliRunner().invoke(cli, ["-q", "run", *INPUTS, *models, "--out",
                                     str(tmp_path / "local")])
    spark = CliRunner().invoke(cli, ["-q", "run", *INPUTS, *models, *SPARK, "--out",
                                     str(tmp_path / "spark")])
    assert local.exit_code == 0 and spark.exit_code == 0, spark.output
    for table in ("summary", "comparison", "markov_removal_effects"):
        mine = pl.read_parquet(tmp_path / "local" / f"{table}.parquet")
        theirs = pl.read_parquet(tmp_path / "spark" / table / "*.parquet")
        # Spark's Parquet types its integers its own way (int64 for u32); money is decimal in
        # both, so the cents compare exactly
        assert_frame_equal(theirs.sort(theirs.columns), mine.sort(mine.columns),
                           check_dtypes=False, rel_tol=1e-12)
    record = json.loads((tmp_path / "spark" / "run.json").read_text())
    assert record["totals"] == json.loads((tmp_path / "local" / "run.json").read_text())["totals"]


MESSY = DEMO.parent / "messy"


def test_run_on_spark_writes_every_output_to_a_uri(tmp_path, monkeypatch):
    """``--out file://...`` goes through the remote path (as s3a:// would): the tables, run.json
    and rejects.csv all land under the URI, none in a local ./out."""
    import polars as pl

    monkeypatch.chdir(tmp_path)
    inputs = ["--touchpoints", str(MESSY / "touchpoints.csv"), "--deals",
              str(MESSY / "deals.csv"), "--contacts", str(MESSY / "contacts.csv"),
              "--max-reject-rate", "1", "--model", "last_touch", "--model", "markov"]
    local = CliRunner().invoke(cli, ["-q", "run", *inputs, "--out", str(tmp_path / "local"),
                                     "--rejects", str(tmp_path / "local-rejects.csv")])
    assert local.exit_code == 0, local.output
    target = tmp_path / "remote" / "run-1"
    spark = CliRunner().invoke(cli, ["-q", "run", *inputs, *SPARK, "--out", target.as_uri(),
                                     "--rejects", str(tmp_path / "spark-rejects.csv")])
    assert spark.exit_code == 0, spark.output
    assert not (tmp_path / "out").exists()
    local_rejects = (tmp_path / "local" / "rejects.csv").read_bytes()
    # written by the executors, the result set's and --rejects FILE alike
    assert (target / "rejects.csv").read_bytes() == local_rejects
    assert (tmp_path / "spark-rejects.csv").read_bytes() == local_rejects
    assert (tmp_path / "local-rejects.csv").read_bytes() == local_rejects
    record = json.loads((target / "run.json").read_text())
    expected = json.loads((tmp_path / "local" / "run.json").read_text())
    assert record["totals"] == expected["totals"]
    assert record["accounting"] == expected["accounting"]
    assert record["engine"] == {
        "name": "spark",
        "shuffle_partitions": {"contacts": 4, "touchpoints": 4, "deals": 4, "journeys": 4},
        "shuffle_partitions_from": "spark.sql.shuffle.partitions",
    }
    assert "engine" not in expected
    for table in ("credit", "summary", "comparison", "markov_removal_effects", "rejects"):
        mine = pl.read_parquet(tmp_path / "local" / f"{table}.parquet") if table != "rejects" \
            else pl.read_csv(tmp_path / "local" / "rejects.csv", infer_schema=False)
        theirs = pl.read_parquet(target / table / "*.parquet")
        if table == "rejects":
            theirs = theirs.select(pl.all().cast(pl.String))
        assert_frame_equal(theirs.sort(theirs.columns, nulls_last=True),
                           mine.sort(mine.columns, nulls_last=True),
                           check_dtypes=False, rel_tol=1e-12)


def test_spark_refuses_an_output_format_it_does_not_write(tmp_path):
    result = CliRunner().invoke(cli, ["-q", "run", *INPUTS, *SPARK, "--out-format", "csv",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --out-format csv: the spark engine writes Parquet folders (one per table, "
        "written by the executors); leave out --out-format, or convert the folders afterwards")


def test_a_path_table_on_spark_gives_the_local_result_set(tmp_path):
    import polars as pl

    sample = DEMO.parent / "paths" / "sample.csv"
    arguments = ["-q", "run", "--paths", str(sample), "--model", "last_touch", "--model",
                 "markov", "--markov-order", "2"]
    local = CliRunner().invoke(cli, [*arguments, "--out", str(tmp_path / "local")])
    spark = CliRunner().invoke(cli, [*arguments, *SPARK, "--out", str(tmp_path / "spark")])
    assert local.exit_code == 0 and spark.exit_code == 0, spark.output
    for table in ("credit", "summary", "comparison", "markov_removal_effects"):
        mine = pl.read_parquet(tmp_path / "local" / f"{table}.parquet")
        theirs = pl.read_parquet(tmp_path / "spark" / table / "*.parquet")
        assert_frame_equal(theirs.sort(theirs.columns, nulls_last=True),
                           mine.sort(mine.columns, nulls_last=True),
                           check_dtypes=False, rel_tol=1e-12)
    assert (json.loads((tmp_path / "spark" / "run.json").read_text())["totals"]
            == json.loads((tmp_path / "local" / "run.json").read_text())["totals"])
