"""A tiny run of the benchmark harness, so it cannot rot (timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts the benchmark scripts in fresh processes

ROOT = Path(__file__).resolve().parent.parent


def test_pipeline_benchmark_smoke_run(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_pipeline.py"), "--accounts", "200",
         "--repeat", "1", "--no-peers", "--no-report", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    stages = [line.split("|")[1].strip() for line in lines
              if line.startswith("| ") and "---" not in line]
    assert stages[0] == "stage"
    assert {"limit: scan + sort touchpoints", "load", "journeys", "model markov order 3",
            "channel summary"} <= set(stages)
    assert any("**end to end**" in line for line in lines)
    assert any("**attribution run**" in line for line in lines)


def test_pipeline_benchmark_end_to_end_and_peers_smoke_run(tmp_path):
    bench = [sys.executable, str(ROOT / "bench" / "bench_pipeline.py"), "--accounts", "200",
             "--repeat", "1", "--data", str(tmp_path)]
    completed = subprocess.run([*bench, "--end-to-end"], capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr
    paired = [line for line in completed.stdout.splitlines() if line.startswith("paired")]
    assert len(paired) == 1 and "median ratio" in paired[0]
    # the peers' rows, ours first (the peers themselves may not be installed)
    completed = subprocess.run([*bench, "--no-report"], capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "attribution first/last/linear with exact credit" in completed.stdout


def test_key_steps_benchmark_smoke_run(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_keys.py"), "--accounts", "200",
         "--repeat", "1", "--memory", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    steps = [line.split("|")[1].strip() for line in completed.stdout.splitlines()
             if line.startswith("| ") and "---" not in line]
    assert steps[1] == "window join"
    assert steps[2].startswith("contact lookup")
    assert steps[3] == "deal accounts among the known"
    assert any(step.startswith("credit: model") for step in steps)
