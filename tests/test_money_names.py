"""The money-name rename (``tools/rename_money_columns.py``, issue #21 item 7): what it renames,
what it leaves, and that the tree holds no money column named the old way (so code merged from
a branch written before the rename fails here until the script is run again)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "rename_money_columns.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("rename_money_columns", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_models_input_is_renamed_where_a_literal_is_a_column(tool):
    # a file of the contract list: every column literal, but option values and kept lines
    source = (
        'journeys.select("journey_id", "amount", "revenue")\n'
        'schema = {"amount": pl.Int64, "revenue": pl.Int64}\n'
        'model = get_model("shapley", value="revenue")\n'
        'if self.value == "revenue":\n'
        '    pass\n'
        'VALUES = ("conversions", "revenue")  # money: keep name\n'
        'minor_units("amount", frame)  # money: keep name\n'
        'revenue_credit = self.revenue_credit("revenue_credit")\n'
    )
    assert tool.rename_source(source, "attribution/credit.py") == (
        'journeys.select("journey_id", "amount_cents", "revenue_cents")\n'
        'schema = {"amount_cents": pl.Int64, "revenue_cents": pl.Int64}\n'
        'model = get_model("shapley", value="revenue")\n'
        'if self.value == "revenue":\n'
        '    pass\n'
        'VALUES = ("conversions", "revenue")  # money: keep name\n'
        'minor_units("amount", frame)  # money: keep name\n'
        'revenue_credit = self.revenue_credit("revenue_credit_cents")\n'
    )


def test_any_other_file_is_renamed_only_in_column_calls(tool):
    # a module the list does not know (a new engine merged from another branch)
    source = (
        'frame.filter(pl.col("revenue") > 0).get_column("amount")\n'
        'pl.lit(0).alias("revenue")\n'
        'deals.select("deal_id", "amount")\n'
        'write_csv({"amount": text})\n'
    )
    assert tool.rename_source(source, "attribution/not_listed.py") == (
        'frame.filter(pl.col("revenue_cents") > 0).get_column("amount_cents")\n'
        'pl.lit(0).alias("revenue_cents")\n'
        'deals.select("deal_id", "amount")\n'
        'write_csv({"amount": text})\n'
    )


def test_the_rename_is_idempotent(tool):
    source = 'pl.col("amount_cents"), pl.col("revenue_credit_cents")\n'
    assert tool.rename_source(source, "attribution/credit.py") == source


def test_the_tree_names_every_money_column_by_its_unit():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, (
        "money columns named the old way (run python tools/rename_money_columns.py, then read "
        "the diff):\n" + done.stdout)
