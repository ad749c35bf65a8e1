"""The command line end to end: output, files, accounting, exit codes and error lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from attribution import pipeline
from attribution.cli import cli

# the CLI's files and JSON name money in major units without ``_cents``: the names here are
# theirs, not the Python API's
# money: keep names from here
MESSY = Path(__file__).parent.parent / "fixtures" / "messy"
# the messy export rejects 7 of its 10 deals on purpose: its runs allow any reject rate
INPUTS = [
    "--touchpoints", str(MESSY / "touchpoints.csv"),
    "--deals", str(MESSY / "deals.csv"),
    "--contacts", str(MESSY / "contacts.csv"),
    "--max-reject-rate", "1",
]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "command", [[], ["run"], ["compare"], ["validate"], ["models"], ["paths"], ["scorecard"],
                ["budget"], ["report"], ["simulate"], ["init"]]
)
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 5


@pytest.mark.parametrize("command", ["run", "compare", "report", "calibrate"])
def test_model_help_of_a_verb_that_runs_every_model(command):
    # the --model help says what this verb does without it, not what other verbs do
    text = " ".join(invoke(command, "--help").output.split())
    assert "Default: every model the data supports." in text
    assert "scorecard" not in text.split("--model NAME")[1].split("--half-life-days")[0]


@pytest.mark.parametrize("command", ["scorecard", "budget"])
def test_model_help_of_a_verb_that_uses_the_recommended_model(command):
    text = " ".join(invoke(command, "--help").output.split())
    assert ("Default: the recommended model ([models] recommended; incremental unless set)."
            in text)
    assert "every model the data supports" not in text


def test_help_states_config_defaults_in_words():
    # "[default: [inputs] experiments]" read as a literal default value; say it in words
    for command in ("run", "calibrate"):
        text = " ".join(invoke(command, "--help").output.split())
        assert "[default: [inputs]" not in text
        assert "Default: the config's [inputs] experiments" in text


def test_run_writes_results_and_accounts_for_every_row(tmp_path):
    result = invoke("run", *INPUTS, "--out", str(tmp_path), "--out-format", "csv")
    assert result.exit_code == 0, result.output
    for name in ("credit.csv", "summary.csv", "comparison.csv", "run.json", "rejects.csv"):
        assert (tmp_path / name).exists(), name
    record = json.loads((tmp_path / "run.json").read_text())
    accounting = {a["input"]: a for a in record["accounting"]}
    assert {k: accounting["touchpoints"][k] for k in ("read", "used", "deduplicated",
            "out_of_window", "rejected")} == {
        "read": 12, "used": 7, "deduplicated": 1, "out_of_window": 1, "rejected": 3,
    }
    assert (accounting["deals"]["read"], accounting["deals"]["used"],
            accounting["deals"]["rejected"]) == (10, 3, 7)
    for item in accounting.values():
        assert item["read"] == (item["used"] + item["deduplicated"] + item["out_of_window"]
                                + item["rejected"])
    rejects = pl.read_csv(tmp_path / "rejects.csv", infer_schema=False)
    assert rejects.filter(pl.col("input") == "deals").select("row", "column").rows() == [
        ("4", "status"), ("5", "amount"), ("6", "account_id"), ("7", "amount"),
        ("8", "currency"), ("9", "deal_id"), ("10", "deal_id"),
    ]
    summary = pl.read_csv(tmp_path / "summary.csv")
    # D1 ($12,000 won) is the only won deal; every model hands out exactly that
    per_model = summary.group_by("model").agg(pl.col("revenue_credit").sum(),
                                              pl.col("pipeline_credit").sum())
    assert set(per_model["revenue_credit"].to_list()) == {12000.0}
    # pipeline: D1 12000 + D2 8000 + D3 5000.50
    assert set(per_model["pipeline_credit"].round(2).to_list()) == {25000.5}
    assert "Revenue share: last-touch vs multi-touch" in result.stdout
    assert "unmapped utm source/medium" in result.stderr
    assert "mystery/thing (1)" in result.stderr


@pytest.mark.parametrize("out_format", ["csv", "parquet", "json"])
def test_every_result_file_states_money_in_major_units(tmp_path, out_format):
    # the Markov removal effects' revenue credit is an estimate (a float: share x total
    # revenue); it is written in dollars like the credit and summary, not in cents
    result = invoke("run", *INPUTS, "--out", str(tmp_path), "--out-format", out_format,
                    "--model", "last_touch", "--model", "markov")
    assert result.exit_code == 0, result.output
    read = {"csv": pl.read_csv, "parquet": pl.read_parquet, "json": pl.read_json}[out_format]
    effects = read(tmp_path / f"markov_removal_effects.{out_format}")
    summary = read(tmp_path / f"summary.{out_format}").filter(pl.col("model") == "markov")
    assert effects["revenue_credit"].sum() == pytest.approx(12000.0)  # D1, the one won deal
    assert float(summary["revenue_credit"].sum()) == 12000.0


def test_compare_json_is_clean_json_on_stdout(tmp_path):
    result = invoke("compare", *INPUTS, "--out", str(tmp_path), "--format", "json",
                    "--model", "linear")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    fields = {"model", "channel", "channel_group", "revenue_credit", "pipeline_credit",
              "revenue_share", "last_touch_revenue_credit", "revenue_shift",
              "revenue_shift_pct", "share_shift"}
    assert all(fields <= set(row) for row in rows)
    podcast = next(r for r in rows if r["model"] == "linear" and r["channel"] == "podcast")
    # D1's journey: podcast, newsletter, paid_search, direct -> 3000.00 each under linear;
    # last-touch gives direct all 12000.00
    assert (podcast["revenue_credit"], podcast["last_touch_revenue_credit"],
            podcast["revenue_shift"]) == (3000.0, 0.0, 3000.0)
    direct = next(r for r in rows if r["model"] == "linear" and r["channel"] == "direct")
    assert (direct["revenue_shift"], direct["revenue_shift_pct"]) == (-9000.0, -0.75)


def test_validate_prints_accounting_without_models(tmp_path):
    result = invoke("validate", *INPUTS, "--out", str(tmp_path))
    assert result.exit_code == 0
    assert "Row accounting" in result.stdout and "negative amount" in result.stdout
    assert not (tmp_path / "credit.parquet").exists()


def test_models_lists_every_model_with_parameters():
    result = invoke("models", "--format", "json")
    names = [m["name"] for m in json.loads(result.stdout)]
    assert names[:8] == ["first_touch", "last_touch", "last_non_direct", "linear",
                         "time_decay", "u_shaped", "w_shaped", "full_path"]
    decay = next(m for m in json.loads(result.stdout) if m["name"] == "time_decay")
    assert decay["params"] == {"half_life_days": 7.0, "reference": "close"}


def test_missing_column_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "tp.csv"
    bad.write_text("touchpoint_id,timestmp,contact_id,utm_source,utm_medium\nt1,2025-01-01,ann,a,b\n")
    result = invoke("run", "--touchpoints", str(bad), "--deals", str(MESSY / "deals.csv"),
                    "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {bad}: missing column 'timestamp' (did you mean 'timestmp'?); the file has "
        "'touchpoint_id', 'timestmp', 'contact_id', 'utm_source', 'utm_medium'; map a "
        "differently named column with [columns.touchpoints] in the config"
    )


def test_strict_fails_on_first_bad_row(tmp_path):
    result = invoke("run", *INPUTS, "--strict", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {MESSY / 'contacts.csv'}: row 5, column 'account_id': missing account_id "
        "(value empty)"
    )


def test_unknown_model_lists_valid_ones(tmp_path):
    result = invoke("run", *INPUTS, "--model", "linaer", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: unknown model 'linaer' (did you mean 'linear'?); valid models: ")


def test_missing_deals_file_is_a_usage_error():
    result = invoke("run", "--touchpoints", str(MESSY / "touchpoints.csv"))
    assert result.exit_code == 2
    assert "no deals file: give --deals FILE" in result.stderr


def test_unexpected_failure_is_exit_1_with_one_line(monkeypatch, tmp_path):
    def explode(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "run", explode)
    result = invoke("run", *INPUTS, "--out", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: RuntimeError: disk on fire (run with --debug for details)")


def _shuffled_copy(source: Path, target: Path, seed: int) -> None:
    header, *rows = source.read_text().splitlines()
    random.Random(seed).shuffle(rows)
    target.write_text("\n".join([header, *rows]) + "\n")


def test_same_bytes_twice_and_on_shuffled_rows(tmp_path):
    outputs = []
    for run_number in range(3):
        folder = tmp_path / f"in{run_number}"
        folder.mkdir()
        for name in ("touchpoints.csv", "deals.csv", "contacts.csv"):
            if run_number == 2:
                _shuffled_copy(MESSY / name, folder / name, seed=7)
            else:
                (folder / name).write_text((MESSY / name).read_text())
        out = tmp_path / f"out{run_number}"
        result = invoke("-q", "run", "--touchpoints", str(folder / "touchpoints.csv"),
                        "--deals", str(folder / "deals.csv"), "--contacts",
                        str(folder / "contacts.csv"), "--out", str(out),
                        "--max-reject-rate", "1")
        assert result.exit_code == 0
        outputs.append(out)
    for name in ("summary.parquet", "comparison.parquet"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes()
        assert (outputs[0] / name).read_bytes() == (outputs[2] / name).read_bytes()
    # touch-level credit: identical but for the touchpoint ids, which name input rows
    first = pl.read_parquet(outputs[0] / "credit.parquet")
    credit = [(out / "credit.parquet").read_bytes() for out in outputs]
    assert credit[0] == credit[1]
    assert first.equals(pl.read_parquet(outputs[2] / "credit.parquet"))


def test_paths_json_and_graphml(tmp_path):
    result = invoke("-q", "paths", *INPUTS, "--format", "json", "--out", str(tmp_path))
    assert result.exit_code == 0
    graph = json.loads(result.stdout)
    edges = {(e["source"], e["target"]): e for e in graph.get("edges", graph.get("links", []))}
    # the won journey podcast > newsletter > paid_search > direct and the lost one
    # community > review_sites: two journeys leave the start node
    assert edges[("(start)", "podcast")]["count"] == 1
    assert edges[("direct", "(conversion)")]["count"] == 1
    assert edges[("review_sites", "(null)")]["count"] == 1
    target = tmp_path / "paths.graphml"
    result = invoke("-q", "paths", *INPUTS, "--format", "graphml", "-o", str(target),
                    "--out", str(tmp_path))
    assert result.exit_code == 0 and target.read_text().startswith("<?xml")


def test_paths_table_and_path_table_input(tmp_path):
    result = invoke("-q", "paths", *INPUTS, "--out", str(tmp_path))
    assert "podcast > newsletter > paid_search > direct" in result.stdout
    sample = Path(__file__).parent.parent / "fixtures" / "paths" / "sample.csv"
    result = invoke("-q", "compare", "--paths", str(sample), "--format", "json",
                    "--model", "markov", "--markov-order", "2", "--out", str(tmp_path))
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["model"] for r in rows} == {"last_touch", "markov"}


DEMO = Path(__file__).parent.parent / "fixtures" / "demo"


def test_scorecard_and_budget_on_the_demo(tmp_path):
    config = str(DEMO / "attribution.toml")
    result = invoke("-q", "scorecard", "--config", config, "--out", str(tmp_path),
                    "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["model"] for r in rows} == {"incremental"}
    assert {"leads", "pipeline_credit", "revenue_credit", "win_rate", "roas"} <= set(rows[0])
    result = invoke("-q", "budget", "--config", config, "--model", "w_shaped", "--out",
                    str(tmp_path), "--format", "json", "--floor", "podcast=10%")
    assert result.exit_code == 0, result.stderr
    budget = json.loads(result.stdout)
    current = round(sum(r["current_spend"] for r in budget), 2)
    assert round(sum(r["recommended"] for r in budget), 2) == current
    assert round(sum(r["last_touch_recommended"] for r in budget), 2) == current
    podcast = next(r for r in budget if r["channel"] == "podcast")
    assert podcast["recommended"] >= 0.1 * current
    # no --model: the recommended model (incremental), named in every row
    result = invoke("-q", "budget", "--config", config, "--out", str(tmp_path), "--format",
                    "json")
    assert result.exit_code == 0, result.stderr
    assert {r["model"] for r in json.loads(result.stdout)} == {"incremental"}
    result = invoke("-q", "budget", "--config", config, "--model", "linear", "--model",
                    "w_shaped")
    assert result.exit_code == 2 and "one --model" in result.stderr


def test_report_command_writes_one_offline_file(tmp_path):
    target = tmp_path / "report.html"
    result = invoke("-q", "report", *INPUTS, "--out", str(tmp_path), "-o", str(target),
                    "--model", "linear")
    assert result.exit_code == 0, result.stderr
    html = target.read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    assert "https://cdn" not in html and "src=\"http" not in html


def test_simulate_then_run_round_trip(tmp_path):
    result = invoke("-q", "simulate", "--accounts", "300", "--seed", "3", "--out",
                    str(tmp_path / "export"), "--format", "parquet")
    assert result.exit_code == 0
    first = (tmp_path / "export" / "touchpoints.parquet").read_bytes()
    invoke("-q", "simulate", "--accounts", "300", "--seed", "3", "--out", str(tmp_path / "again"),
           "--format", "parquet")
    assert (tmp_path / "again" / "touchpoints.parquet").read_bytes() == first
    folder = tmp_path / "export"
    result = invoke("-q", "validate", "--touchpoints", str(folder / "touchpoints.parquet"),
                    "--deals", str(folder / "deals.parquet"), "--contacts",
                    str(folder / "contacts.parquet"), "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0
    accounting = {row["input"]: row for row in json.loads(result.stdout)}
    assert accounting["touchpoints"]["rejected"] == 0 and accounting["deals"]["rejected"] == 0


def test_init_writes_a_config_that_loads(tmp_path):
    result = invoke("init", "--directory", str(tmp_path))
    assert result.exit_code == 0
    from attribution.config import load_config

    config = load_config(tmp_path / "attribution.toml")
    assert config.lookback_days == 180 and config.channel_rules == tmp_path / "channels.toml"
    assert invoke("init", "--directory", str(tmp_path)).exit_code == 2


def test_evaluate_scores_models_against_the_truth(tmp_path):
    result = invoke("-q", "evaluate", "--world", "brand_drives_search", "--accounts", "400",
                    "--model", "linear", "--format", "json", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"last_touch", "linear"}
    assert rows["last_touch"]["improvement"] == 0.0 and rows["linear"]["worlds"] == 1
    assert (tmp_path / "evaluation_truth.parquet").exists()
    bad = invoke("-q", "evaluate", "--world", "atlantis")
    assert bad.exit_code == 2 and "unknown world 'atlantis'" in bad.stderr


def test_report_with_the_evaluation_section(tmp_path):
    assert invoke("-q", "evaluate", "--world", "baseline", "--accounts", "300", "--model",
                  "linear", "--out", str(tmp_path / "ev")).exit_code == 0
    target = tmp_path / "report.html"
    result = invoke("-q", "report", *INPUTS, "--out", str(tmp_path), "-o", str(target),
                    "--model", "linear", "--evaluation", str(tmp_path / "ev"))
    assert result.exit_code == 0, result.stderr
    html = target.read_text()
    assert 'id="evaluation"' in html and "closest to the truth" in html
    missing = invoke("-q", "report", *INPUTS, "--out", str(tmp_path), "-o", str(target),
                     "--evaluation", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "evaluation_summary.parquet: not found" in missing.stderr


def test_json_stays_parseable_while_progress_is_shown(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTRIBUTION_PROGRESS", "always")
    result = invoke("compare", *INPUTS, "--format", "json", "--model", "linear", "--out",
                    str(tmp_path))
    assert result.exit_code == 0
    assert {row["model"] for row in json.loads(result.stdout)} == {"last_touch", "linear"}
    assert "model linear" in result.stderr or "models" in result.stderr  # the bar's stages
    quiet = invoke("compare", *INPUTS, "--format", "json", "--model", "linear", "--out",
                   str(tmp_path), "--quiet")
    assert quiet.stderr == "" and json.loads(quiet.stdout)


def test_bootstrap_reports_progress(tmp_path):
    from attribution.config import Config

    seen = []
    config = Config(touchpoints=MESSY / "touchpoints.csv", deals=MESSY / "deals.csv",
                    max_reject_rate=1.0,
                    contacts=MESSY / "contacts.csv", models=("markov",),
                    model_params={"markov": {"bootstrap": 30}})
    pipeline.run(config, lambda stage, done, total: seen.append((stage, done, total)))
    stages = [stage for stage, _, _ in seen]
    assert stages[:3] == ["load contacts", "load touchpoints", "load deals"]
    assert ("markov bootstrap", 0, 30) in seen and ("markov bootstrap", 30, 30) in seen
    assert "journeys" in stages and "model markov" in stages


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_run_writes_the_credit_a_model_at_a_time_as_the_api_gives_it(tmp_path, fmt):
    from attribution.config import Config
    from attribution.output import write_table

    out = tmp_path / "Reports [2025]"  # a folder name that is also a glob pattern
    result = invoke("run", *INPUTS, "--out", str(out), "--format", "json", "--out-format", fmt)
    assert result.exit_code == 0, result.output
    config = Config(touchpoints=MESSY / "touchpoints.csv", deals=MESSY / "deals.csv",
                    max_reject_rate=1.0,
                    contacts=MESSY / "contacts.csv")
    expected = write_table(pipeline.run(config).credit, tmp_path / "api", "credit", fmt)
    assert (out / f"credit.{fmt}").read_bytes() == expected.read_bytes()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no scratch left


def test_run_with_no_deal_left_writes_empty_credit_and_comparison(tmp_path):
    touches = tmp_path / "t.csv"
    touches.write_text("timestamp,account_id,channel\n2025-03-01,A,podcast\n")
    deals = tmp_path / "d.csv"  # every deal's account is unknown: rejected
    deals.write_text("deal_id,account_id,created_at,closed_at,status,amount\n"
                     "D1,Z,2025-03-10,2025-03-20,won,100\n")
    result = invoke("run", "--touchpoints", str(touches), "--deals", str(deals),
                    "--max-reject-rate", "1",
                    "--out", str(tmp_path / "out"), "--out-format", "csv", "--format", "json",
                    "--model", "last_touch", "--model", "linear")
    assert result.exit_code == 0, result.output
    assert pl.read_csv(tmp_path / "out" / "credit.csv").height == 0
    comparison = pl.read_csv(tmp_path / "out" / "comparison.csv")
    assert comparison.height == 0 and "revenue_shift" in comparison.columns


@pytest.mark.parametrize("verb", ["run", "compare", "validate", "paths", "scorecard"])
def test_more_rejects_than_the_maximum_rate_exit_2_with_the_accounting_and_write_nothing(
        tmp_path, verb):
    out = tmp_path / "out"
    result = invoke(verb, *INPUTS[:-2], "--out", str(out), "--rejects", str(tmp_path / "r.csv"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"Error: {MESSY / 'touchpoints.csv'}: 3 of 12 touchpoints rows "
                                "rejected (25.0%): ")
    rate = ("above the maximum reject rate 20% (fix the rows, or raise it with "
            "--max-reject-rate or [inputs] max_reject_rate)")
    assert "7 of 10 deals rows rejected (70.0%)" in lines[-1]
    assert any("touchpoints" in line and "12" in line for line in lines[:-1])  # the accounting
    assert not out.exists()
    if verb == "validate":  # checking the inputs is its job: the rows are written, and named
        assert lines[-1].endswith(f"{rate}; the rejected rows are in {tmp_path / 'r.csv'}")
        assert pl.read_csv(tmp_path / "r.csv").height == 11
    else:
        assert lines[-1].endswith(rate)
        assert not (tmp_path / "r.csv").exists()
    assert {p.name for p in tmp_path.iterdir()} <= {".out.lock", "r.csv"}


def test_a_higher_maximum_rate_lets_the_run_through(tmp_path):
    result = invoke("-q", "validate", *INPUTS[:-2], "--max-reject-rate", "0.7")
    assert result.exit_code == 0, result.output
    result = invoke("-q", "validate", *INPUTS[:-2], "--max-reject-rate", "1.5")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: --max-reject-rate must be a number from 0 to 1 "
                                     "(0.2 is 20%), not 1.5")
# money: keep names to here
