"""Benchmark (issue 26, target 2): from a path-table file to removal effects, whole processes,
attribution against ChannelAttribution.

Each side is a fresh Python process that reads the same path table (ChannelAttribution's
layout: ``path;total_conversions;total_conversion_value;total_null``, written by
``bench/gen_paths.py``) and computes what the user asked for:

* ``ours markov K``: ``python cli.py -q compare --paths F --model markov --markov-order K
  --format json`` (exact removal effects, credit of markov and last-touch, the comparison);
* ``CA markov_model K``: pandas reads F, ``markov_model`` at its defaults (simulation,
  ``nsim_start=1e5``, ``ncore=1``; ``verbose``/``flg_pro`` off, they only print), with the
  file's value and null columns;
* ``CA exact K``: ``transition_matrix`` then the absorbing chain solved exactly (scipy, one
  sparse LU per removed channel): ChannelAttribution's exact route;
* ``ours heuristics``: ``compare --paths F --model first_touch --model last_touch --model
  linear``; ``CA heuristic_models``: first, last and linear touch.

Rounds rotate the order of the sides; each row reports the median wall time and the CPU time
(user + system of the child) over the rounds, and the ratios are CA's median over ours (above
1: we are faster). Before timing, our removal effects at each order are checked against the
exact solve of ChannelAttribution's own transition matrix (must agree to 1e-12).

Run (from the repository root, with the ``bench`` extra installed)::

    python bench/gen_paths.py 1000000 --outdir bench/data      # 10^6 journeys, 245,871 paths
    python bench/bench_paths.py --paths bench/data/paths_1000000.csv --orders 1 2 3 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEURISTICS = ("first_touch", "last_touch", "linear")


def command_of(side: str, paths: str, order: int) -> list[str]:
    """The command line of one side: our CLI as a user runs it, or this script's CA side."""
    if side == "ours-markov":
        models = ["--model", "markov", "--markov-order", str(order)]
    elif side == "ours-heuristics":
        models = [a for model in HEURISTICS for a in ("--model", model)]
    else:
        return [sys.executable, str(Path(__file__).resolve()), "--side", side, "--paths", paths,
                "--order", str(order)]
    return [sys.executable, "cli.py", "-q", "compare", "--paths", paths, *models,
            "--format", "json"]


def run_side(side: str, paths: str, order: int) -> None:
    """One of ChannelAttribution's sides, in this (fresh) process."""
    with contextlib.redirect_stdout(io.StringIO()):
        import pandas
        from ChannelAttribution import heuristic_models, markov_model, transition_matrix

        frame = pandas.read_csv(paths)
        if side == "ca-markov":
            markov_model(frame, "path", "total_conversions", var_value="total_conversion_value",
                         var_null="total_null", order=order, verbose=False, flg_pro=False)
        elif side == "ca-exact":
            exact_shares(transition_matrix(frame, "path", "total_conversions", "total_null",
                                           order=order, flg_pro=False))
        elif side == "ca-heuristics":
            heuristic_models(frame, "path", "total_conversions",
                             var_value="total_conversion_value", flg_pro=False)
        else:
            raise SystemExit(f"unknown side {side!r}")


def exact_shares(result: dict) -> dict[str, float]:
    """Removal-effect shares from ChannelAttribution's transition matrix, solved exactly as an
    absorbing chain (one sparse LU per removed channel)."""
    import numpy as np
    import pandas
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    names = dict(zip(result["channels"]["id_channel"].astype(str),
                     result["channels"]["channel_name"], strict=True))
    table = result["transition_matrix"]
    absorbing = {"(start)", "(conversion)", "(null)"}
    states = sorted((set(table["channel_from"]) | set(table["channel_to"])) - absorbing)
    nodes = pandas.Index(["(start)", *states])
    source = nodes.get_indexer(table["channel_from"])
    target = nodes.get_indexer(table["channel_to"])
    probability = table["transition_probability"].to_numpy(dtype=float)
    converts = (table["channel_to"] == "(conversion)").to_numpy()
    exits = np.bincount(source[converts], weights=probability[converts], minlength=len(nodes))
    moves = target >= 0
    system = (sp.identity(len(nodes), format="csr") - sp.csr_matrix(
        (probability[moves], (source[moves], target[moves])), shape=(len(nodes),) * 2)).tocsr()
    members = [set(state.split(" ")) for state in nodes]

    def probability_without(channel: str | None) -> float:
        keep = np.array([i for i, m in enumerate(members) if i == 0 or channel not in m])
        lu = spla.splu(system[keep][:, keep].tocsc())
        return float(lu.solve(exits[keep])[0])

    full = probability_without(None)
    effects = {names[c]: 1 - probability_without(c) / full for c in names}
    total = sum(effects.values())
    return {channel: effect / total for channel, effect in effects.items()}


def check_exact(paths: str, orders: list[int]) -> None:
    """Our removal-effect shares against the exact solve of ChannelAttribution's matrix."""
    sys.path.insert(0, str(ROOT))
    with contextlib.redirect_stdout(io.StringIO()):
        import pandas
        from ChannelAttribution import transition_matrix

    from attribution.models.markov import MarkovModel
    from attribution.paths import read_paths

    journeys = read_paths(paths).journeys
    frame = pandas.read_csv(paths)
    for order in orders:
        ours = MarkovModel(order=order).fit(journeys).removal_effects()
        with contextlib.redirect_stdout(io.StringIO()):
            exact = exact_shares(transition_matrix(frame, "path", "total_conversions",
                                                   "total_null", order=order, flg_pro=False))
        worst = max(abs(share - exact[channel])
                    for channel, share in ours.select("channel", "share").iter_rows())
        print(f"order {order}: max |ours - CA exact| share = {worst:.1e}"
              f" over {ours.height} channels", flush=True)
        if worst > 1e-12:
            raise SystemExit(f"order {order}: our removal effects are off by {worst:.1e}")


def installed_env() -> dict[str, str]:
    """The environment of a user's process: Python's bytecode cache on. An installed package
    has its ``.pyc`` files (pip compiles them, as it did ChannelAttribution's), so ours are
    compiled once here and the children may read them; a ``PYTHONDONTWRITEBYTECODE`` of the
    calling shell would otherwise make every one of our processes compile the package anew."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "attribution", "cli.py"],
                   check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return env


def timed(side: str, paths: str, order: int, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one fresh process running ``side``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begin = time.perf_counter()
    subprocess.run(command_of(side, paths, order), check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - begin
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=str(ROOT / "bench" / "data" / "paths_1000000.csv"))
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-check", action="store_true", help="skip the exactness check")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--order", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = str(Path(args.paths).resolve())
    if args.side:
        run_side(args.side, paths, args.order)
        return
    if not Path(paths).exists():
        raise SystemExit(f"{paths}: no path table; write one with "
                         "`python bench/gen_paths.py 1000000 --outdir bench/data`")
    print(f"{paths}: {os.path.getsize(paths) / 2**20:.1f} MiB; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if not args.no_check:
        check_exact(paths, args.orders)
    sides = [(side, order) for order in args.orders
             for side in ("ours-markov", "ca-markov", "ca-exact")]
    sides += [("ours-heuristics", 1), ("ca-heuristics", 1)]
    times: dict[tuple[str, int], list[tuple[float, float]]] = {s: [] for s in sides}
    env = installed_env()
    for round_ in range(args.rounds):
        shift = round_ % len(sides)
        for side, order in sides[shift:] + sides[:shift]:  # rotated each round
            times[side, order].append(timed(side, paths, order, env))
        print(f"round {round_ + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}",
              flush=True)

    def median(side: str, order: int) -> tuple[float, float]:
        runs = times[side, order]
        return (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))

    print(f"\nmedians of {args.rounds} rounds (wall s / CPU s); ratio = CA / ours "
          "(above 1: ours faster)")
    print(f"{'':10s} {'ours':>15s} {'CA markov_model':>17s} {'CA exact':>15s}"
          f" {'vs markov_model':>17s} {'vs exact':>15s}")
    for order in args.orders:
        ours, model, exact = (median(s, order) for s in ("ours-markov", "ca-markov", "ca-exact"))
        print(f"order {order:<4d} {ours[0]:6.2f} / {ours[1]:5.2f} {model[0]:8.2f} / {model[1]:5.2f}"
              f" {exact[0]:6.2f} / {exact[1]:5.2f}"
              f" {model[0] / ours[0]:7.2f}x / {model[1] / ours[1]:4.2f}x"
              f" {exact[0] / ours[0]:5.2f}x / {exact[1] / ours[1]:4.2f}x")
    ours, theirs = median("ours-heuristics", 1), median("ca-heuristics", 1)
    print(f"heuristics {ours[0]:6.2f} / {ours[1]:5.2f} {theirs[0]:8.2f} / {theirs[1]:5.2f}"
          f" {'':15s} {theirs[0] / ours[0]:7.2f}x / {theirs[1] / ours[1]:4.2f}x"
          "   (CA heuristic_models)")


if __name__ == "__main__":
    main()
