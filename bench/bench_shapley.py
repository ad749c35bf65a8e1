"""Time the Shapley model on random journeys.

    python bench/bench_shapley.py                       # rate variant, 1e5 and 1e6 journeys
    python bench/bench_shapley.py --journeys 100000 --channels 15 --variant ordered

Journeys have 1-8 touches (mean about 3.5) drawn from ``--channels`` channels with skewed
popularity; statuses are 20% won, 45% lost, 20% none (deal-less account), 15% open. The
timings cover ``fit`` (grouping by channel set and playing the game) and collecting the
weights for every touch; building the random frames is not timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from attribution.journeys import Journeys
from attribution.models.shapley import VARIANTS, ShapleyModel


def random_journeys(n_journeys: int, n_channels: int, seed: int = 0) -> Journeys:
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(0.3, size=n_journeys), 8)
    journey_of_touch = np.repeat(np.arange(n_journeys), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    touch_index = np.arange(len(journey_of_touch)) - starts
    popularity = 1.0 / np.arange(1, n_channels + 1)
    channel = rng.choice(n_channels, size=len(journey_of_touch), p=popularity / popularity.sum())
    names = np.array([f"channel_{k:02d}" for k in range(n_channels)])
    ids = np.char.add("j", np.arange(n_journeys).astype(str))
    touches = pl.DataFrame(
        {
            "journey_id": ids[journey_of_touch],
            "touch_index": touch_index.astype(np.uint32),
            "channel": names[channel],
        }
    )
    status = rng.choice(["won", "lost", "none", "open"], size=n_journeys, p=[0.2, 0.45, 0.2, 0.15])
    amount = rng.integers(1_000_00, 100_000_00, size=n_journeys)
    rows = pl.DataFrame({"journey_id": ids, "status": status, "amount_cents": amount})
    return Journeys.from_frames(touches, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--channels", type=int, default=14)
    parser.add_argument("--variant", choices=VARIANTS, default="rate")
    parser.add_argument("--value", choices=["conversions", "revenue"], default="conversions")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    model = ShapleyModel(variant=args.variant, value=args.value)
    print(f"variant={args.variant} value={args.value} channels={args.channels}")
    for n in args.journeys:
        journeys = random_journeys(n, args.channels)
        n_touches = journeys.touches.select(pl.len()).collect().item()
        fits, totals = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fit = model.fit(journeys)
            fitted = time.perf_counter()
            weights = fit.weights(journeys).collect()
            done = time.perf_counter()
            fits.append(fitted - start)
            totals.append(done - start)
        keys = fit.channel_sets
        print(
            f"journeys={n:>9,} touches={n_touches:>10,} channel_sets={keys:>6,} "
            f"fit={min(fits):6.2f}s fit+weights={min(totals):6.2f}s "
            f"(best of {args.repeat}; {weights.height:,} weight rows)"
        )


if __name__ == "__main__":
    main()
