"""Bootstrap intervals over accounts: the cheap replicates equal the naive resample-and-rerun,
the resampling is deterministic for a seed, path tables resample rows and say so, and the
CLI refuses 0 or negative resamples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from attribution import intervals, pipeline
from attribution.config import load_config
from attribution.errors import ConfigError
from attribution.intervals import (
    bootstrap,
    draw_counts,
    replicate_credit,
    resampled_journeys,
    resampling_units,
    sufficiency,
    with_intervals,
)

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "fixtures" / "demo" / "attribution.toml"
PATHS = ROOT / "fixtures" / "paths" / "sample.csv"
MODELS = ("last_touch", "linear", "time_decay", "w_shaped", "markov", "shapley", "incremental")


@pytest.fixture(scope="module")
def demo():
    config = load_config(DEMO).replace(models=MODELS)
    return pipeline.run(config, keep_credit=False)


def naive(journeys, models, counts_row):
    """The obvious resample: each drawn journey copied as often as it was drawn, every model
    run on the copies from scratch (fit, weights, allocate, summarise)."""
    copies = resampled_journeys(journeys, counts_row)
    _, summary = pipeline.run_models(copies, models, keep_credit=False)
    rows = summary.select("model", "channel", "revenue_credit_cents").iter_rows()
    return {(m, c): r for m, c, r in rows}


def test_cheap_replicates_equal_the_naive_resample_and_rerun(demo):
    units, n_units, unit = resampling_units(demo.journeys)
    assert unit == "account"
    counts = draw_counts(n_units, 3, seed=7)[:, units]
    fast = {}
    for model, channels, totals in replicate_credit(demo.journeys, demo.models, counts):
        for r in range(counts.shape[0]):
            for channel, value in zip(channels, totals[r], strict=True):
                fast[(r, model.name, channel)] = value
    for r in range(counts.shape[0]):
        slow = naive(demo.journeys, demo.models, counts[r])
        for model in demo.models:
            got = {c: v for (rr, m, c), v in fast.items() if rr == r and m == model.name and v}
            want = {c: v for (m, c), v in slow.items() if m == model.name and v}
            if model.fits:
                # the refit's weights times revenue, not rounded to the cent: within a cent
                # per drawn deal
                assert set(got) == set(want), (r, model.name)
                for channel, value in want.items():
                    assert abs(got[channel] - value) <= counts[r].sum(), (r, model.name, channel)
            else:
                # cents are split per deal: every copy of a deal gets its original's cents
                assert got == want, (r, model.name)


def test_every_account_moves_with_its_journeys(demo):
    units, n_units, _ = resampling_units(demo.journeys)
    frame = demo.journeys.journeys.select("journey_id", "account_id").collect()
    counts = draw_counts(n_units, 2, seed=1)[:, units]
    # journeys of one account always carry the same count
    per_account = (frame.with_columns(pl.Series("n", counts[0]))
                   .group_by("account_id").agg(pl.col("n").n_unique()))
    assert per_account.get_column("n").max() == 1
    # n_units draws in all
    drawn = frame.with_columns(pl.Series("n", counts[1])).unique("account_id")
    assert int(drawn.get_column("n").sum()) == n_units


def test_intervals_are_deterministic_for_a_seed_and_hold_the_estimate(demo):
    models = [m for m in demo.models if m.name in ("last_touch", "markov")]
    one = bootstrap(demo.journeys, models, replicates=30, seed=3)
    two = bootstrap(demo.journeys, models, replicates=30, seed=3)
    other = bootstrap(demo.journeys, models, replicates=30, seed=4)
    assert one.table.equals(two.table)
    assert not one.table.equals(other.table)
    table = one.table
    assert (table["revenue_credit_low_cents"] <= table["revenue_credit_high_cents"]).all()
    assert (table["revenue_share_low"] <= table["revenue_share_high"]).all()
    assert one.unit == "account" and "accounts" in one.note and "90%" in one.note
    narrow = bootstrap(demo.journeys, models, replicates=30, seed=3, level=0.5).table
    assert (narrow["revenue_credit_high_cents"] - narrow["revenue_credit_low_cents"]
            <= table["revenue_credit_high_cents"] - table["revenue_credit_low_cents"]).all()


def test_summary_and_comparison_carry_the_intervals(demo):
    result = with_intervals(demo, replicates=20)
    for column in (*intervals.INTERVAL_COLUMNS, *intervals.SUFFICIENCY_COLUMNS):
        assert column in result.summary.columns
    assert result.summary.select(pl.exclude(*intervals.INTERVAL_COLUMNS,
                                            *intervals.SUFFICIENCY_COLUMNS)).equals(demo.summary)
    comparison = result.comparison()
    assert comparison.select(demo.comparison().columns).equals(demo.comparison())
    assert {"last_touch_revenue_share_low", "last_touch_revenue_share_high",
            "sufficient"} <= set(comparison.columns)
    assert with_intervals(demo) is demo  # no --bootstrap: nothing added


def test_path_tables_resample_rows_and_say_so():
    result = pipeline.run(load_config(None).replace(paths=PATHS, models=("last_touch", "markov")),
                          keep_credit=False)
    found = bootstrap(result.journeys, result.models, replicates=10)
    assert found.unit == "path row"
    assert "path-table rows" in found.note and "no accounts" in found.note


def test_too_few_deals_marks_channels_insufficient(demo):
    marked = sufficiency(demo.summary, demo.journeys, 10_000)
    assert not marked.get_column("sufficient").any()
    touched = intervals.won_deals_touched(demo.journeys)
    won = demo.journeys.journeys.filter(pl.col("status") == "won").collect()
    # a hand count for one channel: won journeys with at least one direct touch
    direct = (demo.journeys.touches.filter(pl.col("channel") == "direct")
              .select("journey_id").unique().collect()
              .join(won, on="journey_id", how="semi").height)
    assert dict(touched.iter_rows())["direct"] == direct
    loose = sufficiency(demo.summary, demo.journeys, 1)
    lt = loose.filter(pl.col("model") == "last_touch")
    assert lt.filter(pl.col("won_deals_touched") >= 1).get_column("sufficient").all()


def test_zero_resamples_is_refused(demo):
    with pytest.raises(ConfigError):
        bootstrap(demo.journeys, demo.models, replicates=0)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_cli_refuses_zero_or_negative_bootstrap(value):
    done = subprocess.run([sys.executable, "cli.py", "-q", "compare", "--config", str(DEMO),
                           "--bootstrap", value], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr


def test_cli_compare_json_has_interval_fields_only_with_bootstrap():
    base = [sys.executable, "cli.py", "-q", "compare", "--config", str(DEMO), "--format", "json",
            "--model", "last_touch", "--model", "linear"]
    plain = json.loads(subprocess.run(base, cwd=ROOT, capture_output=True, text=True,
                                      check=True).stdout)
    # the JSON's names: money in major units, no ``_cents``
    # money: keep names from here
    assert "revenue_credit_low" not in plain[0]
    shown = subprocess.run([*base, "--bootstrap", "20", "--seed", "5", "--interval", "0.8"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    rows = json.loads(shown.stdout)
    assert {"revenue_credit_low", "revenue_credit_high", "revenue_share_low",
            "revenue_share_high", "sufficient"} <= set(rows[0])
    again = subprocess.run([*base, "--bootstrap", "20", "--seed", "5", "--interval", "0.8"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    assert again.stdout == shown.stdout
    assert all(r["revenue_credit_low"] <= r["revenue_credit_high"] for r in rows)
    # money: keep names to here
    assert any(r["sufficient"] is False for r in rows)


def test_draw_counts_are_uniform_draws():
    counts = draw_counts(50, 400, seed=0)
    assert (counts.sum(axis=1) == 50).all()
    assert abs(counts.mean() - 1.0) < 1e-12
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.3)


def test_a_channel_a_model_credits_nothing_still_counts_the_won_deals_it_touched():
    from attribution.compare import compare
    from attribution.intervals import won_deals_touched

    config = load_config(DEMO).replace(models=("last_touch", "first_touch"), bootstrap=5)
    result = with_intervals(pipeline.run(config))
    comparison = compare(result.summary)
    touched = dict(won_deals_touched(result.journeys).iter_rows())
    first = comparison.filter(pl.col("model") == "first_touch")
    uncredited = first.filter(pl.col("revenue_credit_cents") == 0)
    assert uncredited.height > 0  # channels that never open a journey, yet touch won deals
    for channel, count in first.select("channel", "won_deals_touched").iter_rows():
        assert count == touched.get(channel, 0), channel
