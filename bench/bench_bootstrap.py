"""Bootstrap intervals (``--bootstrap N``) against one plain run, on the demo and at scale.

Measures, each in a fresh Python process (so no cache or warm import helps either side):

* the demo export: one plain run of every model, and the same run with ``N`` replicates of
  every model (the target: 200 replicates in under 15 s on 2 cores);
* a simulated export of about ``--touchpoints`` touchpoints: the same two, and their ratio
  (the target: within 30x one plain run);
* the demo's ``cli.py run --config fixtures/demo/attribution.toml --bootstrap N``, the whole
  command in a fresh process (start-up, reading and writing included).

The machine may be shared: each size is measured in ``--rounds`` rounds, a plain run and a
bootstrap run back to back in each, so a ratio compares two runs under about the same load.
Each line shows the load average (1 minute) when the measurement ended.

Usage::

    python bench/bench_bootstrap.py                      # 200 replicates, 10^6 touchpoints
    python bench/bench_bootstrap.py --large-replicates 20   # a shorter large run (scaled)

Timings are wall seconds of the library calls (``pipeline.run`` then
``intervals.with_intervals``), inputs read and journeys built included in the plain run.
Results go to bench/RESULTS-bootstrap.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo" / "attribution.toml"


def child(config_path: str, folder: str | None, replicates: int) -> None:
    sys.path.insert(0, str(ROOT))
    from attribution import intervals, pipeline
    from attribution.config import load_config

    config = load_config(config_path if config_path != "-" else None)
    if folder:
        base = Path(folder)
        config = config.replace(touchpoints=base / "touchpoints.parquet",
                                deals=base / "deals.parquet", contacts=base / "contacts.parquet")
    start, cpu = time.perf_counter(), time.process_time()
    result = pipeline.run(config, keep_inputs=False, keep_credit=False)
    plain, plain_cpu = time.perf_counter() - start, time.process_time() - cpu
    boot = boot_cpu = None
    if replicates:
        start, cpu = time.perf_counter(), time.process_time()
        intervals.with_intervals(result, replicates=replicates)
        boot, boot_cpu = time.perf_counter() - start, time.process_time() - cpu
    totals = result.totals()
    print(json.dumps({"plain": plain, "bootstrap": boot, "plain_cpu": plain_cpu,
                      "bootstrap_cpu": boot_cpu, "touches": totals["touches"],
                      "journeys": totals["journeys"], "won": totals["won_deals"],
                      "models": [m.name for m in result.models]}))


def measure(config: str, folder: str | None, replicates: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", config, folder or "",
                           str(replicates)], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli_seconds(replicates: int) -> tuple[float, float]:
    """Wall and CPU (user + system, every thread) seconds of the demo's
    ``cli.py run --bootstrap N`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "cli.py", "-q", "run", "--config", str(DEMO),
                        "--bootstrap", str(replicates), "--out", out], capture_output=True,
                       check=True, cwd=ROOT)
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def rounds(config: str, folder: str | None, replicates: int, count: int,
           label: str) -> list[tuple[dict, dict]]:
    """``count`` rounds of a plain run and a bootstrap run, back to back, each printed."""
    found = []
    for done in range(1, count + 1):
        plain = measure(config, folder, 0)
        plain_load = load()
        boot = measure(config, folder, replicates)
        print(f"{label} round {done}: plain run {plain['plain']:.2f} s "
              f"(cpu {plain['plain_cpu']:.1f} s, {plain_load}); {replicates} replicates "
              f"{boot['bootstrap']:.2f} s (cpu {boot['bootstrap_cpu']:.1f} s, {load()}), after "
              f"that process's own plain run of {boot['plain']:.2f} s", flush=True)
        found.append((plain, boot))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--large-replicates", type=int, default=None,
                        help="replicates at scale (default: --replicates); fewer are scaled "
                             "linearly to --replicates in the ratio, and the output says so")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--rounds", type=int, default=2,
                        help="plain and bootstrap runs measured back to back, this many times")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, folder, replicates = args.child
        child(config, folder or None, int(replicates))
        return
    print(f"python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cores visible, {load()}", flush=True)
    demo = rounds(str(DEMO), None, args.replicates, args.rounds, "demo")
    plain = demo[0][0]
    print(f"demo: {plain['touches']:,} touches, {plain['journeys']:,} journeys, "
          f"{plain['won']:,} won deals, {len(plain['models'])} models")
    for done in range(1, args.rounds + 1):
        wall, cpu = cli_seconds(args.replicates)
        print(f"demo round {done}: cli.py run --bootstrap {args.replicates}, a fresh process: "
              f"{wall:.2f} s (cpu {cpu:.1f} s, {load()}; target < 15 s)", flush=True)
    for done, (plain, boot) in enumerate(demo, 1):
        print(f"demo round {done}: ratio {boot['bootstrap'] / plain['plain']:.1f}x the plain "
              f"run before it, {boot['bootstrap'] / boot['plain']:.1f}x its own process's")
    if args.skip_large:
        return
    sys.path.insert(0, str(ROOT))
    from attribution import simulate

    accounts = max(100, args.touchpoints // 7)
    large_replicates = args.large_replicates or args.replicates
    scale = args.replicates / large_replicates
    note = (f" ({large_replicates} replicates measured, scaled to {args.replicates})"
            if large_replicates != args.replicates else "")
    with tempfile.TemporaryDirectory() as tmp:
        export = simulate.simulate(accounts, seed=0)
        simulate.write_export(export, Path(tmp), format="parquet")
        large = rounds("-", tmp, large_replicates, args.rounds, "large")
    plain = large[0][0]
    print(f"large: {plain['touches']:,} touches, {plain['journeys']:,} journeys, "
          f"{plain['won']:,} won deals, {len(plain['models'])} models")
    for done, (plain, boot) in enumerate(large, 1):
        seconds = boot["bootstrap"] * scale
        print(f"large round {done}: {args.replicates} replicates {seconds:.1f} s{note}; ratio "
              f"{seconds / plain['plain']:.1f}x the plain run before it, "
              f"{seconds / boot['plain']:.1f}x its own process's (target <= 30x)")


if __name__ == "__main__":
    main()
