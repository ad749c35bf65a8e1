"""Money in JSON is exact to the currency's minor unit: every ``--format json`` output of the
CLI, the JSON result files and run.json write whole minor units as decimal numbers with the
currency's ISO 4217 decimals (``51528.20``, never ``51528.200000000004``), so the text reads
back exactly with ``json.loads(text, parse_float=Decimal)``.

The CLI tests draw the amounts (in minor units) and the currency, build an export whose every
deal is one touch of one channel (so every model credits a channel exactly its deals'
amounts) and check each verb's JSON against the amounts drawn.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from attribution.cli import cli
from attribution.output import (
    json_records,
    json_text,
    major_decimal,
    money_to_float,
    write_table,
)
from attribution.schema import MONEY_COLUMNS, currency_decimals, major_name
from attribution.validation import MAX_AMOUNT_DIGITS

# the CLI's JSON names money in major units without ``_cents``: the names here are theirs
# money: keep names from here
#: every money field of the CLI's JSON, by its name there
MONEY_FIELDS = {major_name(c) for c in MONEY_COLUMNS} | {
    "rejected_amount", "rejected_won_amount", "won_revenue", "pipeline"}
#: money fields that are estimates (floats by design: a mean, a share times a total)
ESTIMATES = {"mean_absolute_error", "shapley_value", "standard_error"}

CURRENCIES = st.sampled_from(["USD", "KWD", "JPY"])
#: amounts up to 10^13 major units of a 2-decimal currency: past a float's 15 exact digits
CENTS = st.integers(min_value=-(10**17), max_value=10**17)


def exact(cents: int, decimals: int) -> Decimal:
    """What the JSON must read back as: ``cents / 10**decimals``, exactly."""
    return Decimal(cents).scaleb(-decimals)


def parsed(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def money_values(document: Any, key: str | None = None) -> list[tuple[str, Any]]:
    """Every (field, value) of a money field anywhere in a parsed document."""
    found: list[tuple[str, Any]] = []
    if isinstance(document, dict):
        for name, value in document.items():
            found.extend(money_values(value, name))
    elif isinstance(document, list):
        for value in document:
            found.extend(money_values(value, key))
    elif key in MONEY_FIELDS and key not in ESTIMATES and document is not None:
        if not (key == "recommended" and isinstance(document, str)):  # calibrate's model name
            found.append((key, document))
    return found


def assert_minor_units(document: Any, decimals: int) -> None:
    """Every money value of ``document`` is a number with at most ``decimals`` places."""
    for name, value in money_values(document):
        assert isinstance(value, int | Decimal), (name, value)
        if isinstance(value, Decimal):
            assert value.as_tuple().exponent >= -decimals, (name, value)


# -- the writers ------------------------------------------------------------------------------
@settings(max_examples=300)
@given(cents=st.lists(CENTS, min_size=1, max_size=20), currency=CURRENCIES)
def test_json_records_and_text_read_back_exactly(cents: list[int], currency: str) -> None:
    decimals = currency_decimals(currency)
    frame = pl.DataFrame({"channel": [f"c{i}" for i in range(len(cents))],
                          "revenue_credit_cents": cents,
                          "current_spend_cents": [-c for c in cents]})
    for indent in (2, None):
        rows = parsed(json_text(json_records(frame, decimals=decimals), indent=indent))
        assert [r["revenue_credit"] for r in rows] == [exact(c, decimals) for c in cents]
        assert [r["current_spend"] for r in rows] == [exact(-c, decimals) for c in cents]
        assert_minor_units(rows, decimals)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cents=st.lists(CENTS, min_size=0, max_size=20), currency=CURRENCIES)
def test_json_result_files_read_back_exactly(tmp_path: Path, cents: list[int],
                                             currency: str) -> None:
    decimals = currency_decimals(currency)
    frame = pl.DataFrame({"channel": [f'"revenue_credit":"{c}"' for c in cents],
                          "revenue_credit_cents": cents,
                          "revenue_credit_high_cents": [None if c % 3 else c for c in cents],
                          "revenue_share": [0.25] * len(cents)},
                         schema_overrides={"revenue_credit_high_cents": pl.Int64})
    path = write_table(frame, tmp_path, "summary", "json", decimals=decimals)
    rows = parsed(path.read_text("utf-8"))
    assert [r["revenue_credit"] for r in rows] == [exact(c, decimals) for c in cents]
    assert [r["revenue_credit_high"] for r in rows] == [
        None if c % 3 else exact(c, decimals) for c in cents]
    # a text cell that looks like a money field is text, untouched
    assert [r["channel"] for r in rows] == [f'"revenue_credit":"{c}"' for c in cents]
    assert_minor_units(rows, decimals)


@settings(max_examples=200)
@given(cents=st.lists(st.integers(min_value=-(10**15), max_value=10**15), max_size=20),
       currency=CURRENCIES)
def test_money_to_float_gives_the_float_nearest_the_amount(cents: list[int],
                                                           currency: str) -> None:
    decimals = currency_decimals(currency)
    frame = pl.DataFrame({"revenue_credit_cents": cents}, schema={"revenue_credit_cents": pl.Int64})
    floats = money_to_float(frame, decimals=decimals)["revenue_credit"].to_list()
    # Python's int / int is correctly rounded: the float nearest cents / 10**decimals
    assert floats == [c / 10**decimals for c in cents]


def test_json_text_is_json_dumps_but_for_decimals() -> None:
    documents = [{"a": [1, 2.5, {"b": None, "c": True}], "z": {}, "y": [], "é": 'x\n"'},
                 [], {}, "text", 1.0, [[[]]], {"k": {1: 2, 10: 3, 9: 4}}, float("nan")]
    for document in documents:
        for options in ({"indent": 2}, {"indent": None}, {"indent": None, "sort_keys": True}):
            assert json_text(document, **options) == json.dumps(document, **options)
    assert json_text({"m": major_decimal(5152820), "j": major_decimal(1234, 0),
                      "k": major_decimal(-5, 3)}, indent=None) == (
        '{"m": 51528.20, "j": 1234, "k": -0.005}')


# -- every verb ---------------------------------------------------------------------------------
def export(folder: Path, currency: str, won: tuple[int, int], open_deal: int, rejected: int,
           spend: tuple[int, int], lift: int) -> list[str]:
    """An export in ``folder`` whose deals are one touch each: D1 (won, email), D2 (won,
    events), D3 (open, email) and D4 (won, of an unknown account: rejected); spend on email
    and events; one experiment on email. Returns the inputs' options."""
    decimals = currency_decimals(currency)

    def text(cents: int) -> str:
        return format(exact(cents, decimals), "f")

    (folder / "touchpoints.csv").write_text(
        "touchpoint_id,timestamp,account_id,channel\n"
        "t1,2025-02-01T00:00:00Z,A,email\n"
        "t2,2025-02-02T00:00:00Z,B,events\n", "utf-8")
    (folder / "deals.csv").write_text(
        "deal_id,account_id,created_at,closed_at,status,amount,currency\n"
        f"D1,A,2025-02-10T00:00:00Z,2025-03-01T00:00:00Z,won,{text(won[0])},{currency}\n"
        f"D2,B,2025-02-10T00:00:00Z,2025-03-01T00:00:00Z,won,{text(won[1])},{currency}\n"
        f"D3,A,2025-02-11T00:00:00Z,,open,{text(open_deal)},{currency}\n"
        f"D4,Z,2025-02-11T00:00:00Z,2025-03-01T00:00:00Z,won,{text(rejected)},{currency}\n",
        "utf-8")
    (folder / "spend.csv").write_text(
        "channel,period_start,period_end,amount,currency\n"
        f"email,2025-02-01,2025-02-28,{text(spend[0])},{currency}\n"
        f"events,2025-02-01,2025-02-28,{text(spend[1])},{currency}\n", "utf-8")
    (folder / "experiments.csv").write_text(
        "channel,start,end,metric,lift,lower,upper\n"
        f"email,2025-02-01,2025-03-31,revenue,{text(lift)},{text(lift)},{text(lift)}\n", "utf-8")
    return ["--touchpoints", str(folder / "touchpoints.csv"), "--deals",
            str(folder / "deals.csv"), "--max-reject-rate", "1"]


def verb(*arguments: str) -> Any:
    """A verb's stdout, parsed with exact decimals."""
    result = CliRunner().invoke(cli, ["-q", *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return parsed(result.stdout)


def by_channel(rows: list[dict[str, Any]], model: str = "linear") -> dict[str, dict[str, Any]]:
    return {r["channel"]: r for r in rows if r.get("model", model) == model}


# the largest amount read has MAX_AMOUNT_DIGITS digits before the point in any currency
AMOUNT = st.integers(min_value=1, max_value=10**MAX_AMOUNT_DIGITS - 1)


# each example runs every verb (seconds): a few examples, the failing one reported unshrunk
@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(currency=CURRENCIES, won=st.tuples(AMOUNT, AMOUNT), open_deal=AMOUNT, rejected=AMOUNT,
       spend=st.tuples(AMOUNT, AMOUNT), lift=AMOUNT)
def test_every_verbs_json_reads_back_to_the_minor_unit(
        tmp_path_factory: Any, currency: str, won: tuple[int, int], open_deal: int,
        rejected: int, spend: tuple[int, int], lift: int) -> None:
    folder = tmp_path_factory.mktemp("export")
    decimals = currency_decimals(currency)
    inputs = export(folder, currency, won, open_deal, rejected, spend, lift)
    email, events = exact(won[0], decimals), exact(won[1], decimals)
    model = ["--model", "linear"]

    def check(document: Any) -> Any:
        assert_minor_units(document, decimals)
        return document

    # run: the summary on stdout, the JSON files and run.json
    out = folder / "out"
    summary = by_channel(check(verb("run", *inputs, *model, "--format", "json",
                                    "--out", str(out), "--out-format", "json")))
    assert summary["email"]["revenue_credit"] == email
    assert summary["email"]["pipeline_credit"] == exact(won[0] + open_deal, decimals)
    assert summary["events"]["revenue_credit"] == events
    assert by_channel(check(parsed((out / "summary.json").read_text())))["email"][
        "pipeline_credit"] == exact(won[0] + open_deal, decimals)
    credit = check(parsed((out / "credit.json").read_text()))
    assert {(r["deal_id"], r["revenue_credit"]) for r in credit if r["model"] == "linear"} == {
        ("D1", email), ("D2", events), ("D3", 0)}
    record = check(parsed((out / "run.json").read_text()))
    assert record["totals"]["won_revenue_cents"] == won[0] + won[1]
    assert record["totals"]["pipeline_cents"] == won[0] + won[1] + open_deal
    deals = next(a for a in record["accounting"] if a["input"] == "deals")
    assert deals["rejected_amount"] == deals["rejected_won_amount"] == exact(rejected, decimals)

    compared = by_channel(check(verb("compare", *inputs, *model, "--format", "json")))
    assert compared["email"]["revenue_credit"] == email
    assert compared["events"]["last_touch_revenue_credit"] == events

    accounting = check(verb("validate", *inputs, "--format", "json"))
    deals = next(a for a in accounting if a["input"] == "deals")
    assert deals["rejected_amount"] == exact(rejected, decimals)

    spent = ["--spend", str(folder / "spend.csv")]
    card = by_channel(check(verb("scorecard", *inputs, *model, *spent, "--format", "json")))
    assert card["email"]["revenue_credit"] == email
    assert card["email"]["avg_deal_size"] == email  # one won deal
    assert card["email"]["spend"] == exact(spend[0], decimals)
    assert card["events"]["cost_per_won_deal"] == exact(spend[1], decimals)

    plan = by_channel(check(verb("budget", *inputs, *model, *spent, "--format", "json")))
    assert plan["email"]["current_spend"] == exact(spend[0], decimals)
    assert plan["events"]["current_spend"] == exact(spend[1], decimals)
    assert sum(r["recommended"] for r in plan.values()) == exact(spend[0] + spend[1], decimals)

    calibration = check(verb("calibrate", *inputs, *model, "--experiments",
                             str(folder / "experiments.csv"), "--format", "json"))
    linear = next(r for r in calibration["experiments"] if r["model"] == "linear")
    assert linear["lift"] == exact(lift, decimals)
    assert linear["model_credit"] == email

    database = folder / "history.duckdb"
    verb("run", *inputs, *model, "--out", str(database), "--format", "json")
    runs = check(verb("history", "--out", str(database), "--format", "json"))
    assert runs[-1]["won_revenue"] == exact(won[0] + won[1], decimals)
    trend = check(verb("history", "--out", str(database), "--channel", "email", "--model",
                       "linear", "--format", "json"))
    assert trend[-1]["revenue_credit"] == email
# money: keep names to here
