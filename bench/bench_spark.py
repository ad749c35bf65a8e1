"""Benchmark: the polars engine and the Spark engine on the same 10^6+ touchpoint export.

The workload is the simulator's typed Parquet export (:func:`bench_pipeline.workload`; 150,000
accounts is about 1.03 million touchpoints). Both engines run the same configuration: load and
validate, journeys, the chosen models, exact credit and the channel summary. Reported, side by
side:

* **polars**: :func:`attribution.pipeline.run` in this process;
* **spark start**: creating the local SparkSession (JVM start), once;
* **spark run**: :func:`attribution.spark.run` (every stage; credit is computed and cached on
  the executors, the summary collected), median of ``--repeat``; the first run also warms
  the JVM and the Python workers and is reported apart;
* **spark write**: :func:`attribution.spark.write_results` (credit as Parquet, by the
  executors);

and whether the two engines' channel summaries agree (money to the cent, shares exactly;
conversion credit, a float sum, to 1e-9).

Run (from the repository root, with the spark extra installed and Java 17)::

    python bench/bench_spark.py --accounts 150000 --master 'local[*]' --repeat 2
    python bench/bench_spark.py --accounts 300 --repeat 1          # a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import workload  # noqa: E402

from attribution import pipeline  # noqa: E402
from attribution.config import Config  # noqa: E402

MODELS = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "u_shaped",
          "w_shaped", "full_path", "markov", "shapley")


def seconds(start: float) -> float:
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=150_000)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="Spark setting (repeatable)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--buckets", type=int, default=None)
    args = parser.parse_args()

    import attribution.spark as engine

    paths = workload(args.accounts, args.data)
    touches = pl.scan_parquet(paths["touchpoints"]).select(pl.len()).collect().item()
    config = Config(touchpoints=paths["touchpoints"], deals=paths["deals"],
                    contacts=paths["contacts"], models=tuple(args.models))
    print(f"workload: {args.accounts:,} accounts, {touches:,} touchpoints; models: "
          f"{', '.join(args.models)}", flush=True)

    polars_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        expected = pipeline.run(config)
        polars_times.append(seconds(start))
        print(f"polars run: {polars_times[-1]:.1f} s", flush=True)

    conf = {"spark.driver.memory": "12g", "spark.ui.showConsoleProgress": "false"}
    conf.update(dict(item.split("=", 1) for item in args.conf))
    start = time.perf_counter()
    spark = engine.session(args.master, conf)
    spark.sparkContext.setLogLevel("ERROR")
    started = seconds(start)
    print(f"spark start: {started:.1f} s ({args.master}, "
          f"shuffle partitions {spark.conf.get('spark.sql.shuffle.partitions')})", flush=True)

    spark_times = []
    stages: dict[str, float] = {}
    result = None
    for attempt in range(args.repeat + 1):
        if result is not None:
            result.unpersist()
        start = time.perf_counter()
        events: list[tuple[str, float]] = []

        def progress(stage: str, done: int, total: int, events: list = events) -> None:
            events.append((f"{stage} {done}/{total}", time.perf_counter()))

        result = engine.run(config, spark=spark, buckets=args.buckets, progress=progress)
        spark_times.append(seconds(start))
        events.append(("end", time.perf_counter()))
        # each span is named by the progress report that opened it
        stages = {name: later - at for (name, at), (_next, later) in itertools.pairwise(events)}
        print(f"spark run{' (first, warming up)' if attempt == 0 else ''}: "
              f"{spark_times[-1]:.1f} s", flush=True)
    assert result is not None
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        engine.write_results(result, Path(folder) / "out")
        written = seconds(start)
    print(f"spark write_results: {written:.1f} s", flush=True)

    money = expected.summary.drop("conversion_credit")
    same = result.summary.drop("conversion_credit").equals(money)
    close = (
        (result.summary["conversion_credit"] - expected.summary["conversion_credit"]).abs().max()
        or 0.0
    ) <= 1e-9
    rows = result.credit_frame.count() if result.credit_frame is not None else 0
    print(f"credit rows: polars {expected.credit.height:,}, spark {rows:,}")
    print(f"summaries agree: {same and close} (money and shares exact: {same}; "
          f"conversion credit within 1e-9: {close})")

    print("spark spans of the last run, named by the progress report that opened them: "
          + ", ".join(f"[{k}] {v:.1f} s" for k, v in stages.items()))
    warm = spark_times[1:] or spark_times
    table = pl.DataFrame(
        {
            "engine": ["polars", "spark (first run)", "spark"],
            "seconds": [round(statistics.median(polars_times), 1), round(spark_times[0], 1),
                        round(statistics.median(warm), 1)],
        }
    )
    print(table)


if __name__ == "__main__":
    main()
