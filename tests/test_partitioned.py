"""Partitioned runs (attribution.partitioned): the in-memory run's result files, byte for byte.

Each test runs ``attribution run`` twice from the CLI, in memory and a hash partition of
accounts at a time, and compares every file written. The demo export has rejected rows,
deals without a touch, deal-less accounts, open deals and several contacts per account.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution import partitioned
from attribution.cli import cli
from attribution.config import Config
from attribution.models import MODELS, get_model
from tests.factories import rejected_and_blanked_contacts

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
INPUTS = ["--touchpoints", str(DEMO / "touchpoints.csv"), "--deals", str(DEMO / "deals.csv"),
          "--contacts", str(DEMO / "contacts.csv")]
#: the default models a partitioned run fits (every model that is per-journey or fits from
#: tallies; a model that fits on all journeys at once joins when it can tally)
PARTITIONED = [name for name in sorted(MODELS, key=lambda n: n != "last_touch")
               if not get_model(name).fits or get_model(name).fits_from_tallies()]
PARTITIONED = [n for n in PARTITIONED if n not in ("self_reported", "blended")]


def run(*arguments: str) -> None:
    result = CliRunner().invoke(cli, ["-q", "run", *arguments])
    assert result.exit_code == 0, result.output


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_same_results(memory: dict[str, bytes], parts: dict[str, bytes], partitions: int,
                        basis: str) -> None:
    """Every file byte for byte, but run.json, which also records the partitions and why
    (its engine entry; the in-memory run's has none)."""
    assert sorted(memory) == sorted(parts)
    for name in memory:
        if name != "run.json":
            assert parts[name] == memory[name], name
    record, expected = json.loads(parts["run.json"]), json.loads(memory["run.json"])
    assert record.pop("engine") == {"name": "polars", "partitions": partitions,
                                    "partitions_from": basis}
    assert "engine" not in expected
    assert record == expected


def models_args(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("--model", name)]


@pytest.mark.parametrize("options", [
    [],
    ["--lookback-days", "60", "--dedup-minutes", "0", "--as-of", "2025-03-01",
     "--markov-order", "2", "--half-life-days", "3", "--shapley-variant", "ordered"],
    ["--out-format", "csv", "--currency", "USD", "--param", "u_shaped.first=0.3"],
], ids=["defaults", "windows-orders-variants", "csv"])
@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_same_files_as_in_memory(tmp_path: Path, partitions: int, options: list[str]) -> None:
    models = models_args(PARTITIONED)
    run(*INPUTS, *models, *options, "--out", str(tmp_path / "memory"))
    run(*INPUTS, *models, *options, "--partitions", str(partitions),
        "--out", str(tmp_path / "parts"))
    memory, parts = files_of(tmp_path / "memory"), files_of(tmp_path / "parts")
    assert "rejects.csv" in memory
    assert {"markov_removal_effects", "shapley_values"} <= {Path(n).stem for n in memory}
    assert_same_results(memory, parts, partitions, f"--partitions {partitions}")


def test_default_models_leave_out_what_cannot_tally(tmp_path: Path) -> None:
    """A default partitioned run runs every default model that tallies, and its files are
    those of the in-memory run of the same models; the others are listed as skipped."""
    run(*INPUTS, "--partitions", "4", "--out", str(tmp_path / "parts"))
    record = json.loads((tmp_path / "parts" / "run.json").read_text())
    ran = [m["name"] for m in record["models"]]
    assert ran == PARTITIONED
    run(*INPUTS, *models_args(ran), "--out", str(tmp_path / "memory"))
    assert_same_results(files_of(tmp_path / "memory"), files_of(tmp_path / "parts"), 4,
                        "--partitions 4")


def test_a_dataset_of_parquet_files(tmp_path: Path) -> None:
    """A folder (and a glob) of Parquet parts is one export: partitioned on its own, the same
    credit, summary and fits as the in-memory run of the parts as one file; rejects name
    the part file and its row."""
    touches = pl.read_csv(DEMO / "touchpoints.csv", infer_schema=False)
    contacts = pl.read_csv(DEMO / "contacts.csv", infer_schema=False)
    folder = tmp_path / "touchpoints"
    folder.mkdir()
    cut = [0, 3000, 3001, 7000, touches.height]
    for i, (start, end) in enumerate(zip(cut, cut[1:], strict=False)):
        touches.slice(start, end - start).write_parquet(folder / f"part-{i}.parquet")
    (folder / "_SUCCESS").write_text("")
    touches.write_parquet(tmp_path / "touchpoints.parquet")
    contacts.write_parquet(tmp_path / "contacts.parquet")
    common = ["--deals", str(DEMO / "deals.csv"), "--contacts", str(tmp_path / "contacts.parquet"),
              *models_args(PARTITIONED)]
    run("--touchpoints", str(tmp_path / "touchpoints.parquet"), *common,
        "--out", str(tmp_path / "memory"))
    run("--touchpoints", str(folder), *common, "--out", str(tmp_path / "dataset"))
    run("--touchpoints", str(folder / "part-*.parquet"), *common,
        "--out", str(tmp_path / "glob"))
    memory = files_of(tmp_path / "memory")
    for label in ("dataset", "glob"):
        parts = files_of(tmp_path / label)
        for name in memory:
            if name not in ("run.json", "rejects.csv"):
                assert parts[name] == memory[name], (label, name)
        record, expected = (json.loads(parts["run.json"]), json.loads(memory["run.json"]))
        assert record["totals"] == expected["totals"]
        assert record["engine"] == {
            "name": "polars", "partitions": 1,
            "partitions_from": "--touchpoints is a folder or glob of Parquet files: one "
                               "partition per 128 MiB of their row groups, uncompressed"}
        counts = [{k: v for k, v in a.items() if k != "file"} for a in record["accounting"]]
        assert counts == [{k: v for k, v in a.items() if k != "file"}
                          for a in expected["accounting"]]
    rejects = pl.read_csv(tmp_path / "dataset" / "rejects.csv", infer_schema=False)
    whole = pl.read_csv(tmp_path / "memory" / "rejects.csv", infer_schema=False)
    touch_rejects = rejects.filter(pl.col("input") == "touchpoints")
    # each part's row is the whole file's row less the rows of the parts before it
    offsets = {str(folder / f"part-{i}.parquet"): start for i, start in enumerate(cut[:-1])}
    placed = touch_rejects.select(
        (pl.col("row").cast(pl.Int64)
         + pl.col("file").replace_strict(offsets, return_dtype=pl.Int64)).alias("row"),
        "reason")
    assert placed.sort("row").rows() == (
        whole.filter(pl.col("input") == "touchpoints")
        .select(pl.col("row").cast(pl.Int64), "reason").sort("row").rows())
    assert rejects.filter(pl.col("input") != "touchpoints").rows() == \
        whole.filter(pl.col("input") != "touchpoints").rows()


def test_refuses_what_it_does_not_do(tmp_path: Path) -> None:
    unsupported = [n for n in MODELS if get_model(n).fits and not get_model(n).fits_from_tallies()]
    for name in unsupported:
        result = CliRunner().invoke(cli, ["-q", "run", *INPUTS, "--model", name,
                                          "--partitions", "2", "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, result.output
        assert f"model {name!r} fits on all journeys at once" in result.output
    result = CliRunner().invoke(cli, ["-q", "run", *INPUTS, "--model", "linear", "--partitions",
                                      "2", "--bootstrap", "5", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "--bootstrap" in result.output
    result = CliRunner().invoke(cli, ["-q", "run", *INPUTS, "--engine", "spark",
                                      "--partitions", "2", "--out", str(tmp_path / "z")])
    assert result.exit_code == 2 and "--partitions is the polars engine's" in result.output


def test_when_a_run_partitions(tmp_path: Path) -> None:
    csv = Config(touchpoints=DEMO / "touchpoints.csv", deals=DEMO / "deals.csv")
    assert partitioned.partitions_for(csv) is None
    assert partitioned.partitions_for(csv, 5) == 5
    folder = tmp_path / "t"
    folder.mkdir()
    pl.read_csv(DEMO / "touchpoints.csv", infer_schema=False).write_parquet(folder / "a.parquet")
    assert partitioned.partitions_for(Config(touchpoints=folder, deals=DEMO / "deals.csv")) == 1
    single = Config(touchpoints=folder / "a.parquet", deals=DEMO / "deals.csv")
    assert partitioned.partitions_for(single) is None  # small: in memory
    (folder / "notes.txt").write_text("x")
    with pytest.raises(partitioned.InputError, match="not one"):
        partitioned.dataset_files(folder, "touchpoints")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab:1é", max_size=5), min_size=1, max_size=40, unique=True),
       st.lists(st.text(alphabet="ab:1é", max_size=5), max_size=6))
def test_journey_ranges_keep_journey_id_order(ids: list[str], cuts: list[str]) -> None:
    """Journeys written by range and read back range after range, each range sorted, come in
    the order of one sort of all of them: the credit file's order."""
    bounds = pl.Series("bound", sorted(set(cuts)), pl.String)
    journey_id = pl.Series("journey_id", ids, pl.String)
    ranges = partitioned._range_of(journey_id, bounds)
    frame = pl.DataFrame({"journey_id": journey_id, "r": ranges})
    read_back = [i for r in sorted(set(ranges.to_list()))
                 for i in frame.filter(pl.col("r") == r).get_column("journey_id").sort()]
    assert read_back == journey_id.sort().to_list()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=2.0**-20, max_value=3.0), min_size=1, max_size=30),
       st.lists(st.integers(0, 3), min_size=30, max_size=30))
def test_summed_conversion_credit_is_the_exact_sum(values: list[float], parts: list[int]) -> None:
    """The conversion credit summed range by range (integer parts) is the one exact sum of
    all the rows, whatever ranges they fall in."""
    from attribution.credit import exact_sum

    credit = pl.DataFrame({
        "model": "linear", "channel": "c", "channel_group": "g",
        "pipeline_credit_cents": 1, "revenue_credit_cents": 1,
        "conversion_credit": values, "_part": parts[:len(values)],
    })
    partials = [partitioned._partial_summary(credit.filter(pl.col("_part") == p).drop("_part"))
                for p in sorted(set(parts[:len(values)]))]
    reach = [pl.DataFrame({"channel": ["c"], "deals_touched": [1]})]
    summary = partitioned._summary(partials, reach, [get_model("linear")])
    expected = credit.select(exact_sum(pl.col("conversion_credit"))).item()
    assert summary.filter(pl.col("channel") == "c").get_column("conversion_credit").item() \
        == expected


def test_says_which_default_models_it_left_out(tmp_path: Path) -> None:
    """Every model fits from tallies at its defaults; Markov with a bootstrap resamples whole
    paths, so a default run leaves it out and says so, and naming it is refused."""
    assert [n for n in MODELS if get_model(n).fits and not get_model(n).fits_from_tallies()] \
        == []
    bootstrap = ["--param", "markov.bootstrap=5"]
    result = CliRunner().invoke(cli, ["run", *INPUTS, *bootstrap, "--partitions", "2",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert "not run in partitions: markov" in result.output
    written = pl.read_parquet(tmp_path / "x" / "credit.parquet")["model"].unique().to_list()
    assert "markov" not in written and "incremental" in written
    refused = CliRunner().invoke(cli, ["run", *INPUTS, *bootstrap, "--model", "markov",
                                       "--partitions", "2", "--out", str(tmp_path / "y")])
    assert refused.exit_code == 2
    assert "model 'markov' fits on all journeys at once" in refused.output


def test_journey_ranges_are_about_equal() -> None:
    """Deals count once and each sampled account for the accounts it stands for, so ranges of
    mostly deal-less accounts are not larger than the others."""
    from datetime import UTC, datetime

    deals = pl.DataFrame({"deal_id": [f"d{i:05d}" for i in range(2_000)],
                          "created_at": datetime(2025, 1, 1, tzinfo=UTC)})
    accounts = pl.Series([f"a{i:06d}" for i in range(32_000)])
    sample = accounts.filter(accounts.hash(seed=7) % partitioned.SAMPLE_EVERY == 0)
    bounds = partitioned._journey_ranges(deals, sample, 8, datetime(2026, 1, 1, tzinfo=UTC))
    ids = pl.concat([deals.get_column("deal_id"), "account:" + accounts])
    sizes = partitioned._range_of(ids, bounds).value_counts().get_column("count")
    assert sizes.len() == 8
    assert sizes.max() < 1.5 * ids.len() / 8


def test_a_rejected_contact_and_a_blanked_lead_date_read_as_in_memory(tmp_path: Path) -> None:
    """A touch of a rejected contact says so; a lead date that cannot be read is left blank,
    the contact kept: the rejects and the accounting are the in-memory run's."""
    from attribution import pipeline

    config = rejected_and_blanked_contacts(tmp_path, ("linear",))
    expected = pipeline.run(config)
    parts = partitioned.run(config, 2)
    assert parts.rejects.rows() == expected.rejects.rows()
    assert [a.as_dict() for a in parts.accounting] == [a.as_dict() for a in expected.accounting]
    assert expected.rejects["reason"][2] == (
        "contact rejected in the contacts file (missing account_id), and the row has no "
        "account_id")
