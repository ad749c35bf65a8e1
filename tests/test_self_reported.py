"""Self-reported source: answer rules, stated channels, the self_reported and blended models,
the dark funnel, and hostile answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.channels import AnswerRule, answer_text, load_rules, parse_rules
from attribution.config import Config, load_config
from attribution.credit import allocate
from attribution.errors import ChannelRulesError, ConfigError, ModelError
from attribution.models import get_model
from attribution.pipeline import resolve_models, run
from attribution.self_reported import read_answers, stated_channels
from tests.factories import at, journeys_of, with_answers
from tests.reference import largest_remainder, reference_credit

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures" / "dark_funnel"


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    import os

    # a wide terminal: notes are not wrapped in the middle of what a test looks for
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "1000"})


# -- answer rules ---------------------------------------------------------------------------
def _channels(rules, answers):
    return rules.answer_channel(pl.Series(answers, dtype=pl.String)).to_list()


def test_default_rules_map_keywords_globs_and_alternatives_case_insensitively():
    rules = load_rules()
    assert _channels(rules, [
        "Heard it on a PODCAST!", "a friend", "My colleague told me", "ChatGPT",
        "asked Claude", "Perplexity", "an AI tool", "heard on the radio", "Heard on LinkedIn",
        "G2", "Google", "email", "Other", None, "   ",
    ]) == [
        "podcast", "word_of_mouth", "word_of_mouth", "ai_assistant", "ai_assistant",
        "ai_assistant", "ai_assistant", "podcast", "organic_social", "review_sites",
        "organic_search", None, None, None, None,
    ]


def test_a_keyword_is_a_whole_word_and_the_first_rule_wins():
    rules = parse_rules('[self_reported]\n"ai" = "ai_assistant"\n"email|mail" = "email"\n'
                        '"heard on *" = "podcast"\n"*" = "other"\n')
    assert _channels(rules, ["AI", "said", "email", "e-mail", "heard on", "heard on x",
                             "anything"]) == [
        "ai_assistant", "other", "email", "email", "other", "podcast", "other"]
    # file order decides between two matching rules
    first = parse_rules('[self_reported]\n"podcast" = "podcast"\n"ai" = "ai_assistant"\n')
    assert _channels(first, ["an AI podcast"]) == ["podcast"]


def _reference_channel(rules: tuple[AnswerRule, ...], answer: str | None) -> str | None:
    """Rule by rule, pattern by pattern: a glob is a regular expression over the whole
    normalised answer, a keyword a whole-word search (the slow obvious matcher)."""
    if answer is None or not answer_text(answer):
        return None
    text = answer_text(answer)
    for rule in rules:
        for raw in rule.patterns:
            pieces = re.split(r"([*?])", raw)
            pattern = re.sub(" +", " ", "".join(
                p if p in "*?" and p else re.sub(r"[^\w]+", " ", p.casefold())
                for p in pieces)).strip()
            if not pattern:
                continue
            if "*" in pattern or "?" in pattern:
                regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                for c in pattern)
                if re.fullmatch(regex, text, re.DOTALL):
                    return rule.channel
            elif re.search(rf"(?:^| ){re.escape(pattern)}(?: |$)", text):
                return rule.channel
    return None


words = st.sampled_from(["podcast", "friend", "ai", "heard", "on", "the", "Radio", "g2",
                         "e-mail", "email", "!!", "x", "  "])


@settings(max_examples=200, deadline=None)
@given(answers=st.lists(st.lists(words, max_size=6).map(" ".join), min_size=1, max_size=20))
def test_the_compiled_matcher_agrees_with_the_reference(answers):
    rules = load_rules()
    assert _channels(rules, answers) == [_reference_channel(rules.answers, a) for a in answers]


def test_answer_rules_are_checked_and_bounded():
    with pytest.raises(ChannelRulesError, match=r"\[self_reported\] must map"):
        parse_rules('[self_reported]\n"podcast" = 3\n')
    with pytest.raises(ChannelRulesError, match="has no pattern"):
        parse_rules('[self_reported]\n"|" = "podcast"\n')
    with pytest.raises(ChannelRulesError, match="at most 256"):
        parse_rules(f'[self_reported]\n"{"a" * 300}" = "podcast"\n')


def test_long_hostile_answers_match_in_bounded_time():
    # globs with many stars against a long answer: linear per glob, no backtracking
    rules = parse_rules('[self_reported]\n"*a*a*a*a*a*b" = "x"\n"a a a a a c" = "y"\n')
    answer = "a " * 50_000
    assert _channels(rules, [answer, answer + "c"]) == [None, "y"]


# -- stated channels -------------------------------------------------------------------------
def test_the_earliest_answer_of_the_buying_group_before_the_deal_ends_is_its_stated_channel():
    contacts = pl.DataFrame({
        "contact_id": ["c1", "c2", "c3", "c4"], "account_id": ["A", "A", "B", "B"],
        "lead_created_at": [at("2025-01-05"), at("2025-01-02"), at("2025-03-01"), None],
        "self_reported": ["podcast", "a friend", "chatgpt", "Other"],
    })
    deals = pl.DataFrame({
        "deal_id": ["D1", "D2", "D3"], "account_id": ["A", "B", "C"],
        "created_at": [at("2025-01-10"), at("2025-01-10"), at("2025-01-10")],
        "self_reported": [None, None, "saw you at a conference"],
    })
    answers = read_answers(contacts, deals, load_rules())
    assert answers is not None
    assert (answers.rows, answers.blank, answers.mapped) == (7, 2, 4)
    assert answers.unmatched.rows() == [("Other", 1)]
    journeys = pl.DataFrame({
        "journey_id": ["D1", "D2", "D3"], "account_id": ["A", "B", "C"],
        "status": ["won", "won", "open"],
        "end_at": [at("2025-02-01"), at("2025-02-01"), at("2025-02-01")],
    })
    # D1: c2 answered first; D2: c3 answered after the deal closed, c4's answer is unmatched;
    # D3: the deal's own answer
    assert stated_channels(journeys, answers).sort("journey_id").rows() == [
        ("D1", "word_of_mouth", "demand_creation"), ("D3", "events", "demand_creation")]


# -- the models ------------------------------------------------------------------------------
def _fixture_run(*models: str, **changes) -> object:
    config = load_config(FIXTURE / "attribution.toml").replace(models=models, **changes)
    return run(config)


def _revenue(summary: pl.DataFrame, model: str) -> dict[str, int]:
    rows = summary.filter((pl.col("model") == model) & (pl.col("revenue_credit_cents") != 0))
    return dict(rows.select("channel", "revenue_credit_cents").iter_rows())


def test_hand_worked_fixture_self_reported_and_blended():
    # deals (won unless said): 70001 $10,000.00 podcast (contact 501's answer, the earliest of
    # account 9001; its touches end with Paid Search), 70002 $7,000.01 word_of_mouth (touches
    # end with Direct Traffic), 70003 $5,000.00 an unmatched answer (last touch Paid Search),
    # 70004 lost (blank answer), 70005 $3,333.33 ai_assistant with no touch at all, 70006 open
    # ("Other"). Unanswered deals are credited by last_touch, the fixture's recommended model.
    result = _fixture_run("self_reported", "blended")
    summary = result.summary
    assert _revenue(summary, "self_reported") == {
        "podcast": 1_000_000, "word_of_mouth": 700_001, "ai_assistant": 333_333,
        "Paid Search": 500_000}
    # blended, 0.5: 70002's odd cent goes to the touch row (touch rows before the stated row);
    # 70005's to (no touch) ("(no touch)" sorts before "ai_assistant")
    assert _revenue(summary, "blended") == {
        "Paid Search": 1_000_000, "podcast": 500_000, "Direct Traffic": 350_001,
        "word_of_mouth": 350_000, "(no touch)": 166_667, "ai_assistant": 166_666}
    for model in ("self_reported", "blended"):
        rows = summary.filter(pl.col("model") == model)
        assert rows["revenue_credit_cents"].sum() == 2_533_334
        assert rows["pipeline_credit_cents"].sum() == 3_033_334
    dark = result.dark_funnel
    assert dark is not None
    by_channel = {r["channel"]: r for r in dark.iter_rows(named=True)}
    assert by_channel["podcast"]["tracked_revenue_credit_cents"] == 0
    assert by_channel["podcast"]["self_reported_revenue_credit_cents"] == 1_000_000
    assert (by_channel["podcast"]["stated_deals"], by_channel["podcast"]["dark_deals"],
            by_channel["podcast"]["dark_revenue_cents"]) == (1, 1, 1_000_000)
    assert by_channel["Paid Search"]["tracked_revenue_credit_cents"] == 1_500_000
    assert by_channel["(no touch)"]["tracked_revenue_credit_cents"] == 333_333
    assert dark.row(0, named=True)["channel"] == "podcast"  # most dark revenue first


def test_the_dark_funnel_keeps_what_buyers_said_apart_from_the_fallback_credit():
    # a new user's trial read the self-reported column as what buyers said, but it holds the
    # fallback's credit for the deals without a mapped answer too: 70003's $5,000.00 (an answer
    # no rule maps) is Paid Search's there, by last_touch. The stated columns hold the answered
    # deals alone: 70001 podcast $10,000.00, 70002 word_of_mouth $7,000.01, 70005 ai_assistant
    # $3,333.33, of $25,333.34 won revenue in all
    dark = _fixture_run("self_reported").dark_funnel
    assert dark is not None
    rows = {r["channel"]: r for r in dark.iter_rows(named=True)}
    stated = {c: r["stated_revenue_credit_cents"] for c, r in rows.items()
              if r["stated_revenue_credit_cents"]}
    assert stated == {"podcast": 1_000_000, "word_of_mouth": 700_001, "ai_assistant": 333_333}
    assert (rows["Paid Search"]["stated_revenue_credit_cents"],
            rows["Paid Search"]["self_reported_revenue_credit_cents"]) == (0, 500_000)
    assert rows["podcast"]["stated_revenue_share"] == 1_000_000 / 2_533_334
    assert rows["Paid Search"]["stated_revenue_share"] == 0.0
    # the fallback's part is self_reported - stated: the unanswered deals' revenue, nothing else
    fallback = sum(r["self_reported_revenue_credit_cents"] - r["stated_revenue_credit_cents"]
                   for r in rows.values())
    assert fallback == 500_000
    # compare --format json: the existing fields as they were, the stated ones beside them
    done = _cli("-q", "compare", "--config", str(FIXTURE / "attribution.toml"), "--model",
                "self_reported", "--format", "json")
    assert done.returncode == 0, done.stderr
    search = next(r for r in json.loads(done.stdout)
                  if r["model"] == "self_reported" and r["channel"] == "Paid Search")
    # money: keep names from here (the JSON's names, major units)
    assert (search["self_reported_revenue_credit"], search["stated_revenue_credit"],
            search["stated_revenue_share"]) == (5000.0, 0.0, 0.0)
    # money: keep names to here
    # the terminal and the report name the blended column for what it is
    from rich.console import Console

    from attribution import render
    from attribution.report.html import _dark_funnel_table

    console = Console(width=240, record=True, color_system=None)
    console.print(render.dark_funnel_table(dark, "USD", "last_touch"))
    header = next(line for line in console.export_text().splitlines() if "channel" in line)
    assert [cell.strip() for cell in header.strip().strip("┃").split("┃")] == [
        "channel", "tracked", "tracked %", "stated", "stated %", "stated + fallback",
        "stated + fallback %", "stated deals", "dark deals", "dark %", "dark revenue"]
    html = _dark_funnel_table(dark, "USD")
    assert ">stated + fallback</th>" in html and ">stated</th>" in html
    assert "the unanswered deals credited as tracked" in html


def test_blend_weight_from_param_and_the_issue_spelling():
    config = load_config(FIXTURE / "attribution.toml")
    one = config.replace(models=("blended",), model_params={"blend": {"self_reported": 1.0}})
    assert resolve_models(one)[0].params()["self_reported"] == 1.0
    result = run(one)
    assert _revenue(result.summary, "blended") == _revenue(
        _fixture_run("self_reported").summary, "self_reported")
    with pytest.raises(ConfigError, match="weight from 0 to 1"):
        resolve_models(config.replace(models=("blended",),
                                      model_params={"blended": {"self_reported": 1.5}}))
    with pytest.raises(ConfigError, match="itself a self-reported model"):
        get_model("self_reported", fallback="blended")


def test_models_need_answers_and_are_in_the_default_list_only_with_them():
    plain = journeys_of([("A", "x", "podcast", "2025-01-01")],
                        [("D1", "A", "2025-01-03", "2025-01-20", "won", 100)])
    with pytest.raises(ModelError, match="needs self-reported answers"):
        get_model("self_reported").check(plain)
    names = [m.name for m in resolve_models(Config(), plain)]
    assert "self_reported" not in names and "blended" not in names
    names = [m.name for m in resolve_models(Config(), with_answers(plain))]
    assert "self_reported" in names and "blended" in names


touch_rows = st.lists(st.tuples(st.sampled_from("ABCD"), st.sampled_from(["podcast", "direct",
                                                                            "paid_search"]),
                                st.integers(0, 60)), min_size=1, max_size=20)
deal_rows = st.lists(st.tuples(st.sampled_from("ABCE"), st.integers(10, 80),
                               st.sampled_from(["won", "lost", "open"]),
                               st.integers(0, 5_000_000)), min_size=1, max_size=6)
cycles = st.lists(st.sampled_from([None, "word_of_mouth", "podcast", "direct"]), min_size=1,
                  max_size=4).map(tuple)


def _hypothesis_journeys(touches, deals, cycle):
    from datetime import timedelta

    start = at("2025-01-01")
    journeys = journeys_of(
        [(a, f"{a}-p", ch, (start + timedelta(days=d)).isoformat()[:19]) for a, ch, d in touches],
        [(f"D{i}", a, (start + timedelta(days=day)).isoformat()[:19],
          (start + timedelta(days=day + 5)).isoformat()[:19] if s != "open" else None, s, amount)
         for i, (a, day, s, amount) in enumerate(deals)],
        lookback_days=40,
    )
    return with_answers(journeys, cycle)


def _reference_model_credit(journeys, model: str, share: float) -> dict[tuple[str, str], int]:
    """Deal by deal, with last_touch as the fallback: the stated channel's rows and last
    touch's row weighted as the model says, split by largest remainder in credit order
    (touch rows first, then channel-level rows by channel)."""
    stated = dict(journeys.stated.select("journey_id", "channel").iter_rows())
    last = {}
    for t in journeys.touches.collect().sort("touch_index").iter_rows(named=True):
        last[t["journey_id"]] = (t["touch_index"], t["channel"])
    out: dict[tuple[str, str], int] = {}
    for j in journeys.journeys.collect().iter_rows(named=True):
        if j["status"] == "none":
            continue
        jid = j["journey_id"]
        tracked = last.get(jid)
        if jid not in stated:
            rows = [(tracked[1] if tracked else "(no touch)", 1.0)]
        else:
            w = 1.0 if model == "self_reported" else share
            touch = [(tracked[1], 1.0 - w)] if tracked else []
            channel_level = sorted([(stated[jid], w)] + ([] if tracked else [("(no touch)",
                                                                              1.0 - w)]))
            rows = [r for r in touch + channel_level if r[1] > 0]
        for (channel, _), cents in zip(rows, largest_remainder([w for _, w in rows],
                                                               j["revenue_cents"]), strict=True):
            out[(jid, channel)] = out.get((jid, channel), 0) + cents
    return {k: v for k, v in out.items() if v}


@pytest.mark.parametrize("name", ["self_reported", "blended"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(touches=touch_rows, deals=deal_rows, cycle=cycles,
       share=st.sampled_from([0.0, 0.25, 0.5, 1 / 3, 1.0]))
def test_models_match_the_reference_conserve_cents_and_are_deterministic(
        name, touches, deals, cycle, share):
    journeys = _hypothesis_journeys(touches, deals, cycle)
    params = {"fallback": "last_touch"} | ({"self_reported": share} if name == "blended" else {})
    model = get_model(name, **params)
    weights = model.weights(journeys).collect()
    credit = allocate(journeys, weights.lazy(), name).collect()
    again = allocate(journeys, get_model(name, **params).weights(journeys), name).collect()
    assert credit.equals(again)
    assert credit.equals(reference_credit(journeys, weights, name))
    per_deal = credit.group_by("journey_id").agg(pl.col("revenue_credit_cents").sum(),
                                                 pl.col("pipeline_credit_cents").sum())
    money = journeys.money.select("journey_id", "revenue_cents", "amount_cents")
    checked = per_deal.join(money, on="journey_id")
    assert checked.height == money.height
    assert (checked["revenue_credit_cents"] == checked["revenue_cents"]).all()
    assert (checked["pipeline_credit_cents"] == checked["amount_cents"]).all()
    # the model's split, deal by deal: the cents of allocate's own rules are checked above
    # (reference_credit); a run whose every deal has the same channel-level weights (answered
    # deals without touches, one stated channel) is split channel totals first, so a channel
    # may be a cent off the deal-by-deal split there
    got = {(j, c): v for j, c, v in credit.group_by("journey_id", "channel")
           .agg(pl.col("revenue_credit_cents").sum()).iter_rows() if v}
    expected = _reference_model_credit(journeys, name, share)
    for key in set(got) | set(expected):
        assert abs(got.get(key, 0) - expected.get(key, 0)) <= 1, key


# -- the command line ------------------------------------------------------------------------
def test_cli_compare_self_reported_and_blended_end_to_end():
    done = _cli("compare", "--config", str(FIXTURE / "attribution.toml"),
                "--model", "self_reported", "--model", "blended")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Dark funnel: tracked credit (last_touch) vs self-reported" in out
    for channel in ("podcast", "word_of_mouth", "ai_assistant"):
        assert channel in out
    assert "largest dark channel: podcast: $10,000.00" in out
    assert "'<b>not sure</b>' (1), 'Other' (1)" in done.stderr
    assert "3 of 6 deals (50%) have a stated channel" in done.stderr
    rows = json.loads(_cli("compare", "--config", str(FIXTURE / "attribution.toml"), "-q",
                           "--model", "self_reported", "--model", "blended", "--format",
                           "json").stdout)
    totals: dict[str, float] = {}
    for row in rows:
        credited = row["revenue_credit"]  # money: keep name (the JSON's, in major units)
        totals[row["model"]] = round(totals.get(row["model"], 0) + credited, 2)
    assert totals == {"last_touch": 25_333.34, "self_reported": 25_333.34,
                      "blended": 25_333.34}
    podcast = next(r for r in rows if r["model"] == "blended" and r["channel"] == "podcast")
    assert (podcast["revenue_credit"], podcast["dark_deals"],  # money: keep names
            podcast["dark_revenue"]) == (  # money: keep name
        5000.0, 1, 10000.0)


def test_cli_run_writes_the_dark_funnel_file(tmp_path):
    out = tmp_path / "out"
    done = _cli("-q", "run", "--config", str(FIXTURE / "attribution.toml"), "--out", str(out),
                "--out-format", "csv", "--model", "self_reported")
    assert done.returncode == 0, done.stderr
    dark = pl.read_csv(out / "dark_funnel.csv")
    assert dark.row(0, named=True)["channel"] == "podcast"
    word_of_mouth = dark.filter(pl.col("channel") == "word_of_mouth")
    assert word_of_mouth["dark_revenue"].item() == 7000.01  # money: keep name
    record = json.loads((out / "run.json").read_text("utf-8"))
    assert record["self_reported"] == {"deals": 6, "deals_answered": 3, "answered_share": 0.5}


def test_cli_refuses_self_reported_without_answers():
    done = _cli("compare", "--config", str(ROOT / "fixtures" / "hubspot" / "attribution.toml"),
                "--model", "self_reported")
    assert done.returncode == 2
    assert "needs self-reported answers" in done.stderr


def test_hostile_answers_are_data_escaped_and_cut_to_200_characters(tmp_path):
    for name in ("touchpoints.csv", "deals.csv", "attribution.toml"):
        (tmp_path / name).write_bytes((FIXTURE / name).read_bytes())
    long = "<script>alert(1)</script>" + "x" * 10_000
    contacts = pl.read_csv(FIXTURE / "contacts.csv", infer_schema=False)
    hostile = ["[bold red]Hi[/]", "\x1b[31mRED\x1b[0m =HYPERLINK(1)", long, "a friend",
               "<b>not sure</b>", "", "ChatGPT"]
    contacts = contacts.with_columns(pl.Series("How did you hear about us?", hostile))
    contacts.write_csv(tmp_path / "contacts.csv")
    done = _cli("compare", "--config", str(tmp_path / "attribution.toml"),
                "--model", "self_reported", "--model", "blended")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "[bold red]Hi[/]" in done.stderr  # shown as text, not as markup
    assert "\\x1b[31mRED" in done.stderr
    assert "(10,025 characters)" in done.stderr
    assert "x" * 201 not in done.stderr
    report = tmp_path / "report.html"
    done = _cli("-q", "report", "--config", str(tmp_path / "attribution.toml"), "-o",
                str(report), "--model", "self_reported", "--model", "last_touch")
    assert done.returncode == 0, done.stderr
    assert "<script>alert" not in report.read_text("utf-8")


def test_stated_deals_are_the_self_reported_models_evidence():
    from attribution.intervals import sufficiency

    result = _fixture_run("self_reported", "linear")
    marked = sufficiency(result.summary, result.journeys, 1)

    def row(model: str, channel: str) -> dict:
        return marked.filter((pl.col("model") == model)
                             & (pl.col("channel") == channel)).row(0, named=True)

    # podcast has no touch: one won deal names it, which is self_reported's evidence
    assert (row("self_reported", "podcast")["won_deals_touched"],
            row("self_reported", "podcast")["sufficient"]) == (1, True)
    # touches count for every model; a touch model's evidence is touches alone
    assert row("self_reported", "Paid Search")["won_deals_touched"] == 3
    assert row("linear", "Paid Search")["won_deals_touched"] == 3
    assert row("linear", "Email Marketing")["won_deals_touched"] == 0


def test_a_rules_file_without_the_section_reads_answers_by_the_built_in_entries():
    utm_only = parse_rules('[[rule]]\nchannel = "podcast"\nmedium = "podcast"\n')
    assert utm_only.answers == load_rules().answers
    assert _channels(utm_only, ["a friend"]) == ["word_of_mouth"]
    none = parse_rules('[self_reported]\n[[rule]]\nchannel = "podcast"\nmedium = "podcast"\n')
    assert none.answers == () and _channels(none, ["a friend"]) == [None]


def test_the_report_headline_names_the_largest_dark_channel_only_when_the_data_supports_it():
    from attribution.report.html import build_report

    text = build_report(_fixture_run("last_touch", "self_reported"))
    assert "Largest dark channel: <strong>podcast</strong>: $10,000.00" in text
    assert 'id="dark-funnel"' in text
    few = build_report(_fixture_run("last_touch", "self_reported", min_deals=2))
    assert "Largest dark channel" not in few
    assert "no channel has 2 won deals stating it (min_deals)" in few
