"""The simulator's dark funnel (channels an export misses, noisy self-reported answers) and
the evaluation world that scores the self-reported models in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from attribution.channels import load_rules
from attribution.errors import ConfigError
from attribution.evaluate import DARK_FUNNEL_WORLDS, evaluate, world_export
from attribution.simulate import (
    ANSWER_PHRASES,
    CHANNELS,
    UNSURE_ANSWERS,
    DarkFunnel,
    ground_truth,
    scenario,
    simulate,
    with_dark_funnel,
)

ROOT = Path(__file__).resolve().parents[1]


def test_dark_channels_leave_the_touchpoints_but_not_the_world():
    export = simulate(1500, seed=4, world=scenario("brand_drives_search"))
    dark = with_dark_funnel(export, DarkFunnel(dark=("podcast",)))
    podcast = (pl.col("utm_medium") == "podcast")
    assert export.touchpoints.filter(podcast).height > 0
    assert dark.touchpoints.filter(podcast).height == 0
    # every other touch is kept, byte for byte
    assert_frame_equal(dark.touchpoints, export.touchpoints.filter(~podcast))
    # the truth is the world's: the podcast still counts
    truth = ground_truth(dark)
    assert_frame_equal(truth, ground_truth(export))
    assert truth.filter(pl.col("channel") == "podcast")["revenue_removed_cents"].item() > 0
    assert_frame_equal(dark.deals, export.deals)


def test_answers_are_deterministic_noisy_and_honest_when_noise_is_off():
    export = simulate(1500, seed=5, world=scenario("brand_drives_search"))
    noisy = with_dark_funnel(export, DarkFunnel(blank=0.35, last_remembered=0.3, unsure=0.05))
    again = with_dark_funnel(export, DarkFunnel(blank=0.35, last_remembered=0.3, unsure=0.05))
    assert_frame_equal(noisy.contacts, again.contacts)
    answers = noisy.contacts.get_column("self_reported")
    blank_share = answers.null_count() / answers.len()
    assert 0.3 < blank_share < 0.4
    phrases = {p for ps in ANSWER_PHRASES.values() for p in ps} | set(UNSURE_ANSWERS)
    assert set(answers.drop_nulls().unique()) <= phrases
    # no noise: every contact of an account that saw a channel names its first channel
    honest = with_dark_funnel(export, DarkFunnel(dark=(), blank=0.0, last_remembered=0.0,
                                                 unsure=0.0))
    outcomes = export.outcomes()
    contacts = honest.contacts.with_columns(
        (pl.col("account_id").str.slice(1).cast(pl.Int64) - 1).alias("_a"))
    origin = outcomes.first_touch.argmin(axis=0)
    seen = outcomes.exposed.any(axis=0)
    for account, answer in contacts.select("_a", "self_reported").head(400).iter_rows():
        if seen[account]:
            assert answer in ANSWER_PHRASES[CHANNELS[origin[account]]]
        else:
            assert answer in UNSURE_ANSWERS
    # the default rules read a podcast origin's phrases as podcast
    rules = load_rules()
    mapped = rules.answer_channel(pl.Series(list(ANSWER_PHRASES["podcast"]))).to_list()
    assert mapped == ["podcast"] * len(ANSWER_PHRASES["podcast"])


def test_dark_funnel_settings_are_checked():
    with pytest.raises(ConfigError, match="did you mean 'podcast'"):
        DarkFunnel(dark=("podcst",))
    with pytest.raises(ConfigError, match="blank = 1.5"):
        DarkFunnel(blank=1.5)


def test_evaluate_scores_the_self_reported_models_in_the_dark_world_only():
    make, _ = DARK_FUNNEL_WORLDS["dark_podcast"]
    result = evaluate([make(), scenario("baseline")], n_accounts=1500, seed=2,
                      models=["last_touch", "linear", "self_reported", "blended"])
    errors = result.errors
    dark = errors.filter(pl.col("world") == "dark_podcast")
    assert set(dark["model"]) == {"last_touch", "linear", "self_reported", "blended"}
    assert set(dark["kind"]) == {"dark_funnel"}
    baseline = errors.filter(pl.col("world") == "baseline")
    assert set(baseline["model"]) == {"last_touch", "linear"}  # no answers there
    podcast = result.shares.filter((pl.col("world") == "dark_podcast")
                                   & (pl.col("channel") == "podcast"))
    share = dict(podcast.select("model", "share").iter_rows())
    assert share["last_touch"] == 0.0 and share["linear"] == 0.0  # no podcast touch exported
    assert share["self_reported"] > share["blended"] > 0.0
    assert podcast["shapley_share"][0] > 0.1  # the truth: the podcast pays
    export = world_export(make(), 300, 1)
    assert "self_reported" in export.contacts.columns


def test_cli_simulate_dark_channel_writes_answers_and_hides_touches(tmp_path):
    out = tmp_path / "sim"
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "simulate", "--accounts",
                           "400", "--dark-channel", "podcast", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    contacts = pl.read_csv(out / "contacts.csv", infer_schema=False)
    assert "self_reported" in contacts.columns
    touches = pl.read_csv(out / "touchpoints.csv", infer_schema=False)
    assert touches.filter(pl.col("utm_medium") == "podcast").height == 0
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "simulate", "--accounts",
                           "40", "--dark-channel", "podcst", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "did you mean 'podcast'" in done.stderr
