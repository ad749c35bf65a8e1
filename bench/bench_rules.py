"""Benchmark: channel rules at scale. The demo export loaded (and its journeys built) with the
built-in rules against the same with 10,000 rules (issue #21: within 3x), the rule matching
alone over the demo's distinct utm combinations, and ``attribution run`` end to end.

The large rules file is the built-in rules placed *after* ``--rules`` generated ones, so every
demo touch is tried against all of them before its rule is found: literal ``source`` rules,
``source`` + ``medium`` rules, ``campaign`` rules, and one in ten a glob (``*partner-N*``), none
matching the demo (the demo's channels, and so its result, are unchanged; the benchmark checks
that).

Run (from the repository root)::

    python bench/bench_rules.py --rules 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribution import pipeline  # noqa: E402
from attribution.channels import default_rules_text, load_rules  # noqa: E402
from attribution.config import load_config  # noqa: E402

DEMO = ROOT / "fixtures" / "demo"


def generated_rules(count: int) -> str:
    """``count`` rules that match nothing in the demo, in the four shapes above."""
    lines = []
    for number in range(count):
        lines.append("[[rule]]")
        lines.append(f'channel = "partner_{number}"')
        shape = number % 10
        if shape == 9:
            lines.append(f'source = ["*partner-{number}*"]')
        elif shape % 3 == 0:
            lines.append(f'source = ["partner-{number}", "partner-{number}.com"]')
        elif shape % 3 == 1:
            lines.append(f'source = "partner-{number}"')
            lines.append('medium = ["cpc", "referral"]')
        else:
            lines.append(f'campaign = "launch-{number}"')
        lines.append("")
    return "\n".join(lines)


def large_rules_text(count: int) -> str:
    """The generated rules, then the built-in ones (their [groups] first: TOML needs the table
    before the array of rules)."""
    builtin = default_rules_text()
    groups, _, rules = builtin.partition("[[rule]]")
    extra = max(0, count - len(load_rules().rules))
    return f"{groups}{generated_rules(extra)}\n[[rule]]{rules}"


def timed(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_run(out: Path, rules: Path | None) -> None:
    command = [sys.executable, str(ROOT / "cli.py"), "-q", "run", "--config",
               str(DEMO / "attribution.toml"), "--out", str(out), "--format", "json"]
    if rules is not None:
        command += ["--channel-rules", str(rules)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="attribution-bench-rules-") as folder:
        rules_path = Path(folder) / "channels.toml"
        rules_path.write_text(large_rules_text(args.rules), encoding="utf-8")
        base = load_config(DEMO / "attribution.toml")
        configs = {"built-in": base, "large": base.replace(channel_rules=rules_path)}
        large = load_rules(rules_path)
        builtin = load_rules()
        combos = pl.read_csv(DEMO / "touchpoints.csv", infer_schema=False).select(
            "utm_source", "utm_medium", "utm_campaign").unique()

        def mapping(rules: Any) -> Callable[[], pl.DataFrame]:
            return lambda: combos.select(rules.channel_of(
                pl.col("utm_source"), pl.col("utm_medium"), pl.col("utm_campaign")))

        assert mapping(large)().equals(mapping(builtin)()), "the generated rules changed a channel"
        compile_time = timed(lambda: load_rules(rules_path), args.repeat)
        rows = [
            ("parse + compile the rules file", timed(load_rules, args.repeat), compile_time),
            (f"match the demo's {combos.height} distinct utm combinations",
             timed(mapping(builtin), args.repeat), timed(mapping(large), args.repeat)),
            ("load + journeys (pipeline.prepare, rules file read inside)",
             timed(lambda: pipeline.prepare(configs["built-in"]), args.repeat),
             timed(lambda: pipeline.prepare(configs["large"]), args.repeat)),
            ("`attribution run` on the demo, end to end (a new process each)",
             timed(lambda: cli_run(Path(folder) / "out", None), args.repeat),
             timed(lambda: cli_run(Path(folder) / "out", rules_path), args.repeat)),
        ]
    print(f"rules: built-in {len(builtin.rules)}, large {len(large.rules):,}; "
          f"median of {args.repeat}\n")
    print("| step | built-in (s) | large (s) | ratio |")
    print("|---|---:|---:|---:|")
    for name, small, big in rows:
        print(f"| {name} | {small:.4f} | {big:.4f} | {big / small:.2f}x |")


if __name__ == "__main__":
    main()
