"""Benchmark: Markov removal effects, attribution vs ChannelAttribution's markov_model.

Journeys come from a known first-order chain over 12 channels (numpy, seeded). For each size
and order we time

* ``ours (journeys)``: ``MarkovModel(order).fit(journeys).removal_effects()`` from touch-level
  journeys (one row per touch, grouped by journey in touch order as ``build_journeys`` gives
  them: grouping them into distinct paths is included in the time);
* ``ours (paths)``: the same from the distinct-path table (status ``path`` journeys), which is
  exactly what ChannelAttribution receives;
* ``CA markov_model``: ChannelAttribution's simulation estimate on the path table;

and print both sets of shares next to ChannelAttribution's exact values, obtained by solving
its own ``transition_matrix`` output as an absorbing chain.

Run:  /tmp/venv/bin/python bench/bench_markov.py [--sizes 100000 1000000] [--orders 1 2 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attribution.journeys import Journeys  # noqa: E402
from attribution.models.markov import MarkovModel  # noqa: E402

CHANNELS = np.array(
    ["direct", "email", "search", "social", "display", "events", "webinar", "partner",
     "content", "sdr", "review", "retarget"]
)


def first_order_process(n: int, seed: int = 0) -> tuple[Journeys, pl.DataFrame]:
    """n journeys from a random first-order chain; returns (journeys, distinct-path table)."""
    rng = np.random.default_rng(seed)
    k = len(CHANNELS)
    start = rng.dirichlet(np.ones(k))
    moves = rng.dirichlet(np.ones(k) * 0.6, size=k) * 0.78
    exits = np.column_stack([rng.uniform(0.02, 0.10, k), np.zeros(k)])
    exits[:, 1] = 1 - moves.sum(axis=1) - exits[:, 0]
    cumulative = np.cumsum(np.column_stack([moves, exits]), axis=1)

    state = rng.choice(k, size=n, p=start)
    alive = np.ones(n, dtype=bool)
    converted = np.zeros(n, dtype=bool)
    ids, positions, labels = [], [], []
    position = 0
    while alive.any():
        live = np.flatnonzero(alive)
        ids.append(live)
        positions.append(np.full(len(live), position, dtype=np.uint32))
        labels.append(state[live])
        step = (rng.random(len(live))[:, None] > cumulative[state[live]]).sum(axis=1)
        converted[live[step == k]] = True
        alive[live[step >= k]] = False
        state[live[step < k]] = step[step < k]
        position += 1
    journey, position_of, label = (np.concatenate(ids), np.concatenate(positions),
                                   np.concatenate(labels))
    # touches grouped by journey, in touch order: the layout build_journeys gives the models
    layout = np.lexsort((position_of, journey))
    touches = pl.DataFrame(
        {
            "journey_id": pl.Series(journey[layout]).cast(pl.String),
            "touch_index": position_of[layout],
            "channel": pl.Series(CHANNELS[label[layout]]),
        }
    )
    amount = rng.integers(1_000, 500_000, size=n)
    rows = pl.DataFrame(
        {
            "journey_id": pl.Series(np.arange(n)).cast(pl.String),
            "status": np.where(converted, "won", "lost"),
            "amount_cents": amount,
            "revenue_cents": np.where(converted, amount, 0),
        }
    )
    journeys = Journeys.from_frames(touches, rows)
    table = (
        touches.sort("journey_id", "touch_index")
        .group_by("journey_id", maintain_order=True)
        .agg(pl.col("channel").str.join(" > ").alias("path"))
        .join(rows, on="journey_id")
        .group_by("path")
        .agg(
            (pl.col("status") == "won").sum().alias("total_conversions"),
            (pl.col("status") == "lost").sum().alias("total_null"),
            pl.col("revenue_cents").sum().alias("total_conversion_value"),
        )
        .sort("path")
    )
    return journeys, table


def path_journeys(table: pl.DataFrame) -> Journeys:
    rows = table.with_row_index("row").select(
        pl.format("p{}", "row").alias("journey_id"),
        pl.lit("path").alias("status"),
        pl.col("total_conversions").alias("conversions"),
        pl.col("total_null").alias("nulls"),
        pl.col("total_conversion_value").alias("revenue_cents"),
        pl.col("path").str.split(" > ").alias("channel"),
    )
    touches = rows.select("journey_id", "channel").explode("channel").with_columns(
        pl.int_range(pl.len()).over("journey_id").alias("touch_index")
    )
    return Journeys.from_frames(touches, rows.drop("channel"), has_timestamps=False,
                                has_milestones=False)


def ca_exact(result: dict, order: int) -> dict[str, float]:
    """Removal effects from ChannelAttribution's transition matrix, solved exactly."""
    names = dict(zip(result["channels"]["id_channel"].astype(str),
                     result["channels"]["channel_name"], strict=True))
    table = result["transition_matrix"]
    states = sorted((set(table["channel_from"]) | set(table["channel_to"]))
                    - {"(start)", "(conversion)", "(null)"})
    nodes = ["(start)", *states]
    at = {name: i for i, name in enumerate(nodes)}
    exit_conv = np.zeros(len(nodes))
    src, dst, prob = [], [], []
    columns = table[["channel_from", "channel_to", "transition_probability"]]
    for a, b, p in columns.itertuples(index=False):
        if b == "(conversion)":
            exit_conv[at[a]] += p
        elif b != "(null)":
            src.append(at[a])
            dst.append(at[b])
            prob.append(p)
    system = (sp.identity(len(nodes), format="csr")
              - sp.csr_matrix((prob, (src, dst)), shape=(len(nodes),) * 2)).tocsr()
    members = [set(s.split(" ")) for s in nodes]

    def probability(channel_id: str | None) -> float:
        keep = np.array([i for i, m in enumerate(members) if i == 0 or channel_id not in m])
        return float(spla.spsolve(system[keep][:, keep].tocsc(), exit_conv[keep])[0])

    full = probability(None)
    effects = {names[c]: 1 - probability(c) / full for c in names}
    total = sum(effects.values())
    return {c: e / total for c, e in effects.items()}


def timed(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        begin = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ca", action="store_true", help="skip ChannelAttribution")
    args = parser.parse_args()

    if not args.no_ca:
        with contextlib.redirect_stdout(io.StringIO()):
            import pandas
            from ChannelAttribution import markov_model, transition_matrix

    print(f"polars {pl.__version__}, numpy {np.__version__}, threads {pl.thread_pool_size()}")
    for size in args.sizes:
        journeys, table = first_order_process(size, seed=1)
        n_touches = journeys.touches.select(pl.len()).collect().item()
        print(f"\n== {size:,} journeys, {n_touches:,} touches, {table.height:,} distinct paths, "
              f"{int(table['total_conversions'].sum()):,} conversions ==")
        paths = path_journeys(table)
        if not args.no_ca:
            frame = pandas.DataFrame(table.select(
                "path", "total_conversions", "total_null", "total_conversion_value"
            ).to_dict(as_series=False))
        for order in args.orders:
            model = MarkovModel(order=order)
            t_journeys, effects = timed(
                lambda model=model, journeys=journeys: model.fit(journeys).removal_effects(),
                args.repeat)
            t_paths, effects_p = timed(
                lambda model=model, paths=paths: model.fit(paths).removal_effects(), args.repeat)
            assert np.allclose(effects["share"].to_numpy(), effects_p["share"].to_numpy(),
                               atol=1e-12)
            line = (f"order {order}: ours (journeys) {t_journeys:7.3f} s"
                    f" | ours (paths) {t_paths:7.3f} s")
            ours = dict(zip(effects["channel"], effects["share"], strict=True))
            if args.no_ca:
                print(line)
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                t_ca, ca = timed(
                    lambda frame=frame, order=order: markov_model(
                        frame, "path", "total_conversions", var_null="total_null",
                        order=order, sep=">", verbose=False, flg_pro=False),
                    1 if size >= 1_000_000 else args.repeat,
                )
                matrix = transition_matrix(frame, "path", "total_conversions", "total_null",
                                           order=order, sep=">", flg_pro=False)
            exact = ca_exact(matrix, order)
            ca_total = ca["total_conversions"].sum()
            ca_share = dict(zip(ca["channel_name"], ca["total_conversions"] / ca_total,
                                strict=True))
            print(line + f" | CA markov_model {t_ca:7.3f} s"
                  f" | CA/ours(journeys) {t_ca / t_journeys:5.2f}x"
                  f" | CA/ours(paths) {t_ca / t_paths:5.2f}x")
            print(f"  {'channel':10s} {'ours':>9s} {'CA exact':>9s} {'CA sim':>9s}  |ours-exact|")
            worst = 0.0
            for channel in sorted(ours):
                worst = max(worst, abs(ours[channel] - exact[channel]))
                print(f"  {channel:10s} {ours[channel]:9.6f} {exact[channel]:9.6f}"
                      f" {ca_share.get(channel, float('nan')):9.6f}"
                      f"  {abs(ours[channel] - exact[channel]):.1e}")
            print(f"  max |ours - CA exact| = {worst:.2e}")


if __name__ == "__main__":
    main()
