"""Benchmark of issue 26: the three comparisons, from a clean checkout (with the bench extra).

1. **What users run, against the limit.** ``attribution -q run`` with the default models,
   writing its default files (Parquet), and ``attribution -q compare`` with the default
   models, each a fresh process, against the **scan-and-sort limit** as a fresh process
   (``python -c``: polars scanning the touchpoints Parquet file and sorting it by account and
   time once, imports included, as the CLI's are). On two workloads of ``--touchpoints``
   touchpoints (default 10^7):

   * ``bench``: the bench workload (``bench/bench_pipeline.py``'s ``workload``: the
     simulator's baseline world written as typed Parquet), accounts = touchpoints x 0.145;
   * ``sim``: the export ``attribution simulate --accounts A --format parquet`` writes, with
     its contacts file; the touchpoints' timestamps cast to a UTC datetime, contacts and deals
     as written.

   Each round runs the three sides in turn, the order rotated from one round to the next, so
   a machine that speeds up or slows down weighs on every side alike. Per side: wall seconds,
   CPU seconds (user + system of the child, from ``wait4``'s rusage), peak RSS (the child's
   ``ru_maxrss``; this process stays small, so the fork's carried-over high-water mark is
   not what is reported). Ratios are the medians over the rounds of each round's run / limit;
   peak RSS is over the touchpoints' Arrow size. The targets: run within 3x (wall and CPU),
   compare within 2.5x, peak RSS at most 2.5x the Arrow size.
2. **Path tables against ChannelAttribution**: ``bench/bench_paths.py`` on a 10^6-journey
   path table (``bench/gen_paths.py`` writes it when missing).
3. **Past memory**: ``bench/bench_partitioned.py`` (the partitioned run at 10^6..10^8
   touchpoints), when that script is present.

The load average is printed before and after each part: on a shared machine the ratios of
sides run in the same rounds are what count.

Run from the repository root::

    python bench/bench_issue26.py                                 # 10^7, every target
    python bench/bench_issue26.py --touchpoints 1000000 --rounds 3 --targets 1
    python bench/bench_issue26.py --workloads sim --skip-paths --skip-partitioned
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
#: accounts per touchpoint of the simulator's baseline world (1,450,000 accounts: 9,975,509
#: touchpoints)
ACCOUNTS_PER_TOUCHPOINT = 0.145

LIMIT_CODE = (
    "import sys, polars as pl; "
    "pl.scan_parquet(sys.argv[1]).sort(['account_id', 'timestamp']).collect()"
)
ARROW_CODE = (
    "import sys, json, polars as pl; t = pl.read_parquet(sys.argv[1]); "
    "print(json.dumps({'rows': t.height, 'arrow_bytes': t.to_arrow().nbytes}))"
)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def log(text: str) -> None:
    print(text, flush=True)


# -- workloads -------------------------------------------------------------------------------
def bench_workload(accounts: int, data: Path) -> dict[str, Path]:
    """The bench workload (made once by ``bench_pipeline.workload`` in a child process, so this
    one stays small)."""
    folder = data / f"accounts_{accounts}_seed_0"
    paths = {n: folder / f"{n}.parquet" for n in ("touchpoints", "deals", "contacts")}
    if not all(p.exists() for p in paths.values()):
        code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); sys.argv = ['x']; "
                f"import bench_pipeline as b; from pathlib import Path; "
                f"b.workload({accounts}, Path({str(data)!r}))")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return paths


def sim_workload(accounts: int, data: Path) -> dict[str, Path]:
    """``attribution simulate --accounts A --format parquet``'s export; the touchpoints'
    timestamps cast to a UTC datetime, contacts and deals as written."""
    folder = data / f"simulate_{accounts}_parquet"
    paths = {n: folder / f"{n}.parquet" for n in ("touchpoints", "deals", "contacts")}
    if all(p.exists() for p in paths.values()):
        return paths
    raw = folder / "export"
    subprocess.run([sys.executable, "cli.py", "-q", "simulate", "--accounts", str(accounts),
                    "--format", "parquet", "--out", str(raw)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    cast = (
        "import sys, polars as pl; "
        "pl.scan_parquet(sys.argv[1]).with_columns(pl.col('timestamp').str.to_datetime("
        "'%Y-%m-%dT%H:%M:%SZ', time_zone='UTC')).sink_parquet(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", cast, str(raw / "touchpoints.parquet"),
                    str(paths["touchpoints"])], check=True)
    for name in ("deals", "contacts"):
        shutil.copyfile(raw / f"{name}.parquet", paths[name])
    shutil.rmtree(raw)
    return paths


# -- one side in a fresh process ---------------------------------------------------------------
def measure(command: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of ``command`` run as a
    fresh child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n"
                         f"{stderr.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024}


def sides_of(paths: dict[str, Path], out: Path) -> dict[str, list[str]]:
    inputs = ["--touchpoints", str(paths["touchpoints"]), "--deals", str(paths["deals"]),
              "--contacts", str(paths["contacts"])]
    return {
        "limit": [sys.executable, "-c", LIMIT_CODE, str(paths["touchpoints"])],
        "run": [sys.executable, "cli.py", "-q", "run", *inputs, "--out", str(out)],
        "compare": [sys.executable, "cli.py", "-q", "compare", *inputs],
    }


def target_1(name: str, paths: dict[str, Path], rounds: int) -> dict[str, Any]:
    size = json.loads(subprocess.run([sys.executable, "-c", ARROW_CODE,
                                      str(paths["touchpoints"])], check=True,
                                     capture_output=True, text=True).stdout)
    arrow_mb = size["arrow_bytes"] / 2**20
    log(f"\n### target 1, workload {name}: {size['rows']:,} touchpoints "
        f"({arrow_mb:,.0f} MiB as Arrow), {rounds} rounds; load average {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-issue26-", dir=BENCH) as scratch:
        out = Path(scratch) / "out"
        sides = sides_of(paths, out)
        names = list(sides)
        results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for round_ in range(rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for side in order:
                shutil.rmtree(out, ignore_errors=True)
                results[side].append(measure(sides[side]))
            log(f"round {round_ + 1} ({' -> '.join(order)}): " + " | ".join(
                f"{s} {results[s][-1]['wall']:.2f} s / {results[s][-1]['cpu']:.2f} s CPU / "
                f"{results[s][-1]['peak_mb']:,.0f} MiB" for s in names))
    log(f"load average after: {loadavg()}")
    log("\nmedians over the rounds; ratio = the side over the limit in the same round "
        "(median of the rounds' ratios)")
    log("| side | wall s | CPU s | peak RSS MiB | wall / limit | CPU / limit | "
        "peak RSS / Arrow |")
    log("|---|---:|---:|---:|---:|---:|---:|")
    summary: dict[str, Any] = {"workload": name, "touchpoints": size["rows"],
                               "arrow_mb": arrow_mb, "sides": {}}
    limit = results["limit"]
    for side in names:
        runs = results[side]
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        pairs = list(zip(runs, limit, strict=True))
        wall_ratio = statistics.median(r["wall"] / b["wall"] for r, b in pairs)
        cpu_ratio = statistics.median(r["cpu"] / b["cpu"] for r, b in pairs)
        summary["sides"][side] = {"wall": wall, "cpu": cpu, "peak_mb": peak,
                                  "wall_ratio": wall_ratio, "cpu_ratio": cpu_ratio}
        log(f"| {side} | {wall:.2f} | {cpu:.2f} | {peak:,.0f} | {wall_ratio:.2f}x | "
            f"{cpu_ratio:.2f}x | {peak / arrow_mb:.2f}x |")
    return summary


# -- targets 2 and 3: their own scripts ----------------------------------------------------------
def target_2(data: Path, journeys: int, rounds: int) -> None:
    table = data / f"paths_{journeys}.csv"
    if not table.exists():
        subprocess.run([sys.executable, str(BENCH / "gen_paths.py"), str(journeys),
                        "--outdir", str(data)], check=True, cwd=ROOT)
    log(f"\n### target 2: bench/bench_paths.py on {table.name}; load average {loadavg()}")
    subprocess.run([sys.executable, str(BENCH / "bench_paths.py"), "--paths", str(table),
                    "--orders", "1", "2", "3", "--rounds", str(rounds)], check=True, cwd=ROOT)
    log(f"load average after: {loadavg()}")


def target_3(extra: list[str]) -> None:
    script = BENCH / "bench_partitioned.py"
    if not script.exists():
        log("\n### target 3: bench/bench_partitioned.py is not in this checkout: skipped")
        return
    log(f"\n### target 3: bench/bench_partitioned.py {' '.join(extra)}; "
        f"load average {loadavg()}")
    subprocess.run([sys.executable, str(script), *extra], check=True, cwd=ROOT)
    log(f"load average after: {loadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=10_000_000,
                        help="about this many touchpoints in each workload of target 1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", choices=["bench", "sim"],
                        default=["bench", "sim"])
    parser.add_argument("--data", type=Path, default=BENCH / "data")
    parser.add_argument("--targets", type=int, nargs="+", choices=[1, 2, 3], default=[1, 2, 3])
    parser.add_argument("--skip-paths", action="store_true", help="leave target 2 out")
    parser.add_argument("--skip-partitioned", action="store_true", help="leave target 3 out")
    parser.add_argument("--path-journeys", type=int, default=1_000_000)
    parser.add_argument("--partitioned-args",
                        default="--touchpoints 1000000 10000000 100000000",
                        help="arguments for bench/bench_partitioned.py, as one string")
    parser.add_argument("--json", type=Path, help="also write target 1's medians here")
    args = parser.parse_args()

    accounts = round(args.touchpoints * ACCOUNTS_PER_TOUCHPOINT)
    log(f"# issue 26 benchmark: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, load average {loadavg()}")
    summaries = []
    if 1 in args.targets:
        args.data.mkdir(parents=True, exist_ok=True)
        for name in args.workloads:
            make = bench_workload if name == "bench" else sim_workload
            summaries.append(target_1(name, make(accounts, args.data), args.rounds))
        if args.json:
            args.json.write_text(json.dumps(summaries, indent=2) + "\n", "utf-8")
    if 2 in args.targets and not args.skip_paths:
        target_2(args.data, args.path_journeys, args.rounds)
    if 3 in args.targets and not args.skip_partitioned:
        target_3(args.partitioned_args.split())


if __name__ == "__main__":
    main()
