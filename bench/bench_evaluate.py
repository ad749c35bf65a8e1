"""Benchmark: how wrong is each attribution model? Every model against the exact truth.

Runs :func:`attribution.evaluate.evaluate` over the named scenarios, the adversarial worlds
and ``--random-worlds`` random worlds, with every registered model at its defaults plus a few
variants (Markov weighted by revenue, conversion-rate Shapley on revenue, the incremental
model on conversions and on every touch). Prints Markdown: the per-model summary (mean
absolute error of channel revenue shares against the Shapley truth, on demand-creation
channels, share misallocated, against the removal truth, worlds where each beats last-touch
and by how much), the per-world error of each model, and timings (the truth alone, and
simulate + truth + every model per world).

Run:  /tmp/venv/bin/python bench/bench_evaluate.py [--random-worlds 20] [--accounts 10000]
          [--seed 0] [--no-variants] [--out DIR]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attribution.evaluate import evaluate, evaluation_worlds
from attribution.models import MODELS, get_model
from attribution.simulate import ground_truth, shapley_truth, simulate


def model_list(variants: bool) -> list:
    models = [get_model(name) for name in MODELS]
    if variants:
        models += [
            get_model("markov", weight_by="revenue"),
            get_model("shapley", variant="rate", value="revenue"),
            get_model("incremental", value="conversions"),
            get_model("incremental", before_creation=False),
        ]
    return models


def markdown(frame: pl.DataFrame, digits: int = 3) -> str:
    """A frame as a Markdown table, floats rounded."""
    columns = frame.columns
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.iter_rows():
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append("" if np.isnan(value) else f"{value:.{digits}f}")
            elif value is None:
                cells.append("")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-worlds", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--out", type=Path, help="write the evaluation frames as Parquet here")
    args = parser.parse_args()

    worlds = evaluation_worlds(args.random_worlds, seed=args.seed)
    models = model_list(not args.no_variants)
    print(f"# Evaluation: {len(worlds)} worlds x {len(models)} models, {args.accounts:,} accounts")
    print()
    print(
        f"python {platform.python_version()}, polars {pl.__version__}, numpy {np.__version__}, "
        f"{platform.machine()}"
    )
    print()

    # the truth alone, per world (simulate excluded)
    truth_rows = []
    for index, world in enumerate(worlds):
        export = simulate(args.accounts, seed=args.seed + index, world=world)
        started = time.perf_counter()
        ground_truth(export)
        removal = time.perf_counter() - started
        started = time.perf_counter()
        shapley_truth(export)
        shapley = time.perf_counter() - started
        truth_rows.append((world.name, len(world.channels), removal, shapley))
    truth_times = pl.DataFrame(
        truth_rows,
        schema=["world", "channels", "removal_truth_s", "shapley_truth_s"],
        orient="row",
    )

    started = time.perf_counter()
    result = evaluate(worlds, n_accounts=args.accounts, seed=args.seed, models=models)
    total = time.perf_counter() - started
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("worlds", "truth", "shares", "errors"):
            getattr(result, name).write_parquet(args.out / f"{name}.parquet")
        result.summary().write_parquet(args.out / "summary.parquet")

    print(f"evaluate(): {total:.1f} s in all")
    print()
    print("## Per model, over every world (sorted by mean absolute error)")
    print()
    print(markdown(result.summary()))
    print()
    kinds = result.errors.group_by("kind", "model").agg(pl.col("mae").mean())
    print("## Mean absolute error by kind of world")
    print()
    print(
        markdown(
            kinds.pivot(on="kind", index="model", values="mae", sort_columns=True).sort("random")
        )
    )
    print()
    print("## Per world: mean absolute error of channel shares (Shapley truth)")
    print()
    order = [str(m) for m in result.summary()["model"]]
    per_world = result.errors.pivot(on="model", index="world", values="mae").select("world", *order)
    print(markdown(per_world))
    print()
    print("## Per world: demand-creation channels only")
    print()
    demand = result.errors.pivot(on="model", index="world", values="mae_demand_creation").select(
        "world", *order
    )
    print(markdown(demand))
    print()
    print("## Worlds")
    print()
    worlds_frame = result.worlds.join(truth_times.drop("channels"), on="world").with_columns(
        (pl.col("won_revenue_cents") / 100).round(0).cast(pl.Int64).alias("won_revenue_usd"),
        (pl.col("incremental_revenue_cents") / pl.col("won_revenue_cents"))
        .alias("caused_by_marketing"),
    )
    print(
        markdown(
            worlds_frame.select(
                "world", "kind", "channels", "causal_links", "last_touch_only", "won_deals",
                "won_revenue_usd", "caused_by_marketing", "removal_truth_s", "shapley_truth_s",
                "seconds",
            )
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
