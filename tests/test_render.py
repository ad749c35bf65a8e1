"""Terminal rendering: user data is data. Every table cell and note built from input values
shows them as text (no rich markup, no emoji codes) with control characters escaped, on a
fixed-width console."""

from __future__ import annotations

import io

import polars as pl
import pytest
from rich.console import Console

from attribution import render

HOSTILE = ["[/]", "[link=https://e.x]paid_search[/link]", "a\x1b]8;;http://e\x07b\nc",
           ":thumbs_up:", "\u202eevil"]


def shown(renderable) -> list[str]:
    console = Console(file=io.StringIO(), width=160, color_system=None)  # emoji codes on
    console.print(renderable)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("a\x1bb", "a\\x1bb"),
        ("line\nnext\r\ttab", "line\\nnext\\r\\ttab"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
        ("\u2028\u202e\u2066", "\\u2028\\u202e\\u2066"),
        ("é日本", "é日本"),
        (None, ""),
        (12, "12"),
    ],
)
def test_printable(value, text):
    assert render.printable(value) == text


def test_escape_text_escapes_markup_after_control_characters():
    assert render.escape_text("[/]") == "\\[/]"
    assert render.escape_text("[link=x]y[/link]\n") == "\\[link=x]y\\[/link]\\n"
    # rich reads it back as the text itself
    assert shown(render.escape_text("[bold]x[/bold] [/]")) == ["[bold]x[/bold] [/]"]


def test_summary_table_shows_names_and_currency_as_text():
    summary = pl.DataFrame({
        "model": ["linear"] * 5, "channel": HOSTILE,
        "channel_group": ["demand_creation", "[b]g[/b]", "other", "x", "y"],
        "deals_touched": [1, 2, 3, 4, 5], "pipeline_credit_cents": [100, 200, 300, 400, 500],
        "revenue_credit_cents": [50, 60, 70, 80, 90], "revenue_share": [0.1, 0.2, 0.3, 0.2, 0.2],
    })
    lines = shown(render.summary_table(summary, "[/]", "linear"))
    assert lines[4:9] == [
        "│ [/]                                  │ demand_creation │             1 │"
        "        1.00 [/] │       0.50 [/] │         10.0% │",
        "│ [link=https://e.x]paid_search[/link] │ [b]g[/b]        │             2 │"
        "        2.00 [/] │       0.60 [/] │         20.0% │",
        "│ a\\x1b]8;;http://e\\x07b\\nc            │ other           │             3 │"
        "        3.00 [/] │       0.70 [/] │         30.0% │",
        "│ :thumbs_up:                          │ x               │             4 │"
        "        4.00 [/] │       0.80 [/] │         20.0% │",
        "│ \\u202eevil                           │ y               │             5 │"
        "        5.00 [/] │       0.90 [/] │         20.0% │",
    ]


def test_frame_table_credit_matrix_and_comparison_show_names_as_text():
    frame = pl.DataFrame({"channel": HOSTILE, "spend_cents": [100, 200, 300, 400, 500]})
    lines = shown(render.frame_table(frame, title="[/] t", money_columns=["spend_cents"]))
    assert lines[0] == "[/] t"
    assert [line.split("│")[1].strip() for line in lines[4:9]] == [
        "[/]", "[link=https://e.x]paid_search[/link]", "a\\x1b]8;;http://e\\x07b\\nc",
        ":thumbs_up:", "\\u202eevil",
    ]
    summary = pl.DataFrame({
        "model": ["last_touch"] * 5 + ["linear"] * 5, "channel": HOSTILE * 2,
        "channel_group": ["other"] * 10, "deals_touched": [1] * 10,
        "pipeline_credit_cents": [100] * 10, "revenue_credit_cents": [100, 0, 0, 0, 0, 20, 20, 20,
                                                                      20, 20],
    })
    matrix = shown(render.credit_matrix(summary, "USD"))
    assert sorted(line.split("│")[1].strip() for line in matrix[4:9]) == sorted(
        render.printable(name) for name in HOSTILE)
    comparison = summary.with_columns(
        pl.lit(0.2).alias("revenue_share"), pl.lit(0.0).alias("share_shift"),
        pl.lit(100).alias("last_touch_revenue_credit_cents"))
    rows = shown(render.comparison_table(comparison, "USD"))
    assert sorted(line.split("│")[1].strip() for line in rows[5:10]) == sorted(
        render.printable(name) for name in HOSTILE)


def test_reject_reasons_table_shows_reasons_as_text():
    accounting = render.Accounting("touchpoints", "[/]t.csv", read=2, used=1,
                                   rejected={"bad [/] value\n": 1})
    lines = shown(render.reject_reasons_table([accounting]))
    assert lines[4] == "│ touchpoints │ bad [/] value\\n │    1 │"


def test_long_values_are_cut_with_their_length():
    assert render.printable("ab\ncd", limit=3) == "ab\\n... (5 characters)"
    assert (render.escape_text("[/]" * 100, render.QUOTE_LIMIT)
            == "\\[/]" * 66 + "[/... (300 characters)")
    assert render.escape_text("x" * 300) == "x" * 300
    assert "".join(shown(render.cell("y" * 5000))) == "y" * 200 + "... (5,000 characters)"


def test_a_multi_line_note_keeps_its_lines_and_escapes_each():
    from attribution import render
    from attribution.pipeline import RunResult

    note = 'unknown status values:\n[statuses]\nopen = ["Demo [b]Completed\x1b"]'
    result = RunResult(config=None, journeys=None, models=[], credit=None, summary=None,
                       notes=[note])
    shown = [n for n in render.run_notes(result) if "statuses" in n]
    assert shown == ['[yellow]unknown status values:\n\\[statuses]\n'
                     'open = ["Demo \\[b]Completed\\x1b"][/yellow]']
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(shown[0])
    assert console.export_text().splitlines() == [
        "unknown status values:", "[statuses]", 'open = ["Demo [b]Completed\\x1b"]']


def test_an_id_column_is_shown_whole_in_a_narrow_terminal():
    # `history`'s run_id is copied from the terminal: other columns give way, not the id
    run_id = "20261204T221752123456-3f2a9c1b"
    frame = pl.DataFrame({"run_id": [run_id], "model": ["incremental"],
                          "source": ["a long description of where the run read its inputs " * 2]})
    console = Console(file=io.StringIO(), width=60, color_system=None)
    console.print(render.frame_table(frame))
    assert run_id in console.file.getvalue()
    # a hostile id is bounded: the table still fits
    frame = frame.with_columns(pl.lit("x" * 500).alias("run_id"))
    console = Console(file=io.StringIO(), width=60, color_system=None)
    console.print(render.frame_table(frame))
    assert max(len(line) for line in console.file.getvalue().splitlines()) <= 60


def test_rejects_written_by_the_engine_are_counted_in_the_notes():
    """Spark's executors write the rejected rows; the run holds their number only."""
    from attribution.pipeline import RunResult
    from attribution.schema import REJECT_SCHEMA

    result = RunResult(config=None, journeys=None, models=[], credit=None, summary=None,
                       rejects=pl.DataFrame(schema=REJECT_SCHEMA), rejects_elsewhere=1234)
    assert render.run_notes(result, "out/rejects.csv")[-1] == (
        "1,234 rejected rows written to out/rejects.csv")
    assert render.run_notes(result)[-1].startswith("1,234 rejected rows (reasons above)")
