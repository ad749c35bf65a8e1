"""Money in the run's currency's own minor unit (issue #21, items 5 and 7): a KWD run keeps
three decimals (fils) and a JPY run none, exactly, from the exports through every model to the
files, the terminal, the budget and the spend."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from attribution.budget import parse_bound, read_budget
from attribution.cli import cli
from attribution.errors import ConfigError, InputError
from attribution.output import json_records, json_text, money_to_decimal
from attribution.paths import read_paths
from attribution.render import compact_money, money
from attribution.schema import minor_per_major
from attribution.spend import load_spend

# the files' and the CLI's column names (money in major units) throughout, not the Python API's
# money: keep names from here
DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
MODELS = ["last_touch", "w_shaped", "markov", "shapley", "incremental", "linear", "time_decay",
          "u_shaped", "full_path", "first_touch", "last_non_direct"]
FILS = Decimal("0.001")
#: a money cell of a KWD file: exactly three decimals
THREE_DECIMALS = re.compile(r"^-?\d+\.\d{3}$")


def in_kwd(amount: str | None, row: int) -> str | None:
    """A USD amount of the demo as a KWD amount with a third decimal (a third of it, rounded to
    the fil, with the row number's last digit in the fils so they are rarely 0); text that is
    not a plain decimal stays as it is, as the rows the demo means to be rejected."""
    if amount is None or not re.fullmatch(r"-?\d+\.\d\d", amount):
        return amount
    kwd = (Decimal(amount) / 3).quantize(Decimal("0.01")) + Decimal(row % 10) * FILS
    return f"{kwd:.3f}"


@pytest.fixture(scope="module")
def kwd_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's config over its touchpoints and contacts, with its deals and spend in KWD."""
    folder = tmp_path_factory.mktemp("kwd")
    deals = pl.read_csv(DEMO / "deals.csv", infer_schema=False)
    deals = deals.with_columns(
        pl.Series("amount", [in_kwd(a, i) for i, a in enumerate(deals["amount"], start=1)]),
        pl.lit("KWD").alias("currency"))
    deals.write_csv(folder / "deals.csv")
    spend = pl.read_csv(DEMO / "spend.csv", infer_schema=False)
    spend = spend.with_columns(
        pl.Series("amount", [in_kwd(a, i) for i, a in enumerate(spend["amount"], start=1)]),
        pl.lit("KWD").alias("currency"))
    spend.write_csv(folder / "spend.csv")
    models = ", ".join(f'"{m}"' for m in MODELS)
    (folder / "attribution.toml").write_text(
        "[inputs]\n"
        f'touchpoints = "{DEMO / "touchpoints.csv"}"\n'
        f'deals = "{folder / "deals.csv"}"\n'
        f'contacts = "{DEMO / "contacts.csv"}"\n'
        f'spend = "{folder / "spend.csv"}"\n'
        f"[models]\nrun = [{models}]\n"
        '[models.shapley]\nvalue = "revenue"\n', encoding="utf-8")
    return folder


def run(config: Path, out: Path, fmt: str, *models: str) -> None:
    flags = [f for m in models for f in ("--model", m)]
    result = CliRunner().invoke(cli, ["-q", "run", "--config", str(config), "--out", str(out),
                                      "--out-format", fmt, *flags], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def kwd_deals(folder: Path, out: Path) -> dict[str, tuple[str, Decimal]]:
    """The KWD deals the run took (the file's rows but the rejected ones): deal_id ->
    (status, amount)."""
    deals = pl.read_csv(folder / "deals.csv", infer_schema=False).with_row_index("row", 1)
    rejects = pl.read_csv(out / "rejects.csv", infer_schema=False)
    rejected = {int(r) for r in rejects.filter(pl.col("input") == "deals")["row"]}
    return {d: (s, Decimal(a)) for r, d, s, a in deals.select(
        "row", "deal_id", "status", "amount").rows() if r not in rejected}


@pytest.fixture(scope="module")
def kwd_csv(kwd_demo: Path) -> Path:
    out = kwd_demo / "out-csv"
    run(kwd_demo / "attribution.toml", out, "csv")
    return out


def test_a_kwd_run_credits_every_fil_in_every_model(kwd_demo: Path, kwd_csv: Path) -> None:
    record = json.loads((kwd_csv / "run.json").read_text())
    assert record["currency"] == "KWD"
    credit = pl.read_csv(kwd_csv / "credit.csv", infer_schema=False)
    assert set(credit["model"].unique()) == set(MODELS)
    # every money cell has the currency's three decimals, and most use the third
    for column in ("pipeline_credit", "revenue_credit"):
        assert credit[column].str.contains(r"^-?\d+\.\d{3}$").all(), column
    assert (credit["pipeline_credit"].str.slice(-1) != "0").mean() > 0.5
    deals = kwd_deals(kwd_demo, kwd_csv)
    won_total = sum((a for s, a in deals.values() if s == "won"), Decimal(0))
    pipeline_total = sum((a for _, a in deals.values()), Decimal(0))
    # the totals: integer fils, named so
    assert record["totals"]["won_revenue_cents"] == int(won_total * 1000)
    assert record["totals"]["pipeline_cents"] == int(pipeline_total * 1000)
    sums: dict[tuple[str, str], list[Decimal]] = {}
    for model, deal, pipeline, revenue in credit.select(
            "model", "deal_id", "pipeline_credit", "revenue_credit").rows():
        entry = sums.setdefault((model, deal), [Decimal(0), Decimal(0)])
        entry[0] += Decimal(pipeline)
        entry[1] += Decimal(revenue)
    for model in MODELS:
        # each deal's credit sums to its amount, to the fil: pipeline for every deal, revenue
        # for the won ones
        for deal, (status, amount) in deals.items():
            pipeline, revenue = sums[(model, deal)]
            assert pipeline == amount, (model, deal)
            assert revenue == (amount if status == "won" else 0), (model, deal)
    summary = pl.read_csv(kwd_csv / "summary.csv", infer_schema=False)
    for model in MODELS:
        rows = summary.filter(pl.col("model") == model)
        assert rows["revenue_credit"].str.contains(r"^-?\d+\.\d{3}$").all()
        assert sum(map(Decimal, rows["revenue_credit"])) == won_total, model
        assert sum(map(Decimal, rows["pipeline_credit"])) == pipeline_total, model
    comparison = pl.read_csv(kwd_csv / "comparison.csv", infer_schema=False)
    for column in ("revenue_credit", "last_touch_revenue_credit", "revenue_shift"):
        assert comparison[column].str.contains(r"^-?\d+\.\d{3}$").all(), column
    # the estimates are in dinars too: Markov's removal-effect revenue (shares x the won
    # revenue of the deals with touches) and the Shapley revenue values (the simplified game's
    # values add up to that revenue)
    touched = credit.filter((pl.col("model") == "last_touch")
                            & (pl.col("channel") != "(no touch)"))
    touched_revenue = float(sum(map(Decimal, touched["revenue_credit"])))
    effects = pl.read_csv(kwd_csv / "markov_removal_effects.csv")
    assert effects["revenue_credit"].sum() == pytest.approx(touched_revenue, rel=1e-9)
    values = pl.read_csv(kwd_csv / "shapley_values.csv")
    assert values["shapley_value"].sum() == pytest.approx(touched_revenue, rel=1e-9)


def as_text(value: object) -> str | None:
    """A cell as the CSV reader gives it (a null stays null)."""
    return None if value is None else str(value)


def test_a_kwd_run_writes_the_same_fils_to_parquet_and_json(kwd_demo: Path,
                                                          kwd_csv: Path) -> None:
    models = ("last_touch", "markov", "linear")
    parquet_out, json_out = kwd_demo / "out-parquet", kwd_demo / "out-json"
    run(kwd_demo / "attribution.toml", parquet_out, "parquet", *models)
    run(kwd_demo / "attribution.toml", json_out, "json", *models)
    csv = (pl.read_csv(kwd_csv / "credit.csv", infer_schema=False)
           .filter(pl.col("model").is_in(models)))
    expected = [(m, j, i, Decimal(p), Decimal(r)) for m, j, i, p, r in csv.select(
        "model", "journey_id", "touch_index", "pipeline_credit", "revenue_credit").rows()]
    parquet = pl.read_parquet(parquet_out / "credit.parquet")
    assert parquet.schema["pipeline_credit"] == pl.Decimal(38, 3)
    assert parquet.schema["revenue_credit"] == pl.Decimal(38, 3)
    assert [(m, j, as_text(i), p, r) for m, j, i, p, r in parquet.select(
        "model", "journey_id", "touch_index", "pipeline_credit", "revenue_credit").rows()] == \
        expected
    # JSON numbers are dinars: times 1,000 they are the whole fils
    records = json.loads((json_out / "credit.json").read_text())
    assert [(r["model"], r["journey_id"], as_text(r["touch_index"]),
             round(r["pipeline_credit"] * 1000), round(r["revenue_credit"] * 1000))
            for r in records] == [(m, j, i, int(p * 1000), int(r * 1000))
                                  for m, j, i, p, r in expected]
    summary = pl.read_parquet(parquet_out / "summary.parquet")
    assert summary.schema["revenue_credit"] == pl.Decimal(38, 3)


def test_a_kwd_budget_is_in_fils_and_refuses_a_finer_total(kwd_demo: Path) -> None:
    config = str(kwd_demo / "attribution.toml")
    result = CliRunner().invoke(cli, ["-q", "budget", "--config", config, "--model", "linear",
                                      "--format", "json", "--total", "5000.125"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sum(round(r["recommended"] * 1000) for r in rows) == 5_000_125
    spend = pl.read_csv(kwd_demo / "spend.csv", infer_schema=False)
    spent = sum(map(Decimal, spend["amount"]))
    assert sum(round(r["current_spend"] * 1000) for r in rows) == int(spent * 1000)
    finer = CliRunner().invoke(cli, ["-q", "budget", "--config", config, "--model", "linear",
                                     "--total", "5000.1234"])
    assert finer.exit_code == 2
    assert finer.output.strip().splitlines()[-1] == (
        "Error: '5000.1234' has more decimals than the currency's minor unit (3 decimals, "
        "ISO 4217)")


# -- a currency without decimals ----------------------------------------------------------------
def test_a_jpy_run_holds_whole_yen_and_rejects_a_fraction(tmp_path: Path) -> None:
    touches = tmp_path / "t.csv"
    touches.write_text("touchpoint_id,timestamp,account_id,channel\n"
                       "t1,2025-02-01T00:00:00Z,A,email\n"
                       "t2,2025-02-03T00:00:00Z,A,events\n"
                       "t3,2025-02-05T00:00:00Z,A,search\n"
                       "t4,2025-02-01T00:00:00Z,B,email\n", encoding="utf-8")
    deals = tmp_path / "d.csv"
    deals.write_text("deal_id,account_id,created_at,closed_at,status,amount,currency\n"
                     "D1,A,2025-02-10T00:00:00Z,2025-03-01T00:00:00Z,won,1000,JPY\n"
                     "D2,B,2025-02-10T00:00:00Z,2025-03-01T00:00:00Z,won,100.5,JPY\n"
                     "D3,B,2025-02-11T00:00:00Z,,open,120000.00,JPY\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--touchpoints", str(touches), "--deals",
                                      str(deals), "--out", str(out), "--out-format", "csv",
                                      "--model", "linear", "--max-reject-rate", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rejects = pl.read_csv(out / "rejects.csv", infer_schema=False)
    assert rejects.select("row", "column", "reason", "value").rows() == [
        ("2", "amount", "amount has more decimals than JPY's minor unit (no decimals, ISO 4217)",
         "100.5")]
    credit = pl.read_csv(out / "credit.csv", infer_schema=False)
    # a third of 1,000 yen each: whole yen, the remainder to one touch, nothing lost
    assert credit.filter(pl.col("deal_id") == "D1")["revenue_credit"].to_list() == \
        ["334", "333", "333"]
    assert credit.filter(pl.col("deal_id") == "D3")["pipeline_credit"].to_list() == ["120000"]
    assert json.loads((out / "run.json").read_text())["totals"]["won_revenue_cents"] == 1000
    assert "¥1,000" in result.output or "¥1000" in result.output


# -- the pieces ---------------------------------------------------------------------------------
def test_money_is_shown_and_written_to_the_currencys_minor_unit() -> None:
    assert minor_per_major("KWD") == 1000 and minor_per_major("JPY") == 1
    assert money(1234567, "KWD") == "1,234.567 KWD"
    assert money(-5, "KWD") == "-0.005 KWD"
    assert money(1234, "JPY") == "¥1,234"
    assert money(123456) == "$1,234.56"
    assert compact_money(1_234_567, "KWD") == "1.23k KWD"
    # in memory: minor units, named so; written: major units, named without the suffix
    frame = pl.DataFrame({"revenue_credit_cents": [1234567, -5], "revenue_share": [0.5, 0.5]})
    assert money_to_decimal(frame, decimals=3)["revenue_credit"].to_list() == [
        Decimal("1234.567"), Decimal("-0.005")]
    assert money_to_decimal(frame, decimals=3).schema["revenue_credit"] == pl.Decimal(38, 3)
    assert money_to_decimal(frame, decimals=0)["revenue_credit"].to_list() == [
        Decimal(1234567), Decimal(-5)]
    # JSON: exact decimals, written digit for digit (never through a float)
    assert [r["revenue_credit"] for r in json_records(frame, decimals=3)] == [
        Decimal("1234.567"), Decimal("-0.005")]
    assert json_text(json_records(frame, decimals=3), indent=None) == (
        '[{"revenue_credit": 1234.567, "revenue_share": 0.5}, '
        '{"revenue_credit": -0.005, "revenue_share": 0.5}]')


def test_bounds_and_budget_files_are_read_to_the_minor_unit(tmp_path: Path) -> None:
    assert parse_bound("1,234.567", 3) == 1234567
    assert parse_bound("1234", 0) == 1234
    assert parse_bound("5,000.50") == 500050
    with pytest.raises(ConfigError, match=r"^'12.5' has more decimals than the currency's "
                                          r"minor unit \(no decimals, ISO 4217\)$"):
        parse_bound("12.5", 0)
    budget = tmp_path / "budget.csv"
    budget.write_text("channel,amount\npodcast,1.234\nevents,10\n", encoding="utf-8")
    assert read_budget(budget, decimals=3).rows() == [("events", 10000), ("podcast", 1234)]
    with pytest.raises(InputError, match=r"row 1, column 'amount': more decimals than the "
                                         r"currency's minor unit \(2 decimals"):
        read_budget(budget)


def test_spend_in_kwd_is_read_in_fils(tmp_path: Path) -> None:
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,period_start,period_end,amount,currency\n"
                     "podcast,2025-01-01,2025-01-03,1.001,KWD\n"
                     "podcast,2025-01-04,2025-01-04,2.0005,KWD\n", encoding="utf-8")
    loaded = load_spend(spend, currency="KWD")
    assert loaded.rows["amount_cents"].to_list() == [1001]
    # spread over three days to the fil: 334 + 334 + 333
    assert loaded.daily["spend_cents"].to_list() == [334, 334, 333]
    assert loaded.rejects.select("row", "reason").rows() == [
        (2, "amount has more decimals than KWD's minor unit (3 decimals, ISO 4217)")]
    # without a currency, the file's own (KWD) decides
    assert load_spend(spend).currency == "KWD"
    assert load_spend(spend).rows["amount_cents"].to_list() == [1001]


def test_path_table_values_are_read_in_the_runs_minor_unit(tmp_path: Path) -> None:
    paths = tmp_path / "paths.csv"
    paths.write_text("path,conversions,nulls,conversion_value\n"
                     "email > search,2,1,1234.567\nsearch,1,0,10\n", encoding="utf-8")
    kwd = read_paths(paths, decimals=3).journeys.journeys.collect()
    assert kwd["revenue_cents"].to_list() == [1234567, 10000]
    jpy = read_paths(paths, decimals=0).journeys.journeys.collect()
    assert jpy["revenue_cents"].to_list() == [1235, 10]
# money: keep names to here
