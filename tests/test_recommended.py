"""The recommended model (issue #22): one model that scorecard, budget and the report use unless
--model says otherwise, named wherever its numbers are shown; budget moves money only where
the interval of its share excludes last-touch's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from attribution.budget import recommend_budget, undecided
from attribution.config import Config, config_from_dict, from_options
from attribution.errors import ConfigError

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "fixtures" / "demo" / "attribution.toml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # a wide terminal: table cells are not wrapped
    return subprocess.run([sys.executable, "cli.py", "-q", *args], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "400"})


def test_config_reads_recommended_and_evidence_options():
    config = config_from_dict({"models": {"recommended": "shapley",  # money: keep name
                                          "min_deals": 10, "bootstrap": 50, "interval": 0.8,
                                          "seed": 3,
                                          "markov": {"order": 2}}},
                              base=Path("."), origin="t.toml")
    assert (config.recommended, config.min_deals, config.bootstrap, config.interval,
            config.seed) == ("shapley", 10, 50, 0.8, 3)
    assert config.model_params == {"markov": {"order": 2}}
    assert Config().recommended == "incremental" and Config().min_deals == 30
    assert Config().bootstrap == 0 and Config().interval == 0.9


@pytest.mark.parametrize("models, message", [
    ({"recommended": "nope"}, "not a model"),  # money: keep name
    ({"bootstrap": 0}, "resamples >= 1"),
    ({"interval": 1.5}, "between 0 and 1"),
    ({"min_deals": 0}, "whole number >= 1"),
])
def test_config_refuses_bad_values(models, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"models": models}, base=Path("."), origin="t.toml")


def test_bootstrap_flag_is_the_runs_and_markovs_is_a_param():
    config = from_options(None, bootstrap=20, params=("markov.bootstrap=5",))
    assert config.bootstrap == 20
    assert config.model_params["markov"] == {"bootstrap": 5}


def test_models_names_the_recommended_model_and_its_evidence():
    done = cli("models")
    assert done.returncode == 0, done.stderr
    assert "incremental (recommended)" in done.stdout
    assert "Recommended: incremental" in done.stdout and "0.065" in done.stdout
    records = json.loads(cli("models", "--format", "json").stdout)
    assert [r["name"] for r in records if r["recommended"]] == ["incremental"]  # money: keep name


def test_scorecard_and_budget_default_to_the_recommended_model_and_name_it():
    card = cli("scorecard", "--config", str(DEMO))
    assert card.returncode == 0, card.stderr
    assert "Channel scorecard - incremental (recommended)" in card.stdout
    rows = json.loads(cli("scorecard", "--config", str(DEMO), "--format", "json").stdout)
    assert {r["model"] for r in rows} == {"incremental"}
    assert all("sufficient" in r and "won_deals_touched" in r for r in rows)
    plan = cli("budget", "--config", str(DEMO))
    assert plan.returncode == 0, plan.stderr
    assert "Budget recommendation - incremental (recommended model)" in plan.stdout
    other = json.loads(cli("budget", "--config", str(DEMO), "--model", "linear",
                           "--format", "json").stdout)
    assert {r["model"] for r in other} == {"linear"}


def test_report_leads_with_the_recommended_model_unless_told(tmp_path):
    target = tmp_path / "r.html"
    done = cli("report", "--config", str(DEMO), "-o", str(target))
    assert done.returncode == 0, done.stderr
    page = target.read_text("utf-8")
    assert "incremental (recommended) against last-touch" in page
    done = cli("report", "--config", str(DEMO), "-o", str(target), "--budget-model", "linear")
    assert done.returncode == 0, done.stderr
    assert "linear (recommended) against last-touch" in target.read_text("utf-8")


def _summary(rows):
    return pl.DataFrame(rows, schema=["model", "channel", "channel_group", "revenue_credit_cents",
                                      "revenue_share", "revenue_share_low",
                                      "revenue_share_high"], orient="row")


def test_budget_holds_channels_whose_interval_holds_last_touchs_share():
    # hand-worked: a's interval [0.5, 0.7] excludes last-touch's 0.4: a may move; b's
    # [0.1, 0.5] holds last-touch's 0.6? no (0.6 > 0.5): b moves; c's [0.0, 0.3] holds 0.0
    summary = _summary([
        ("last_touch", "a", "g", 400, 0.4, 0.3, 0.5),
        ("last_touch", "b", "g", 600, 0.6, 0.5, 0.7),
        ("last_touch", "c", "g", 0, 0.0, 0.0, 0.0),
        ("m", "a", "g", 600, 0.6, 0.5, 0.7),
        ("m", "b", "g", 300, 0.3, 0.1, 0.5),
        ("m", "c", "g", 100, 0.1, 0.0, 0.3),
    ])
    assert undecided(summary, "m") == ["c"]
    spend = pl.DataFrame({"channel": ["a", "b", "c"], "spend_cents": [1000, 1000, 2000]})
    plan = recommend_budget(summary, spend, "m", shift=0.5, hold=["c"])
    rows = {r["channel"]: r for r in plan.iter_rows(named=True)}
    assert rows["c"]["recommended_cents"] == 2000 and rows["c"]["bound"] == "held"
    assert rows["c"]["last_touch_recommended_cents"] == 2000
    assert rows["a"]["recommended_cents"] + rows["b"]["recommended_cents"] == 2000
    # a earns 600 of the 900 the movable channels earn: it gains, b loses
    assert rows["a"]["recommended_cents"] > 1000 > rows["b"]["recommended_cents"]
    assert undecided(summary.drop("revenue_share_low", "revenue_share_high"), "m") == []
