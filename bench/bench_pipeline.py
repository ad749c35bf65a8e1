"""Benchmark: every pipeline stage at 10^4..10^6 accounts, against the limit and the peers.

Workloads come from the project's own simulator (``attribution.simulate``) and are written
once as typed Parquet under ``bench/data/`` (timestamps as datetimes, amounts as decimals).
For each size it measures, median of ``--repeat`` runs:

* the **limit**: polars scanning the touchpoints file and sorting it by account and time once;
* each stage: load (read + validate + channel rules), journeys, every rule-based model (weights
  + exact credit), Markov orders 1-3, Shapley, channel summary, comparison, HTML report;
* **end to end** (load, journeys, all rule-based models, Markov order 1, channel summary) in a
  fresh subprocess, so its peak RSS is its own; reported against the Arrow size of the
  touchpoints; and the same through ``attribution run``, which also writes the result files;
* the **peers** on the same journeys: ChannelAttribution's ``heuristic_models`` and
  ``markov_model`` (on the distinct-path table, which is what it takes) and
  marketing-attribution-models (``mam``, polars-based, on the touch-level journeys), with
  whether their channel shares agree with ours.

Every time is also given as a ratio to the limit. Peak RSS per stage is sampled from
/proc/self/statm every 5 ms while the stage runs (the process's RSS, so it includes what
earlier stages still hold).

Run (from the repository root, with the bench extra installed)::

    python bench/bench_pipeline.py --accounts 10000 100000 1000000 --repeat 3
    python bench/bench_pipeline.py --accounts 300 --repeat 1 --no-peers   # the CI smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribution import pipeline  # noqa: E402
from attribution.compare import compare  # noqa: E402
from attribution.config import Config  # noqa: E402
from attribution.credit import allocate, summarise  # noqa: E402
from attribution.graph import distinct_paths  # noqa: E402
from attribution.journeys import build_journeys  # noqa: E402
from attribution.models import get_model  # noqa: E402
from attribution.simulate import simulate  # noqa: E402

RULE_MODELS = ["first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
               "u_shaped", "w_shaped", "full_path"]
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- workload -------------------------------------------------------------------------------
def workload(accounts: int, data: Path, seed: int = 0) -> dict[str, Path]:
    """Typed Parquet exports for ``accounts`` accounts (made once, then reused)."""
    folder = data / f"accounts_{accounts}_seed_{seed}"
    names = ("touchpoints", "deals", "contacts")
    paths = {name: folder / f"{name}.parquet" for name in names}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    export = simulate(accounts, seed=seed)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    touch = export.touchpoints.with_columns(
        pl.col("timestamp").str.to_datetime(iso, time_zone="UTC")
    )
    deals = export.deals.with_columns(
        pl.col("created_at", "closed_at").str.to_datetime(iso, time_zone="UTC", strict=False),
        pl.col("amount").cast(pl.Decimal(18, 2)),  # money: keep name
    )
    contacts = export.contacts.with_columns(
        pl.col("lead_created_at").str.to_datetime(iso, time_zone="UTC", strict=False)
    )
    touch.write_parquet(paths["touchpoints"])
    deals.write_parquet(paths["deals"])
    contacts.write_parquet(paths["contacts"])
    return paths


# -- measuring ------------------------------------------------------------------------------
def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: ``VmHWM`` of its address space. (``ru_maxrss`` is
    no good in a child: Linux carries it over fork and exec, so a child started by a big parent
    reports the parent's size.)"""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Samples the process's RSS in a thread; ``peak`` is the largest seen while active."""

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.peak = rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.every)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def measure(function: Callable[[], Any], repeat: int) -> tuple[Any, float, int]:
    """(last result, median seconds, peak RSS bytes) of ``repeat`` runs."""
    times, peak, result = [], 0, None
    for _ in range(repeat):
        result = None
        with PeakRSS() as sampler:
            start = time.perf_counter()
            result = function()
            times.append(time.perf_counter() - start)
        peak = max(peak, sampler.peak)
    return result, statistics.median(times), peak


def alternate(first: Callable[[], Any], second: Callable[[], Any],
              repeat: int) -> tuple[float, float]:
    """Median seconds of ``first`` and of ``second``, called in turn ``repeat`` times each: a
    VM that slows down or speeds up during the runs weighs on both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for function, spent in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            function()
            spent.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def limit(touchpoints: Path) -> pl.DataFrame:
    """What it costs polars to scan the touchpoints and sort them by account and time once."""
    return pl.scan_parquet(touchpoints).sort(["account_id", "timestamp"]).collect()


# -- the pipeline, stage by stage -------------------------------------------------------------
def config_for(paths: dict[str, Path]) -> Config:
    return Config(touchpoints=paths["touchpoints"], deals=paths["deals"],
                  contacts=paths["contacts"])


def end_to_end(paths: dict[str, Path]) -> pl.DataFrame:
    """Load, journeys, every rule-based model, Markov order 1, channel summary. Like
    ``attribution run``, the run lets the inputs go while the journeys are built and lets each
    model's credit go once summarised (``attribution run`` writes it to the credit file)."""
    config = config_for(paths).replace(models=(*RULE_MODELS, "markov"))
    return pipeline.run(config, keep_inputs=False, keep_credit=False).summary


def credit_of(journeys: Any, name: str, **params: Any) -> pl.DataFrame:
    model = get_model(name, **params)
    return allocate(journeys, model.weights(journeys), name).collect()


def stages(paths: dict[str, Path], repeat: int, report: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def record(stage: str, function: Callable[[], Any]) -> Any:
        result, seconds, peak = measure(function, repeat)
        rows.append({"stage": stage, "seconds": seconds, "peak_rss_mb": peak / 2**20})
        return result

    config = config_for(paths)
    record("limit: scan + sort touchpoints", lambda: limit(paths["touchpoints"]))
    inputs = record("load", lambda: pipeline.load(config))

    def journeys() -> Any:
        return build_journeys(
            inputs.touchpoints, inputs.deals, inputs.contacts,
            lookback_days=config.lookback_days, dedup_minutes=config.dedup_minutes,
        )[0]

    built = record("journeys", journeys)
    # as pipeline.run_models does: per-journey models see only the journeys that carry money
    money = record("money journeys (for per-journey models)", built.with_money_only)
    credits = []
    for name in RULE_MODELS:
        credits.append(record(f"model {name}", lambda n=name: credit_of(money, n)))
    for order in (1, 2, 3):
        credit = record(f"model markov order {order}",
                        lambda o=order: credit_of(built, "markov", order=o))
        if order == 1:
            credits.append(credit)
    credits.append(record("model shapley (simplified)", lambda: credit_of(built, "shapley")))
    record("model shapley (rate)", lambda: credit_of(built, "shapley", variant="rate"))
    all_credit = pl.concat(credits)
    summary = record("channel summary", lambda: summarise(all_credit, built))
    record("comparison", lambda: compare(summary))
    if report:
        try:
            from attribution.report import build_report  # type: ignore[attr-defined]
        except ImportError:
            build_report = None
        if build_report is not None:
            result = pipeline.RunResult(config=config, journeys=built, models=[],
                                        credit=all_credit, summary=summary)
            record("report (html)", lambda: build_report(result))
    return rows


def cli_end_to_end(paths: dict[str, Path]) -> None:
    """The same run through ``attribution run``, which also writes every result file (credit,
    summary, comparison, Markov tables, run.json) as Parquet, into a scratch folder."""
    from click.testing import CliRunner

    from attribution.cli import cli

    with tempfile.TemporaryDirectory() as out:
        arguments = ["-q", "run", "--touchpoints", str(paths["touchpoints"]),
                     "--deals", str(paths["deals"]), "--contacts", str(paths["contacts"]),
                     "--out", out, "--format", "json"]
        for name in (*RULE_MODELS, "markov"):
            arguments += ["--model", name]
        result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
        if result.exit_code:
            raise SystemExit(f"attribution run failed: {result.output}")


def _child(paths: dict[str, Path], mode: str) -> dict[str, float]:
    """``seconds`` and ``peak_rss_mb`` of one run in a fresh process (``mode``: one of the
    hidden ``--...-only`` options)."""
    command = [sys.executable, __file__, mode, json.dumps({k: str(v) for k, v in paths.items()})]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def end_to_end_subprocess(paths: dict[str, Path], repeat: int,
                          mode: str = "--end-to-end-only") -> tuple[float, float]:
    """(median seconds, peak RSS MB) of the end-to-end run, each run in a fresh process
    (``mode`` ``--cli-only``: through ``attribution run``, writing the result files)."""
    reports = [_child(paths, mode) for _ in range(repeat)]
    return (statistics.median(r["seconds"] for r in reports),
            max(r["peak_rss_mb"] for r in reports))


def paired_end_to_end(paths: dict[str, Path], repeat: int) -> tuple[float, float, float]:
    """(median limit seconds, median end-to-end seconds, median of the pairs' ratios): each
    pair is the limit in a fresh process, then the end-to-end run in another, back to back, so
    that both see the VM at the same speed and start alike (this VM's speed drifts by 20-30%
    within minutes, which the limit measured once, ahead of every run, does not follow)."""
    limits, times = [], []
    for _ in range(repeat):
        limits.append(_child(paths, "--limit-only")["seconds"])
        times.append(_child(paths, "--end-to-end-only")["seconds"])
    ratios = [t / b for t, b in zip(times, limits, strict=True)]
    return statistics.median(limits), statistics.median(times), statistics.median(ratios)


# -- peers ----------------------------------------------------------------------------------
def peers(paths: dict[str, Path], repeat: int) -> list[dict[str, Any]]:
    """ChannelAttribution and marketing-attribution-models on the same journeys."""
    rows: list[dict[str, Any]] = []
    prepared = pipeline.prepare(config_for(paths))
    journeys = prepared.journeys
    ours: dict[str, dict[str, float]] = {}
    for name in ("first_touch", "last_touch", "linear"):
        # touched won deals only: the peers see paths, not the deals that had no touch
        credit = credit_of(journeys, name).filter(pl.col("channel") != "(no touch)")
        ours[name] = shares(credit.group_by("channel").agg(pl.col("conversion_credit").sum()))

    table = distinct_paths(journeys).filter(pl.col("conversions") + pl.col("nulls") > 0)
    path_table = table.select(
        pl.col("channels").list.join(" > ").alias("path"),
        pl.col("conversions").alias("total_conversions"),
        (pl.col("revenue_cents") / 100).alias("total_conversion_value"),
        pl.col("nulls").alias("total_null"),
    )
    rows.append({"peer": "(distinct paths fed to ChannelAttribution)", "rows": path_table.height})
    from attribution.paths import parse_paths

    names = {"path": "path", "conversions": "total_conversions",
             "conversion_value": "total_conversion_value", "nulls": "total_null"}
    path_journeys = parse_paths(path_table, names, separator=" > ").journeys

    def our_heuristics() -> Any:
        # a fresh Journeys a call: what it collects once (its money rows, its runs of touches)
        # is shared by the three models, as in a run, but not carried from one call to the next
        fresh = dataclasses.replace(path_journeys)
        return [credit_of(fresh, n) for n in ("first_touch", "last_touch", "linear")]

    _, seconds, _ = measure(our_heuristics, repeat)
    rows.append({"peer": "attribution first/last/linear with exact credit, same path table",
                 "seconds": seconds})
    for order in (1, 2, 3):
        _, seconds, _ = measure(
            lambda o=order: get_model("markov", order=o).fit(path_journeys).removal_effects(),
            repeat,
        )
        rows.append({"peer": f"attribution markov order {order} (exact), same path table",
                     "seconds": seconds})
    try:
        import pandas as pd  # noqa: F401  (the peers need it; our library does not)
        from ChannelAttribution import heuristic_models, markov_model
    except ImportError as exc:
        rows.append({"peer": "ChannelAttribution", "error": f"not installed ({exc})"})
    else:
        frame = path_table.to_pandas()
        quiet = contextlib.redirect_stdout(io.StringIO())

        def heuristics() -> Any:
            with quiet:
                return heuristic_models(frame, "path", "total_conversions",
                                        var_value="total_conversion_value")

        result, seconds, _ = measure(heuristics, repeat)
        theirs = pl.from_pandas(result)
        agreement = {}
        for ours_name, column in (("first_touch", "first_touch_conversions"),
                                  ("last_touch", "last_touch_conversions"),
                                  ("linear", "linear_touch_conversions")):
            agreement[ours_name] = max_share_gap(
                ours[ours_name], shares(theirs.select("channel_name", column))
            )
        rows.append({"peer": "ChannelAttribution heuristic_models", "seconds": seconds,
                     "max_share_gap_vs_ours": agreement})
        ours_seconds, theirs_seconds = alternate(our_heuristics, heuristics, repeat)
        rows.append({"peer": "first/last/linear head to head, calls alternating",
                     "attribution_seconds": ours_seconds,
                     "channelattribution_seconds": theirs_seconds,
                     "attribution_faster_by": theirs_seconds / ours_seconds})

        for order in (1, 2, 3):
            def markov(o: int = order) -> Any:
                with quiet:
                    return markov_model(frame, "path", "total_conversions",
                                        var_value="total_conversion_value",
                                        var_null="total_null", order=o, out_more=False,
                                        verbose=0, ncore=1)

            result, seconds, _ = measure(markov, repeat)
            theirs = pl.from_pandas(result)
            fitted = get_model("markov", order=order).fit(journeys)
            ours_markov = dict(zip(fitted.channels, fitted.shares("conversions"), strict=True))
            rows.append({"peer": f"ChannelAttribution markov_model order {order} (simulation)",
                         "seconds": seconds,
                         "max_share_gap_vs_ours": max_share_gap(
                             ours_markov, shares(theirs.select("channel_name",
                                                               "total_conversions")))})
    try:
        from mam import MAM
    except ImportError as exc:
        rows.append({"peer": "marketing-attribution-models", "error": f"not installed ({exc})"})
    else:
        touches = journeys.touches.join(
            journeys.journeys.select("journey_id", "status"), on="journey_id"
        ).filter(pl.col("status").is_in(["won", "lost", "none"])).select(
            "journey_id", "timestamp", "channel", (pl.col("status") == "won").alias("converted")
        ).collect()

        def mam_run() -> Any:
            model = MAM(touches, format_type="session", channels_colname="channel",
                        journey_with_conv_colname="converted", datetime_colname="timestamp",
                        user_id_colname="journey_id")
            return {name: model_result for name, model_result in (
                ("first_touch", model.run_first_click()), ("last_touch", model.run_last_click()),
                ("linear", model.run_linear()))}

        result, seconds, _ = measure(mam_run, repeat)
        agreement = {}
        for name, model_result in result.items():
            frame = model_result.to_polars()
            agreement[name] = max_share_gap(
                ours[name], shares(frame.select(pl.col("channels").cast(pl.String),
                                                "attribution"))
            )
        rows.append({"peer": "marketing-attribution-models (first, last, linear)",
                     "seconds": seconds, "max_share_gap_vs_ours": agreement})
    return rows


def shares(frame: pl.DataFrame) -> dict[str, float]:
    """{channel: share} of a (channel, value) frame."""
    channel, value = frame.columns[:2]
    total = float(frame[value].sum()) or 1.0
    return {str(c): float(v) / total for c, v in frame.select(channel, value).iter_rows()}


def max_share_gap(ours: dict[str, float], theirs: dict[str, float]) -> float:
    names = set(ours) | set(theirs)
    return max((abs(ours.get(n, 0.0) - theirs.get(n, 0.0)) for n in names), default=0.0)


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--end-to-end", action="store_true",
                        help="only the end-to-end rows (fresh processes) and the limit")
    parser.add_argument("--end-to-end-only", metavar="PATHS_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--cli-only", metavar="PATHS_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--limit-only", metavar="PATHS_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()

    child = args.end_to_end_only or args.cli_only or args.limit_only
    if child:
        paths = {k: Path(v) for k, v in json.loads(child).items()}
        run = (end_to_end if args.end_to_end_only else cli_end_to_end if args.cli_only
               else lambda p: limit(p["touchpoints"]))
        start = time.perf_counter()
        run(paths)
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))
        return

    for accounts in args.accounts:
        paths = workload(accounts, args.data)
        touches = pl.read_parquet(paths["touchpoints"])
        arrow_mb = touches.to_arrow().nbytes / 2**20
        print(f"\n## {accounts:,} accounts: {touches.height:,} touchpoints "
              f"({arrow_mb:,.0f} MB as Arrow), "
              f"{pl.read_parquet(paths['deals']).height:,} deals\n")
        del touches
        if args.end_to_end:
            _, base, _ = measure(lambda p=paths: limit(p["touchpoints"]), args.repeat)
            seconds, peak = end_to_end_subprocess(paths, args.repeat)
            print(f"limit {base:.3f} s | end to end {seconds:.3f} s = {seconds / base:.2f} x limit"
                  f" | peak RSS {peak:,.0f} MB = {peak / arrow_mb:.2f} x Arrow size")
            seconds, peak = end_to_end_subprocess(paths, args.repeat, "--cli-only")
            print(f"limit {base:.3f} s | attribution run (writes the result files) "
                  f"{seconds:.3f} s = {seconds / base:.2f} x limit"
                  f" | peak RSS {peak:,.0f} MB = {peak / arrow_mb:.2f} x Arrow size")
            limits, seconds, ratio = paired_end_to_end(paths, args.repeat)
            print(f"paired (limit, then end to end, each in a fresh process) x{args.repeat}: "
                  f"limit {limits:.3f} s | end to end {seconds:.3f} s | "
                  f"median ratio {ratio:.2f} x limit")
            sys.stdout.flush()
            continue
        rows = stages(paths, args.repeat, report=not args.no_report)
        base = rows[0]["seconds"]
        print("| stage | seconds (median) | x limit | peak RSS MB |")
        print("|---|---:|---:|---:|")
        for row in rows:
            print(f"| {row['stage']} | {row['seconds']:.3f} | {row['seconds'] / base:.2f} | "
                  f"{row['peak_rss_mb']:,.0f} |")
        seconds, peak = end_to_end_subprocess(paths, args.repeat)
        print(f"| **end to end** (load, journeys, 8 rule-based models, Markov 1, summary; "
              f"fresh process) | {seconds:.3f} | {seconds / base:.2f} | {peak:,.0f} "
              f"(= {peak / arrow_mb:.2f} x Arrow size) |")
        seconds, peak = end_to_end_subprocess(paths, args.repeat, "--cli-only")
        print(f"| **attribution run** (the same, through the CLI, writing every result file; "
              f"fresh process) | {seconds:.3f} | {seconds / base:.2f} | {peak:,.0f} "
              f"(= {peak / arrow_mb:.2f} x Arrow size) |")
        if not args.no_peers:
            print("\nPeers on the same journeys:\n")
            for row in peers(paths, args.repeat):
                print(f"- {json.dumps(row)}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
