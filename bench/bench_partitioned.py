"""Benchmark: ``attribution run`` past memory, on a Parquet dataset of many files (issue 26,
target 3).

For each size, a simulated export of about that many touchpoints (the simulator's typed
Parquet: touchpoints and contacts as folders of parts of at most 100,000 accounts each, ids
prefixed per part so the parts are one export, as ``bench_spark_memory.py`` makes them; the
deals in one file) is run by ``attribution -q run --touchpoints DIR --contacts DIR --deals
FILE`` in a fresh process under ``/usr/bin/time -v``, which reports the wall time and the peak
RSS of the whole process. The run partitions the accounts (:mod:`attribution.partitioned`)
because the touchpoints are a folder; ``--partitions`` is left to the run unless given here.

Run (from the repository root)::

    python bench/bench_partitioned.py --touchpoints 1000000 10000000 100000000
    python bench/bench_partitioned.py --touchpoints 1000000 --models last_touch markov
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_spark_memory import export  # noqa: E402  (the same simulated parts)


def dataset(touchpoints: int, data: Path) -> Path:
    """The export as a folder of parts, with its deals gathered into one file."""
    folder = export(touchpoints, data)
    deals = folder / "deals.parquet"
    if not deals.exists():
        parts = sorted((folder / "deals").glob("*.parquet"))
        pl.scan_parquet(parts).sink_parquet(deals)
    return folder


def arrow_bytes(folder: Path) -> int:
    """The touchpoints' size as Arrow (what an in-memory run would hold to start with)."""
    size = 0
    for part in sorted((folder / "touchpoints").glob("*.parquet")):
        size += pl.read_parquet(part).estimated_size()
    return size


def run_once(folder: Path, models: list[str], partitions: int | None, out: Path) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, str(ROOT / "cli.py"), "-q", "run",
               "--touchpoints", str(folder / "touchpoints"),
               "--contacts", str(folder / "contacts"),
               "--deals", str(folder / "deals.parquet"),
               "--out", str(out)]
    for model in models:
        command += ["--model", model]
    if partitions:
        command += ["--partitions", str(partitions)]
    load = os.getloadavg()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", done.stderr)[1])
              for kind in ("User", "System"))
    record = json.loads((out / "run.json").read_text())
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": peak_kb / 1e6,
            "load_before": [round(v, 2) for v in load],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "partitions": partitions or default_partitions(folder),
            "models": [m["name"] for m in record["models"]]}


def default_partitions(folder: Path) -> int | None:
    """The partitions the run picks on its own (:func:`attribution.partitioned.partitions_for`)."""
    from attribution import partitioned
    from attribution.config import Config

    return partitioned.partitions_for(Config(touchpoints=folder / "touchpoints",
                                             deals=folder / "deals.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "parts-bench")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    for touchpoints in args.touchpoints:
        folder = dataset(touchpoints, args.data)
        rows = pl.scan_parquet(folder / "touchpoints" / "*.parquet").select(pl.len()).collect()
        arrow = arrow_bytes(folder) if touchpoints <= 10_000_000 else None
        out = args.data / f"out_{touchpoints}"
        shutil.rmtree(out, ignore_errors=True)
        measured = run_once(folder, args.models, args.partitions, out)
        print(json.dumps({"touchpoints": rows.item(), "arrow_gb": arrow and arrow / 1e9,
                          **measured}), flush=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
