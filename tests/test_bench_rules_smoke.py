"""A tiny run of bench/bench_rules.py, so it cannot rot (timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts the benchmark scripts in fresh processes

ROOT = Path(__file__).resolve().parent.parent


def test_rules_benchmark_smoke_run():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_rules.py"), "--rules", "200", "--repeat", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == "rules: built-in 24, large 200; median of 1"
    steps = [line.split("|")[1].strip() for line in lines
             if line.startswith("| ") and "---" not in line]
    assert steps == ["step", "parse + compile the rules file",
                     "match the demo's 41 distinct utm combinations",
                     "load + journeys (pipeline.prepare, rules file read inside)",
                     "`attribution run` on the demo, end to end (a new process each)"]
