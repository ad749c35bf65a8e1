"""The Spark engine on real Spark servers started from the pip package, not ``local[*]``:

* a **Spark Connect** server (``sc://127.0.0.1:PORT``): the engine uses only the DataFrame API
  (no ``sparkContext``), so ``--spark-remote`` runs it;
* a **standalone cluster** (a master and two workers on 127.0.0.1) whose executors run a
  Python that has polars, pyarrow and pyspark but *not* the ``attribution`` package: the
  engine ships its own package to them (:func:`attribution.spark.ship`).

Both compare every output with the polars engine's. Every server is started here, by a
process whose PID the test holds, and stopped by that PID.

Why the executors really lack the package: the suite runs in a virtual environment where
``attribution`` is installed (editable in development, a wheel in CI). The executors get
another environment, made here (:func:`executor_python`): a bare venv of the same Python whose
site-packages holds links to every top-level entry of ours *except* the ``attribution``
package, its ``*.dist-info`` and any ``.pth`` file (an editable install is a ``.pth`` finder).
The executors start in Spark's own work folders, with no ``PYTHONPATH``; the test asserts that
this Python cannot import ``attribution`` before it runs anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

try:
    import pyspark
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("pyspark is not installed", allow_module_level=True)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME") and not os.environ.get("CI"):
    pytest.skip("Spark needs Java", allow_module_level=True)

pytestmark = pytest.mark.slow  # JVM servers: minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
SPARK_HOME = Path(pyspark.__file__).resolve().parent
INPUTS = ["--touchpoints", str(DEMO / "touchpoints.csv"), "--deals", str(DEMO / "deals.csv"),
          "--contacts", str(DEMO / "contacts.csv")]
MODELS = ["--model", "last_touch", "--model", "linear", "--model", "w_shaped",
          "--model", "markov", "--model", "shapley", "--model", "incremental"]
SMALL = ["--spark-conf", "spark.sql.shuffle.partitions=4",
         "--spark-conf", "spark.ui.enabled=false"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            raise AssertionError(f"server exited ({process.returncode}):\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(1)
    raise AssertionError(f"nothing listens on {port} after {seconds} s:\n{log.read_text()[-3000:]}")


def _server_env(executor_python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK_"))}
    env.pop("PYTHONPATH", None)
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=str(executor_python), SPARK_NO_DAEMONIZE="1")
    return env


@contextlib.contextmanager
def _started(command: list[str], env: dict[str, str], log: Path, cwd: Path,
             ) -> Iterator[subprocess.Popen]:
    """A server process (``spark-class`` execs the JVM, so the PID is the JVM's), stopped by
    its PID (and its process group, which holds the Python workers it forked) on the way out."""
    handle = log.open("w")
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
        handle.close()


@pytest.fixture(scope="module")
def executor_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with our dependencies but without ``attribution`` (see the module docstring)."""
    folder = tmp_path_factory.mktemp("executor-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    target = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    hidden = ("attribution", "revenue_attribution", "__editable__")
    for source in site.getsitepackages():
        for entry in Path(source).iterdir():
            if (entry.name.startswith(hidden) or entry.suffix == ".pth"
                    or (target / entry.name).exists()):
                continue
            (target / entry.name).symlink_to(entry)
    work = tmp_path_factory.mktemp("executor-cwd")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    check = subprocess.run([str(python), "-c", "import polars, pyarrow, pandas, pyspark"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    absent = subprocess.run([str(python), "-c", "import attribution"], cwd=work, env=env,
                            capture_output=True, text=True)
    assert absent.returncode == 1 and "No module named 'attribution'" in absent.stderr
    return python


def _cli(*arguments: str, cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python cli.py ...`` from the repository root (the driver has the package)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK_"))}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "-q", *arguments], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The demo export with every 40th touchpoint's timestamp spoiled (a formula cell, a
    comma, plain text, in turn): rows the executors reject and write to rejects.csv."""
    folder = tmp_path_factory.mktemp("damaged")
    touches = pl.read_csv(DEMO / "touchpoints.csv", infer_schema=False)
    spoiled = ["=1+2", "noon, maybe", "not a time"]
    stamps = [spoiled[(i // 40) % 3] if i % 40 == 0 else stamp
              for i, stamp in enumerate(touches.get_column("timestamp").to_list())]
    touches.with_columns(pl.Series("timestamp", stamps)).write_csv(folder / "touchpoints.csv")
    return ["--touchpoints", str(folder / "touchpoints.csv"), "--deals",
            str(DEMO / "deals.csv"), "--contacts", str(DEMO / "contacts.csv")]


def _spark_table(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "*.parquet")


def assert_same_result_sets(local: Path, spark: Path) -> None:
    """Every table the polars engine wrote equals the Spark folder of that name (rows in any
    order; Spark types its integers its own way, money is decimal in both), and run.json and
    rejects.csv agree."""
    tables = sorted(p.stem for p in local.glob("*.parquet"))
    assert {"credit", "summary", "comparison", "markov_removal_effects"} <= set(tables)
    for table in tables:
        mine = pl.read_parquet(local / f"{table}.parquet")
        theirs = _spark_table(spark / table)
        assert theirs.columns == mine.columns, table
        assert_frame_equal(theirs.sort(theirs.columns, nulls_last=True),
                           mine.sort(mine.columns, nulls_last=True),
                           check_dtypes=False, rel_tol=1e-12, abs_tol=1e-9)
    mine_record = json.loads((local / "run.json").read_text())
    their_record = json.loads((spark / "run.json").read_text())
    for key in ("totals", "accounting"):
        assert their_record[key] == mine_record[key], key
    # written by an executor task, byte for byte the local file
    assert (spark / "rejects.csv").read_bytes() == (local / "rejects.csv").read_bytes()


@pytest.fixture(scope="module")
def local_result(tmp_path_factory: pytest.TempPathFactory, damaged: list[str]) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    done = _cli("run", *damaged, *MODELS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_spark_connect_server_gives_the_local_result_set(executor_python, local_result,
                                                         damaged, tmp_path):
    port = _free_port()
    command = [str(SPARK_HOME / "bin" / "spark-submit"),
               "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
               "--master", "local[2]",
               "--conf", f"spark.connect.grpc.binding.port={port}",
               "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
               "--conf", "spark.ui.enabled=false",
               "--conf", f"spark.pyspark.python={executor_python}"]
    log = tmp_path / "connect.log"
    with _started(command, _server_env(executor_python), log, tmp_path) as server:
        _wait_for_port(port, server, log)
        out = tmp_path / "spark"
        # no spark.sql.shuffle.partitions given: the engine derives it from the input rows
        done = _cli("run", *damaged, *MODELS, "--engine", "spark",
                    "--spark-remote", f"sc://127.0.0.1:{port}", "--out", str(out))
        assert done.returncode == 0, done.stderr[-3000:]
        assert_same_result_sets(local_result, out)
        assert json.loads((out / "run.json").read_text())["engine"] == {
            "name": "spark",
            "shuffle_partitions": {"contacts": 1, "touchpoints": 1, "deals": 1, "journeys": 1},
            "shuffle_partitions_from": "input rows: a partition per batch of 20,000 to "
                                       "200,000 rows",
        }
        # a verb that prints: the same JSON as the local engine
        local = _cli("validate", *damaged, "--format", "json")
        remote = _cli("validate", *damaged, "--format", "json", "--engine", "spark",
                      "--spark-remote", f"sc://127.0.0.1:{port}", *SMALL)
        assert remote.returncode == 0, remote.stderr[-3000:]
        assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert server.poll() is not None


def _alive_workers(ui_port: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as answer:
            return int(json.loads(answer.read()).get("aliveworkers", 0))
    return 0


def test_standalone_cluster_without_the_package_on_executors(executor_python, local_result,
                                                             damaged, tmp_path):
    port, ui_port = _free_port(), _free_port()
    env = _server_env(executor_python)
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    master_url = f"spark://127.0.0.1:{port}"
    with contextlib.ExitStack() as servers:
        master = servers.enter_context(_started(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            env, tmp_path / "master.log", tmp_path))
        _wait_for_port(port, master, tmp_path / "master.log")
        workers = []
        for number in (1, 2):
            work = tmp_path / f"worker{number}"
            work.mkdir()
            workers.append(servers.enter_context(_started(
                [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()),
                 "--work-dir", str(work), master_url],
                env, tmp_path / f"worker{number}.log", work)))
        deadline = time.monotonic() + 180
        while _alive_workers(ui_port) < 2:
            assert time.monotonic() < deadline, (tmp_path / "worker1.log").read_text()[-3000:]
            time.sleep(1)
        out = tmp_path / "spark"
        done = _cli("run", *damaged, *MODELS, "--engine", "spark", "--spark-master", master_url,
                    *SMALL, "--spark-conf", f"spark.pyspark.python={executor_python}",
                    "--spark-conf", "spark.executor.cores=1",
                    "--spark-conf", "spark.executor.memory=1g",
                    "--spark-conf", "spark.driver.host=127.0.0.1",
                    "--out", str(out), cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert_same_result_sets(local_result, out)
        # both workers ran executors of the application, with the shipped zip on their path
        launched = [p for p in tmp_path.glob("worker*/app-*/*/stderr")]
        assert {p.parts[-4] for p in launched} == {"worker1", "worker2"}
    assert master.poll() is not None and all(w.poll() is not None for w in workers)


def test_executors_without_polars_fail_with_one_line(tmp_path):
    """A Python on the executors that runs PySpark but lacks our dependencies: one line naming
    that Python, what it cannot import and how to install it; no Python worker traceback."""
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    target = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    for name in ("pyspark", "py4j"):
        (target / name).symlink_to(Path(__import__(name).__file__).parent)
    done = _cli("validate", *INPUTS, "--engine", "spark", "--spark-master", "local[1]", *SMALL,
                "--spark-conf", f"spark.pyspark.python={python}")
    assert done.returncode == 2, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"Error: the spark executors' Python ({python} 3.")
    assert "cannot import polars (ModuleNotFoundError), pyarrow (ModuleNotFoundError)" in message
    assert "pip install 'revenue-attribution[spark]' on every node" in message
    assert "--spark-archives ENV.tar.gz#env" in message
    assert "Traceback" not in done.stderr
