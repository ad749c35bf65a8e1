"""What the command line tells a user, checked against what it does: notes that name only
files that were written, help that matches the options, tables that say what they leave out
and what their columns count, and a partitioned run that says so."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from attribution.cli import cli

# the CLI's files and JSON name money in major units without ``_cents``: the names here are
# theirs, not the Python API's
# money: keep names from here
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
MESSY = ROOT / "fixtures" / "messy"
# the messy export rejects 7 of its 10 deals on purpose: its runs allow any reject rate
MESSY_INPUTS = ["--touchpoints", str(MESSY / "touchpoints.csv"), "--deals",
                str(MESSY / "deals.csv"), "--contacts", str(MESSY / "contacts.csv"),
                "--max-reject-rate", "1"]
DEMO_CONFIG = ["--config", str(DEMO / "attribution.toml")]


def invoke(*args: str, columns: int | None = None):
    env = {"COLUMNS": str(columns)} if columns else None
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == 0, result.output
    return result


def words(text: str) -> str:
    return " ".join(text.split())


# -- notes name only files that exist -----------------------------------------------------------
def test_the_reject_warning_names_a_file_only_when_one_was_written(tmp_path: Path) -> None:
    unwritten = invoke("validate", *MESSY_INPUTS).stderr
    assert re.search(r"warning: \d+% of deals rows were rejected \(\d+ of \d+\)\n", unwritten)
    assert "rejects.csv" not in unwritten
    assert "write them to a file with --rejects FILE" in unwritten
    target = tmp_path / "bad.csv"
    written = invoke("validate", *MESSY_INPUTS, "--rejects", str(target)).stderr
    assert f"rows were rejected (7 of 10); see {target}" in words(written)
    assert target.exists()
    out = tmp_path / "out"
    ran = invoke("run", *MESSY_INPUTS, "--model", "linear", "--out", str(out)).stderr
    assert f"see {out / 'rejects.csv'}" in words(ran)
    assert (out / "rejects.csv").exists()


# -- help matches the options -------------------------------------------------------------------
def test_run_takes_the_bootstrap_seed_and_min_deals_as_the_readme_says(tmp_path: Path) -> None:
    text = words(invoke("run", "--help").output)
    assert "--bootstrap" in text and "--seed" in text and "--min-deals" in text
    out = tmp_path / "out"
    invoke("-q", "run", *DEMO_CONFIG, "--model", "linear", "--bootstrap", "3", "--seed", "7",
           "--min-deals", "5", "--out", str(out))
    options = json.loads((out / "run.json").read_text())["options"]
    assert (options["bootstrap"], options["seed"], options["min_deals"]) == (3, 7, 5)
    summary = pl.read_csv(out / "summary.csv")  # (the demo config writes CSV)
    assert {"revenue_credit_low", "revenue_credit_high", "sufficient"} <= set(summary.columns)
    # the seed decides the intervals
    again = tmp_path / "again"
    invoke("-q", "run", *DEMO_CONFIG, "--model", "linear", "--bootstrap", "3", "--seed", "7",
           "--min-deals", "5", "--out", str(again))
    assert pl.read_csv(again / "summary.csv").equals(summary)


def test_budget_help_says_one_model_and_that_spend_is_required() -> None:
    text = words(invoke("budget", "--help").output)
    model = text.split("--model NAME")[1].split("--half-life-days")[0]
    assert "repeatable" not in model and "once" in model
    spend = text.split("--spend FILE Channel spend export")[1].split("--total")[0]
    assert "Required" in spend and "[inputs] spend" in spend
    assert "repeatable" in words(invoke("scorecard", "--help").output).split(
        "--model NAME")[1].split("--half-life-days")[0]


# -- tables say what they leave out and what they count -----------------------------------------
def test_a_table_too_wide_for_the_terminal_names_the_models_it_leaves_out_even_quiet() -> None:
    result = invoke("-q", "compare", *DEMO_CONFIG, columns=100)
    assert result.stderr == ""
    stdout = words(result.stdout)
    hidden = re.search(r"not shown, the terminal is too narrow: ([\w, ]+);", stdout)
    assert hidden is not None
    names = hidden.group(1).split(", ")
    header = next(line for line in result.stdout.splitlines() if "last_touch" in line)
    assert names and not any(name in header for name in names)
    assert "--format csv or json" in stdout
    # wide enough: every model, and no caption
    assert "not shown" not in invoke("-q", "compare", *DEMO_CONFIG, columns=400).stdout


def test_the_run_table_says_its_deal_count_is_deals_touched(tmp_path: Path) -> None:
    result = invoke("-q", "run", *DEMO_CONFIG, "--model", "linear", "--model", "w_shaped",
                    "--out", str(tmp_path / "out"))
    header = next(line for line in result.stdout.splitlines() if "┃ channel" in line)
    assert "deals touched" in header
    rows = json.loads(invoke("-q", "run", *DEMO_CONFIG, "--model", "linear", "--format",
                             "json", "--out", str(tmp_path / "json")).stdout)
    assert "deals_touched" in rows[0]  # the files keep their names


def test_the_scorecard_shows_the_denominators_and_defines_its_rates() -> None:
    result = invoke("-q", "scorecard", *DEMO_CONFIG, "--model", "linear", columns=250)
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "┃ channel" in line)
    cells = [c.strip() for c in header.strip("┃│ ").split("┃")]
    assert cells[2:8] == ["leads", "credited opps", "pipeline", "credited closed",
                          "credited won", "revenue"]
    assert "credited_" not in result.stdout
    caption = words(result.stdout)
    assert "win rate = credited won / credited closed" in caption
    assert "cost/lead = spend / leads" in caption
    card = json.loads(invoke("-q", "scorecard", *DEMO_CONFIG, "--model", "linear", "--format",
                             "json").stdout)
    for row in card:
        if row["closed_deals"]:
            assert row["win_rate"] == row["won_deals"] / row["closed_deals"] <= 1
    funnel = words(invoke("-q", "scorecard", *DEMO_CONFIG, "--model", "linear", "--grain",
                          "quarter", columns=250).stdout)
    assert "opps per lead = credited opps / leads" in funnel and "can pass 1.00" in funnel


# -- a partitioned run says so ------------------------------------------------------------------
def test_a_partitioned_run_says_how_many_partitions_and_why(tmp_path: Path) -> None:
    inputs = ["--touchpoints", str(DEMO / "touchpoints.csv"), "--deals", str(DEMO / "deals.csv"),
              "--contacts", str(DEMO / "contacts.csv"), "--model", "linear"]
    result = invoke("run", *inputs, "--partitions", "3", "--out", str(tmp_path / "out"))
    assert ("partitioned run: the accounts in 3 partitions, one at a time, to go past memory "
            "(same results as in memory; --partitions 3)") in words(result.stderr)
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["engine"] == {"name": "polars", "partitions": 3,
                                "partitions_from": "--partitions 3"}
    memory = invoke("run", *inputs, "--out", str(tmp_path / "memory"))
    assert "partitioned run" not in memory.stderr
    assert "engine" not in json.loads((tmp_path / "memory" / "run.json").read_text())
# money: keep names to here
