"""Benchmark: loading through a source preset against the generic loader on the same rows.

The same synthetic export is written twice: with the canonical column names (read by the
generic loader, the config's column mapping empty) and with HubSpot's export names (read with
``source="hubspot"``: the preset's column choice, association cells, stage names and channel
groups). Two timestamp styles: ISO-8601 in both files, and US ``01/25/2025 02:28 AM`` (the
generic loader given the format with ``time_formats``, the preset inferring it from the
values). Reported: the minimum of ``--repeat`` loads of each (alternating, after a warm-up
load of each), and the preset's ratio to the generic loader (issue #20 asks for at most 1.10).

Run (from the repository root)::

    python bench/bench_sources.py --touches 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribution.channels import load_rules  # noqa: E402
from attribution.loading import load_inputs  # noqa: E402

SOURCES = np.array(["Organic Search", "Paid Search", "Email Marketing", "Organic Social",
                    "Referrals", "Other Campaigns", "Direct Traffic", "Paid Social"])
STAGES = np.array(["Appointment Scheduled", "Qualified To Buy", "Contract Sent",
                   "Closed Won", "Closed Lost"])
HUBSPOT = {
    "touchpoints": {"timestamp": "Interaction date", "contact_id": "Contact ID",
                    "channel": "Interaction source", "utm_campaign": "Campaign"},
    "contacts": {"contact_id": "Record ID", "account_id": "Associated Company ID",
                 "lead_created_at": "Create Date"},
    "deals": {"deal_id": "Record ID", "account_id": "Associated Company IDs",
              "created_at": "Create Date", "closed_at": "Close Date", "status": "Deal Stage",
              "amount": "Amount"},
}


def exports(touches: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    """Canonical-named frames whose times are datetimes (formatted per style when written)."""
    rng = np.random.default_rng(seed)
    contacts = max(touches // 8, 10)
    accounts = max(contacts // 4, 5)
    deals = max(accounts // 2, 5)
    start = np.datetime64("2025-01-01T00:00", "ms")
    minutes = rng.integers(0, 60 * 24 * 150, touches)
    touch = pl.DataFrame({
        "timestamp": start + np.sort(minutes).astype("timedelta64[m]"),
        "contact_id": rng.integers(0, contacts, touches).astype(str),
        "channel": SOURCES[rng.integers(0, len(SOURCES), touches)],
        "utm_campaign": np.char.add("q1-", rng.integers(0, 40, touches).astype(str)),
    })
    contact = pl.DataFrame({
        "contact_id": np.arange(contacts).astype(str),
        "account_id": np.char.add("9", (np.arange(contacts) % accounts).astype(str)),
        "lead_created_at": start + rng.integers(0, 60 * 24 * 30, contacts).astype("timedelta64[m]"),
    })
    created = start + rng.integers(60 * 24 * 20, 60 * 24 * 120, deals).astype("timedelta64[m]")
    deal = pl.DataFrame({
        "deal_id": np.arange(deals).astype(str),
        "account_id": np.char.add("9", rng.permutation(accounts)[:deals].astype(str)),
        "created_at": created,
        "closed_at": created + rng.integers(60 * 24, 60 * 24 * 60, deals).astype("timedelta64[m]"),
        "status": STAGES[rng.integers(0, len(STAGES), deals)],
        "amount": np.char.add(rng.integers(1000, 90000, deals).astype(str), ".50"),
    })
    return {"touchpoints": touch, "contacts": contact, "deals": deal}


def write(frames: dict[str, pl.DataFrame], folder: Path, style: str, names: dict | None) -> dict:
    """CSV files of the frames, times in ``style``, columns renamed by ``names``."""
    paths = {}
    for name, frame in frames.items():
        shown = frame.with_columns(
            pl.col(c).dt.strftime(style) for c, t in frame.schema.items() if t.is_temporal())
        if names:
            shown = shown.rename(names[name])
        paths[name] = folder / f"{name}.csv"
        shown.write_csv(paths[name])
    return paths


def timed(load) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of one load."""
    gc.collect()
    began, cpu = time.perf_counter(), time.process_time()
    inputs = load()
    elapsed = (time.perf_counter() - began, time.process_time() - cpu)
    assert inputs.rejects.height == 0, inputs.rejects.head()
    return elapsed


def interleaved(repeat: int, generic, preset) -> list[tuple[float, float]]:
    """The minimum wall and CPU seconds of ``repeat`` loads of each, alternating, so that drift
    on a shared machine falls on both alike (one warm-up load of each first); CPU time is the
    steadier measure when other work shares the cores."""
    timed(generic), timed(preset)
    times: tuple[list[tuple[float, float]], ...] = ([], [])
    for _ in range(repeat):
        times[0].append(timed(generic))
        times[1].append(timed(preset))
    return [(min(t[0] for t in runs), min(t[1] for t in runs)) for runs in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = exports(args.touches)
    rules = load_rules()
    print(f"{args.touches:,} touchpoints, {frames['contacts'].height:,} contacts, "
          f"{frames['deals'].height:,} deals; minimum of {args.repeat}")
    print(f"{'timestamps':<12} {'generic s':>10} {'preset s':>10} {'ratio':>7} "
          f"{'generic cpu':>12} {'preset cpu':>11} {'cpu ratio':>10}")
    generic_statuses = {"open": ["Appointment Scheduled", "Qualified To Buy", "Contract Sent"]}
    for label, style, declared in (("ISO-8601", "%Y-%m-%dT%H:%M:%S", ()),
                                   ("US 12-hour", "%m/%d/%Y %I:%M %p", ("%m/%d/%Y %I:%M %p",))):
        with tempfile.TemporaryDirectory() as folder:
            for sub in ("plain", "hubspot"):
                Path(folder, sub).mkdir()
            plain = write(frames, Path(folder, "plain"), style, None)
            named = write(frames, Path(folder, "hubspot"), style, HUBSPOT)
            (generic, generic_cpu), (preset, preset_cpu) = interleaved(
                args.repeat,
                lambda plain=plain, declared=declared: load_inputs(
                    plain["touchpoints"], plain["deals"], plain["contacts"], rules=rules,
                    time_formats=declared, statuses=generic_statuses),
                lambda named=named: load_inputs(
                    named["touchpoints"], named["deals"], named["contacts"], rules=rules,
                    source="hubspot"),
            )
        print(f"{label:<12} {generic:>10.3f} {preset:>10.3f} {preset / generic:>7.3f} "
              f"{generic_cpu:>12.3f} {preset_cpu:>11.3f} {preset_cpu / generic_cpu:>10.3f}")


if __name__ == "__main__":
    main()
