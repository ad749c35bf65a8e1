"""Experiments as ground truth: the experiments file, `attribution calibrate`, the planted truth."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from attribution import commands
from attribution.cli import cli
from attribution.config import load_config
from attribution.engine import get_engine
from attribution.errors import ConfigError, RejectedRowError, RejectRateError
from attribution.experiments import load_experiments

FIXTURES = Path(__file__).parent.parent / "fixtures" / "experiments"
TINY = FIXTURES / "tiny"
PLANTED = FIXTURES / "planted"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def calibrated(config_path: Path = TINY / "attribution.toml", **changes):
    config = load_config(config_path).replace(**changes)
    return commands.calibrate(config, get_engine("polars"))


# -- hand-worked numbers -------------------------------------------------------------------------
# D1 (won 1,000, closed 03-10): podcast then paid_search; D2 (won 3,000, closed 03-20): paid
# search; D3 (won 600, closed 05-15): podcast, events, paid_search; D4 (open 5,000, created
# 02-10): podcast. D1, D2 and D4 were created in February.
#   1 paid_search revenue March:      last 1,000+3,000; first 0+3,000;     linear 500+3,000
#   2 podcast revenue March-May:      last 0;           first 1,000+600;   linear 500+200
#   3 podcast pipeline February:      last 5,000 (D4);  first 1,000+5,000; linear 500+5,000


def test_calibrate_sets_each_models_credit_beside_each_experiment():
    done = calibrated()
    table = done.calibration.table
    assert table.select("experiment", "model", "model_credit_cents", "inside").rows() == [
        (1, "last_touch", 400_000, True),
        (1, "first_touch", 300_000, True),  # on the lower bound: inside
        (1, "linear", 350_000, True),
        (2, "last_touch", 0, False),
        (2, "first_touch", 160_000, False),
        (2, "linear", 70_000, False),
        (3, "last_touch", 500_000, True),
        (3, "first_touch", 600_000, True),
        (3, "linear", 550_000, True),
    ]
    assert table.get_column("credit_error_cents").to_list() == [
        50_000, -50_000, 0, -100_000, 60_000, -30_000, 0, 100_000, 50_000]
    assert table.get_column("relative_error").to_list() == pytest.approx(
        [1 / 7, 1 / 7, 0.0, 1.0, 0.6, 0.3, 0.0, 0.2, 0.1])
    first = table.row(0, named=True)
    assert (first["channel"], first["start"], first["end"], first["metric"], first["lift_cents"],
            first["lift_lower_cents"], first["lift_upper_cents"], first["segment"]) == (
        "paid_search", date(2025, 3, 1), date(2025, 3, 31), "revenue", 350_000, 300_000,
        420_000, None)


def test_calibrate_scores_and_favours_the_model_closest_to_the_experiments():
    done = calibrated()
    scores = done.calibration.scores
    assert scores.select("rank", "model", "experiments", "inside",
                         "mean_absolute_error_cents").rows() == [
        (1, "linear", 3, 2, 26_667),  # (0 + 30,000 + 50,000) / 3 cents, rounded
        (2, "first_touch", 3, 2, 70_000),
        (3, "last_touch", 3, 2, 50_000),
    ]
    assert scores.get_column("mean_relative_error").to_list() == pytest.approx(
        [(0 + 0.3 + 0.1) / 3, (1 / 7 + 0.6 + 0.2) / 3, (1 / 7 + 1 + 0) / 3])
    assert done.calibration.favoured == "linear"
    assert done.recommended == "incremental"  # recommend_by = "config" (the default)
    by_experiments = calibrated(recommend_by="experiments")
    assert by_experiments.recommended == "linear"


def test_an_experiment_on_a_segment_counts_only_that_segments_deals(tmp_path):
    experiments = tmp_path / "experiments.csv"
    experiments.write_text(
        "channel,start,end,lift,lower,upper,segment\n"
        "paid_search,2025-03-01,2025-05-31,1000,500,1500,smb\n"  # D1 and D3 are smb
        "podcast,2025-03-01,2025-05-31,1000,500,1500,\n")
    done = calibrated(experiments=experiments)
    credit = done.calibration.table.filter(pl.col("experiment") == 1)
    # last: D1 1,000 + D3 600 (D2 is enterprise); first: D3's first touch is podcast
    assert credit.select("model", "model_credit_cents").rows() == [
        ("last_touch", 160_000), ("first_touch", 0), ("linear", 50_000 + 20_000)]


def test_calibrate_only_reads_credit_money_stays_exact():
    done = calibrated()
    summary = done.result.summary
    totals = summary.group_by("model").agg(pl.col("revenue_credit_cents").sum())
    assert set(totals.get_column("revenue_credit_cents").to_list()) == {460_000}


# -- rejected rows -------------------------------------------------------------------------------


def test_bad_experiment_rows_are_rejected_with_their_reason(tmp_path):
    path = tmp_path / "experiments.csv"
    path.write_text(
        "channel,start,end,metric,lift,lower,upper,segment\n"
        "paid_search,2025-03-01,2025-03-31,revenue,100,50,150,\n"  # good
        "paid_search,2025-03-31,2025-03-01,revenue,100,50,150,\n"
        "tiktok,2025-03-01,2025-03-31,revenue,100,50,150,\n"
        "podcast,2025-03-01,2025-03-31,revenue,100,150,50,\n"
        "podcast,March,2025-03-31,revenue,100,50,150,\n"
        "podcast,2025-03-01,2025-03-31,revenue,lots,50,150,\n"
        "podcast,2025-03-01,2025-03-31,bookings,100,50,150,\n"
        "podcast,2025-03-01,2025-03-31,revenue,200,50,150,\n"
        "podcast,2025-03-01,2025-03-31,revenue,100,50,150,mid-market\n"
        "Paid Search,2025-03-01,2025-03-31,pipeline,-20.50,-40,0,\n")  # good: spelling
    found = load_experiments(path, ["paid_search", "podcast"], segments=["smb"])
    assert found.rejects.select("row", "column", "reason", "value").rows() == [
        (2, "end", "end is before start", "2025-03-01"),
        (3, "channel", "unknown channel: not a channel of the run", "tiktok"),
        (4, "lower", "lower is above upper", "150"),
        (5, "start", "unparseable date; expected an ISO date like 2025-03-01", "March"),
        (6, "lift", "lift is not a number; expected a decimal like 12500.00", "lots"),
        (7, "metric", "unknown metric; expected revenue or pipeline", "bookings"),
        (8, "lift", "lift is outside its interval [lower, upper]", "200"),
        (9, "segment", "unknown segment: no deal has this segment", "mid-market"),
    ]
    assert found.rows.select("experiment", "channel", "metric", "lift", "lower",
                             "upper").rows() == [
        (1, "paid_search", "revenue", 10_000, 5_000, 15_000),
        (10, "paid_search", "pipeline", -2_050, -4_000, 0),
    ]
    accounting = found.accounting
    assert (accounting.read, accounting.used, accounting.rejected_total) == (10, 2, 8)
    with pytest.raises(RejectRateError, match=r"8 of 10 experiments rows rejected \(80.0%\)"):
        load_experiments(path, ["paid_search", "podcast"], segments=["smb"], max_reject_rate=0.5)


def test_a_segment_without_a_segment_column_and_a_strict_run(tmp_path):
    path = tmp_path / "experiments.csv"
    long_channel = "x" * 500
    path.write_text("channel,start,end,lift,lower,upper,segment\n"
                    f"{long_channel},2025-03-01,2025-03-31,1,0,2,\n"
                    "podcast,2025-03-01,2025-03-31,1,0,2,smb\n")
    found = load_experiments(path, ["podcast"])
    assert found.rejects.get_column("reason").to_list() == [
        "unknown channel: not a channel of the run",
        "unknown segment: the deals have no segment column (map one with [columns.deals] "
        "segment)",
    ]
    with pytest.raises(RejectedRowError) as caught:
        load_experiments(path, ["podcast"], strict=True)
    message = str(caught.value)
    assert message == (f"{path}: row 1, column 'channel': unknown channel: not a channel of the "
                       f"run (value '{'x' * 200}'... (500 characters))")


def test_calibrate_without_experiments_is_a_config_error():
    config = dataclasses.replace(load_config(TINY / "attribution.toml"), experiments=None)
    with pytest.raises(ConfigError, match="no experiments file"):
        commands.calibrate(config, get_engine("polars"))


# -- the planted truth ---------------------------------------------------------------------------


def test_the_ranking_matches_the_planted_truth():
    """The fixture's experiments were planted in a simulated world with their exact truth
    beside them: the model whose credit is closest to the truth ranks first, and the
    ranking by the noisy measurements follows the ranking by the truth."""
    done = calibrated(PLANTED / "attribution.toml")
    truth = pl.read_csv(PLANTED / "experiments_truth.csv", schema_overrides={
        "truth": pl.Decimal(38, 2)}).with_row_index("experiment", offset=1).select(
        pl.col("experiment").cast(pl.Int64), (pl.col("truth") * 100).cast(pl.Int64))
    true_error = (
        done.calibration.table.join(truth, on="experiment")
        .group_by("model")
        .agg(((pl.col("model_credit_cents") - pl.col("truth")).abs() / pl.col("truth").abs())
             .mean().alias("true_error"))
        .sort("true_error", "model")
    )
    by_truth = true_error.get_column("model").to_list()
    ranked = done.calibration.scores.get_column("model").to_list()
    assert len(ranked) == len(by_truth) >= 8
    assert ranked[0] == by_truth[0]
    assert done.calibration.favoured == by_truth[0]
    # Kendall's tau between the two rankings
    position = {m: i for i, m in enumerate(by_truth)}
    pairs = [(position[a] < position[b]) for i, a in enumerate(ranked) for b in ranked[i + 1:]]
    tau = (2 * sum(pairs) - len(pairs)) / len(pairs)
    assert tau > 0.8


def test_planted_truth_over_one_period_is_the_channels_removal_effect():
    from attribution.simulate import channel_truth, plant_experiments, scenario, simulate

    export = simulate(400, seed=3, world=scenario("brand_drives_search"))
    planted = plant_experiments(export, ["paid_search", "podcast"], periods=1, noise=0.0)
    assert planted.select("channel", "truth").rows() == [
        ("paid_search", channel_truth(export, "paid_search")),
        ("podcast", channel_truth(export, "podcast")),
    ]
    assert planted.get_column("lift").to_list() == planted.get_column("truth").to_list()
    two = plant_experiments(export, ["podcast"], periods=2, noise=0.2, seed=5)
    assert two.get_column("truth").sum() == channel_truth(export, "podcast")
    assert two.select((pl.col("lower") <= pl.col("lift")) & (pl.col("lift") <= pl.col("upper"))
                      ).to_series().all()
    assert two.get_column("start").to_list() == [date(2025, 1, 1), date(2025, 7, 2)]
    assert two.get_column("end").to_list() == [date(2025, 7, 1), date(2025, 12, 31)]
    with pytest.raises(ConfigError, match="not a channel of world"):
        plant_experiments(export, ["tiktok"])


# -- the command line ----------------------------------------------------------------------------


def test_cli_calibrate_table_and_json(tmp_path):
    result = invoke("-q", "calibrate", "--config", str(TINY / "attribution.toml"))
    assert result.exit_code == 0, result.output
    assert "Your experiments favour linear; the recommended model is incremental" in result.output
    result = invoke("-q", "calibrate", "--config", str(TINY / "attribution.toml"),
                    "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert set(document) == {"favoured", "recommended", "recommend_by", "caution", "scores",
                             "experiments"}
    assert (document["favoured"], document["recommended"], document["recommend_by"]) == (
        "linear", "incremental", "config")
    assert document["scores"][0] == {
        "rank": 1, "model": "linear", "experiments": 3, "inside": 2,
        "mean_relative_error": pytest.approx(0.4 / 3),
        "mean_absolute_error": 266.67}  # money: keep name
    # money: keep names from here (the JSON's names: major units)
    assert document["experiments"][0] == {
        "experiment": 1, "channel": "paid_search", "start": "2025-03-01", "end": "2025-03-31",
        "metric": "revenue", "segment": None, "model": "last_touch", "model_credit": 4000.0,
        "lift": 3500.0, "lift_lower": 3000.0, "lift_upper": 4200.0, "inside": True,
        "credit_error": 500.0, "relative_error": pytest.approx(1 / 7)}
    # money: keep names to here


def test_cli_calibrate_recommend_by_experiments_and_bad_rows(tmp_path):
    config = tmp_path / "attribution.toml"
    text = (TINY / "attribution.toml").read_text().replace('"', "'")
    for name in ("touchpoints", "deals", "contacts"):
        text = text.replace(f"'{name}.csv'", repr(str(TINY / f"{name}.csv")))
    bad = tmp_path / "experiments.csv"
    bad.write_text("channel,start,end,lift,lower,upper\n"
                   "paid_search,2025-03-01,2025-03-31,3500,3000,4200\n"
                   "tiktok,2025-03-01,2025-03-31,1,0,2\n")
    text = text.replace("'experiments.csv'", repr(str(bad)))
    config.write_text(text + "recommend_by = 'experiments'\n")
    result = invoke("-q", "calibrate", "--config", str(config), "--format", "json")
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        "1 of 2 experiments rows rejected (50.0%): unknown channel: not a channel of the run "
        "(1); above the maximum reject rate 20% (fix the rows, or raise it with "
        "--max-reject-rate or [inputs] max_reject_rate)")
    result = invoke("-q", "calibrate", "--config", str(config), "--format", "json",
                    "--max-reject-rate", "0.5")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["favoured"], document["recommended"], document["recommend_by"]) == (
        "linear", "linear", "experiments")
    result = invoke("-q", "calibrate", "--config", str(config), "--max-reject-rate", "0.5")
    assert 'Your experiments favour linear (the recommended model: [models] recommend_by = ' \
        '"experiments")' in result.output


def test_config_rejects_an_unknown_recommend_by(tmp_path):
    config = tmp_path / "attribution.toml"
    config.write_text("[models]\nrecommend_by = 'vibes'\n")
    with pytest.raises(ConfigError, match=r"\[models\] recommend_by: 'vibes' is not one of: "
                                          r"config, experiments"):
        load_config(config)


# -- experiments as priors of the incremental model ---------------------------------------------


def _three_deals():
    from datetime import datetime

    from attribution.journeys import Journeys

    closed = [datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 4, 10, tzinfo=UTC),
              datetime(2025, 3, 20, tzinfo=UTC)]
    frame = pl.DataFrame({
        "journey_id": ["a", "b", "c"], "status": ["won", "won", "won"],
        "amount_cents": [1000, 2000, 4000], "revenue_cents": [1000, 2000, 4000],
        "created_at": [datetime(2025, 2, 1, tzinfo=UTC)] * 3, "closed_at": closed,
    })
    return Journeys(touches=pl.LazyFrame(), journeys=frame.lazy())


def test_priors_scale_each_experimented_channel_to_its_measured_lift():
    from attribution.models.priors import ChannelPrior, calibrate_scores

    journeys = _three_deals()
    patterns = pl.DataFrame({"journey_ids": [["a", "b"], ["c"]]})
    channels = ["podcast", "paid_search"]
    scores = np.array([[0.2, 0.1], [0.0, 0.4]])
    expected = np.array([[0.5, 0.5], [1.0, 0.8]])  # fractions [[0.4, 0.2], [0, 0.5]]
    # paid search in March: deals a (pattern 0) and c (pattern 1): the model implies
    # 0.2 * 1,000 + 0.5 * 4,000 = 2,200; measured 1,100: its scores halve. Podcast has no
    # experiment: the tested channels' typical factor (0.5) scales it too.
    march = ChannelPrior("paid_search", "2025-03-01", "2025-03-31", "revenue", 1100)
    calibrated_scores = calibrate_scores(scores, expected, patterns, journeys, channels, [march])
    np.testing.assert_allclose(calibrated_scores, [[0.1, 0.05], [0.0, 0.2]])
    # calibrated once, the implied lift is the measured one: calibrating again changes nothing
    np.testing.assert_allclose(
        calibrate_scores(calibrated_scores, expected, patterns, journeys, channels, [march]),
        calibrated_scores)
    # no priors: the scores as they were; a negative lift: no effect at all; a channel the fit
    # does not know: ignored
    assert calibrate_scores(scores, expected, patterns, journeys, channels, ()) is scores
    harmful = ChannelPrior("podcast", "2025-03-01", "2025-04-30", "revenue", -5)
    np.testing.assert_allclose(
        calibrate_scores(scores, expected, patterns, journeys, channels, [march, harmful]),
        [[0.0, 0.05], [0.0, 0.2]])
    unknown = ChannelPrior("tiktok", "2025-03-01", "2025-04-30", "revenue", 5)
    np.testing.assert_allclose(
        calibrate_scores(scores, expected, patterns, journeys, channels, [unknown]), scores)


def test_incremental_with_priors_changes_credit_and_keeps_money_exact():
    from attribution.models.incremental import IncrementalModel
    from attribution.models.priors import ChannelPrior, priors_of
    from attribution.pipeline import prepare, run_models

    prepared = prepare(load_config(PLANTED / "attribution.toml"))
    experiments = load_experiments(PLANTED / "experiments.csv", ["paid_search", "podcast"])
    priors = priors_of(experiments.rows)
    assert priors[0] == ChannelPrior("paid_search", "2025-01-01", "2025-07-01", "revenue",
                                     9_476_555)
    model = IncrementalModel(priors=priors)
    assert model.params()["priors"] == priors
    assert IncrementalModel(priors=[list(p) for p in priors]) == model  # from TOML lists
    plain_credit, plain = run_models(prepared.journeys, [IncrementalModel()])
    credit, summary = run_models(prepared.journeys, [model])
    assert (summary.get_column("revenue_credit_cents").sum()
            == plain.get_column("revenue_credit_cents").sum())
    amounts = prepared.journeys.journeys.filter(pl.col("status") == "won").select(
        "deal_id", "revenue_cents").collect()
    per_deal = credit.group_by("deal_id").agg(pl.col("revenue_credit_cents").sum()).join(
        amounts, on="deal_id")
    assert per_deal.height == amounts.height
    assert (per_deal.get_column("revenue_credit_cents")
            == per_deal.get_column("revenue_cents")).all()

    def channel(frame: pl.DataFrame, name: str) -> int:
        return frame.filter(pl.col("channel") == name).get_column("revenue_credit_cents").item()

    # the experiments move credit: each channel's credit changes, the total does not
    assert channel(summary, "paid_search") != channel(plain, "paid_search")
    assert channel(summary, "podcast") != channel(plain, "podcast")


# -- the report -----------------------------------------------------------------------------------


def _tiny_config(tmp_path: Path, extra: str = "") -> Path:
    text = (TINY / "attribution.toml").read_text()
    for name in ("touchpoints", "deals", "contacts", "experiments"):
        text = text.replace(f'"{name}.csv"', json.dumps(str(TINY / f"{name}.csv")))
    config = tmp_path / "attribution.toml"
    config.write_text(text + extra)
    return config


def test_report_sets_the_models_beside_the_experiments(tmp_path):
    output = tmp_path / "report.html"
    config = _tiny_config(tmp_path)
    result = invoke("-q", "report", "--config", str(config), "-o", str(output))
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert '<section id="experiments">' in page
    assert "Your experiments favour linear" in page
    assert "led by incremental" not in page  # incremental did not run: the first other model
    # recommend_by = "experiments": the report leads with the favoured model
    led = _tiny_config(tmp_path, "recommend_by = \"experiments\"\n")
    result = invoke("-q", "report", "--config", str(led), "-o", str(output))
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert "led by linear" in page
    assert "Your experiments favour linear ([models] recommend_by" in page
    assert "linear (leads this report)" in page


def test_report_escapes_experiment_values(tmp_path):
    touchpoints = (TINY / "touchpoints.csv").read_text().replace(
        ",podcast,", ",<b>pod</b>,")
    (tmp_path / "touchpoints.csv").write_text(touchpoints)
    experiments = tmp_path / "experiments.csv"
    experiments.write_text("channel,start,end,lift,lower,upper\n"
                           "<b>pod</b>,2025-03-01,2025-05-31,1000,800,1300\n")
    output = tmp_path / "report.html"
    result = invoke("-q", "report", "--touchpoints", str(tmp_path / "touchpoints.csv"),
                    "--deals", str(TINY / "deals.csv"), "--contacts", str(TINY / "contacts.csv"),
                    "--model", "linear", "--experiments", str(experiments), "-o", str(output))
    assert result.exit_code == 0, result.output
    page = output.read_text()
    section = page[page.index('<section id="experiments">'):]
    section = section[:section.index("</section>")]
    assert "&lt;b&gt;pod&lt;/b&gt;" in section and "<b>pod</b>" not in section


# -- the simulator and the evaluation --------------------------------------------------------------


def test_cli_simulate_plants_experiments_calibrate_reads(tmp_path):
    out = tmp_path / "planted"
    result = invoke("-q", "simulate", "--accounts", "300", "--seed", "2", "--scenario",
                    "unobserved_intent", "--experiment", "events", "--experiment",
                    "paid_search", "--experiment-periods", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    planted = pl.read_csv(out / "experiments.csv", infer_schema=False)
    assert planted.columns == ["channel", "start", "end", "metric", "lift", "lower", "upper",
                               "segment"]
    assert planted.get_column("channel").to_list() == ["events"] * 3 + ["paid_search"] * 3
    truth = pl.read_csv(out / "experiments_truth.csv", infer_schema=False)
    assert truth.drop("truth").equals(planted)
    result = invoke("-q", "calibrate", "--touchpoints", str(out / "touchpoints.csv"),
                    "--deals", str(out / "deals.csv"), "--contacts", str(out / "contacts.csv"),
                    "--experiments", str(out / "experiments.csv"), "--model", "linear",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [s["model"] for s in document["scores"]] in (["linear", "last_touch"],
                                                        ["last_touch", "linear"])
    assert len(document["experiments"]) == 12
    bad = invoke("-q", "simulate", "--accounts", "50", "--experiment", "tiktok", "--out",
                 str(tmp_path / "bad"))
    assert bad.exit_code == 2
    assert "cannot plant an experiment on 'tiktok': not a channel of world 'baseline'" in \
        bad.output


def test_evaluate_scores_incremental_with_and_without_planted_experiments():
    from attribution.evaluate import WITH_EXPERIMENTS, evaluate, world_named

    worlds = [world_named("unobserved_intent")]
    with_experiments = evaluate(worlds, n_accounts=1500, models=["last_touch", "incremental"],
                                experiments=True)
    without = evaluate(worlds, n_accounts=1500, models=["last_touch", "incremental"])
    errors = dict(with_experiments.errors.select("model", "mae").rows())
    assert set(errors) == {"last_touch", "incremental", WITH_EXPERIMENTS}
    assert dict(without.errors.select("model", "mae").rows()) == {
        "last_touch": errors["last_touch"], "incremental": errors["incremental"]}
    assert errors[WITH_EXPERIMENTS] != errors["incremental"]
    kinds = with_experiments.errors.get_column("kind").unique().to_list()
    assert kinds == ["confounded"]


def test_intent_raises_the_deals_of_engaged_accounts_and_no_exposure():
    import dataclasses as dc

    from attribution.evaluate import world_named
    from attribution.simulate import _accounts, draw, realise

    world = world_named("unobserved_intent")
    draws = draw(6000, seed=1)
    engagement = _accounts(world, draws).engagement
    calm = realise(dc.replace(world, intent_effect=0.0), draws)
    keen = realise(world, draws)
    assert (calm.exposed == keen.exposed).all()  # intent is no channel: exposures unchanged
    engaged, idle = engagement > 2.0, engagement < 0.5
    assert keen.has_deal[engaged].mean() > calm.has_deal[engaged].mean() + 0.05
    assert keen.has_deal[idle].mean() < calm.has_deal[idle].mean()


def test_run_and_compare_calibrate_incremental_to_the_experiments(tmp_path):
    inputs = ["--touchpoints", str(PLANTED / "touchpoints.csv"),
              "--deals", str(PLANTED / "deals.csv"), "--contacts", str(PLANTED / "contacts.csv"),
              "--model", "incremental"]

    def credit(*extra: str) -> dict[str, float]:
        result = invoke("-q", "compare", *inputs, *extra, "--format", "json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        return {r["channel"]: r["revenue_credit"]  # money: keep name
                for r in rows if r["model"] == "incremental"}

    plain = credit()
    calibrated_credit = credit("--experiments", str(PLANTED / "experiments.csv"))
    assert calibrated_credit["paid_search"] != plain["paid_search"]
    assert sum(calibrated_credit.values()) == pytest.approx(sum(plain.values()), abs=0.001)
    out = tmp_path / "out"
    result = invoke("-q", "run", *inputs, "--experiments", str(PLANTED / "experiments.csv"),
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    experiments = next(a for a in record["accounting"] if a["input"] == "experiments")
    assert (experiments["read"], experiments["used"]) == (4, 4)
    priors = record["models"][0]["params"]["priors"]
    assert priors[0] == ["paid_search", "2025-01-01", "2025-07-01", "revenue", 9_476_555]
    bad = tmp_path / "experiments.csv"
    bad.write_text("channel,start,end,lift,lower,upper\npodcast,2025-03-31,2025-03-01,1,0,2\n")
    result = invoke("-q", "compare", *inputs, "--experiments", str(bad))
    assert result.exit_code == 2
    assert "1 of 1 experiments rows rejected (100.0%): end is before start (1)" in result.output


def test_scorecard_and_budget_follow_the_experiments_when_told_to(tmp_path):
    config = tmp_path / "attribution.toml"
    text = (TINY / "attribution.toml").read_text().replace('"', "'")
    for name in ("touchpoints", "deals", "contacts", "experiments"):
        text = text.replace(f"'{name}.csv'", repr(str(TINY / f"{name}.csv")))
    config.write_text(text + "recommend_by = 'experiments'\n")
    favoured = json.loads(invoke("-q", "calibrate", "--config", str(config), "--format",
                                 "json").output)["favoured"]
    assert favoured != "incremental"  # the configured recommendation, which they overrule
    shown = invoke("-q", "scorecard", "--config", str(config), "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert {row["model"] for row in json.loads(shown.output)} == {favoured}
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,period_start,period_end,amount,currency\n"
                     "podcast,2025-01-01,2025-03-31,3000.00,USD\n"
                     "paid_search,2025-01-01,2025-03-31,3000.00,USD\n")
    shown = invoke("-q", "budget", "--config", str(config), "--spend", str(spend),
                   "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert {row["model"] for row in json.loads(shown.output)} == {favoured}
    config.write_text(text)  # recommend_by = "config": the configured model
    shown = invoke("-q", "scorecard", "--config", str(config), "--format", "json")
    assert {row["model"] for row in json.loads(shown.output)} == {"incremental"}


def test_a_bootstrap_refits_a_calibrated_incremental_on_copies_not_under_weights():
    # the priors read each pattern's journeys, which a weighted fit does not have
    from attribution.errors import ModelError
    from attribution.intervals import with_intervals
    from attribution.models.incremental import IncrementalModel
    from attribution.models.priors import priors_of
    from attribution.pipeline import prepare, run

    experiments = load_experiments(PLANTED / "experiments.csv", ["paid_search", "podcast"])
    model = IncrementalModel(priors=priors_of(experiments.rows))
    assert IncrementalModel().reweights() and not model.reweights()
    with pytest.raises(ModelError, match="refitted on copied journeys, not under weights"):
        model.weighted(prepare(load_config(PLANTED / "attribution.toml")).journeys)
    config = load_config(PLANTED / "attribution.toml").replace(
        models=("incremental",), experiments=PLANTED / "experiments.csv", bootstrap=4)
    result = with_intervals(run(commands.with_priors(config)))
    low, credit, high = (result.summary.get_column(c).sum() for c in (
        "revenue_credit_low_cents", "revenue_credit_cents", "revenue_credit_high_cents"))
    assert low <= credit <= high


def test_a_verdict_on_few_experiments_says_it_is_weak(tmp_path):
    experiments = tmp_path / "experiments.csv"
    experiments.write_text("channel,start,end,lift,lower,upper\n"
                           "paid_search,2025-03-01,2025-03-31,3500,3000,4200\n")
    result = invoke("-q", "calibrate", "--config", str(TINY / "attribution.toml"),
                    "--experiments", str(experiments), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["caution"] == (
        "based on 1 experiment: a weak signal; run at least 3 before acting on it")
    shown = invoke("-q", "calibrate", "--config", str(TINY / "attribution.toml"),
                   "--experiments", str(experiments))
    assert "(based on 1 experiment: a weak signal; run at least 3 before acting on it)" \
        in shown.output
    # three experiments, and the favourite clear of the runner-up: no caution
    result = invoke("-q", "calibrate", "--config", str(TINY / "attribution.toml"),
                    "--format", "json")
    document = json.loads(result.output)
    errors = [s["mean_relative_error"] for s in document["scores"]]
    assert document["caution"] is None and errors[1] - errors[0] >= 0.02


def test_experiments_read_before_the_deals_named_a_currency_of_other_decimals(tmp_path):
    """Without --currency the lifts are read in USD's cents before the deals say the run is in
    KWD (3 decimals): the priors would be 10x off, so the run stops and names the fix; with
    --currency KWD it runs."""
    import shutil

    folder = tmp_path / "tiny"
    shutil.copytree(TINY, folder)
    deals = folder / "deals.csv"
    deals.write_text(deals.read_text().replace(",USD,", ",KWD,"))
    config = str(folder / "attribution.toml")
    stopped = CliRunner().invoke(cli, ["run", "--config", config, "--model", "incremental",
                                       "--out", str(tmp_path / "out")])
    assert stopped.exit_code == 2
    assert stopped.output.strip().splitlines()[-1] == (
        f"Error: {folder / 'experiments.csv'}: the experiments' lifts were read in USD "
        "(2 decimals) before the deals showed the run is in KWD (3 decimals): give "
        "--currency KWD")
    assert not (tmp_path / "out").exists()
    done = CliRunner().invoke(cli, ["-q", "run", "--config", config, "--model", "incremental",
                                    "--currency", "KWD", "--out", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
