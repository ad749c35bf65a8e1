"""Terminal rendering: result frames -> rich tables (the CLI prints them).

Money is shown in major units with the currency (``$48,250.00``), shares as percentages, shifts
with a sign. Nothing here computes a figure: it only formats what the library returned.

User data is data. Every value that came from an input (channel, group, currency, ids, file
names, reasons) reaches the terminal through one path: :func:`printable` shows control
characters escaped (``\x1b``, ``\n``), and the cells are :class:`rich.text.Text`, never markup,
so a utm value of ``[/]`` or ``[link=...]x[/link]`` prints as itself. Text that *is* markup (the
CLI's coloured notes) takes data through :func:`escape_text`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import polars as pl
from rich.markup import escape as escape_markup
from rich.table import Table
from rich.text import Text

from attribution.errors import QUOTE_LIMIT
from attribution.loading import Accounting
from attribution.schema import (
    MONEY_COLUMNS,
    SHARE_COLUMNS,
    currency_decimals,
    major_name,
    minor_per_major,
)

if TYPE_CHECKING:
    from attribution.pipeline import RunResult


def _control_escapes() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
    table |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
    # line and paragraph separators split a line; bidirectional overrides and isolates
    # reorder what follows them on screen (a name could show as another)
    for code in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F,
                 0xFEFF):
        table[code] = f"\\u{code:04x}"
    return table


_CONTROL_ESCAPES = _control_escapes()


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as one line of inert terminal text: control characters (C0, DEL, C1) shown as
    ``\\x1b``, newline, carriage return and tab as ``\\n``, ``\\r``, ``\\t``, and line separators
    and bidirectional controls as ``\\u2028`` and the like. ``None`` is empty. With ``limit``,
    a longer value shows its first ``limit`` characters and its length.

    >>> printable("a\\x1b]8;;http://x\\x07b\\nc")
    'a\\\\x1b]8;;http://x\\\\x07b\\\\nc'
    """
    if value is None:
        return ""
    text = str(value)
    if limit is not None and len(text) > limit:
        return f"{text[:limit].translate(_CONTROL_ESCAPES)}... ({len(text):,} characters)"
    return text.translate(_CONTROL_ESCAPES)


def escape_text(value: object, limit: int | None = None) -> str:
    """``value`` for a string that rich reads as markup (the CLI's coloured notes):
    :func:`printable` (at most ``limit`` characters of it: :data:`QUOTE_LIMIT` for values
    from the data, as error messages quote input), with rich's markup brackets escaped, so
    ``[/]`` stays text.

    >>> escape_text("[/]")
    '\\\\[/]'
    """
    return escape_markup(printable(value, limit))


def cell(value: object, style: str = "") -> Text:
    """A table cell holding ``value`` as plain text (:func:`printable`, at most 200 characters
    of it: rich would wrap a longer one over many lines; no markup, no emoji codes)."""
    return Text(printable(value, QUOTE_LIMIT), style=style)


SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "AUD": "A$", "CAD": "C$"}
CREATION = "demand_creation"


def money(cents: int | None, currency: str = "USD") -> str:
    """Minor units of ``currency`` in its major units, to its ISO 4217 minor unit (exact:
    integer arithmetic, no float): ``123456 -> '$1,234.56'``, ``money(1234567, "KWD") ->
    '1,234.567 KWD'``, ``money(1234, "JPY") -> '¥1,234'``."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    decimals = currency_decimals(currency)
    units, rest = divmod(abs(int(cents)), 10 ** decimals)
    symbol = SYMBOLS.get(currency)
    body = f"{units:,}.{rest:0{decimals}d}" if decimals else f"{units:,}"
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def compact_money(cents: int | None, currency: str = "USD") -> str:
    """``123456789 -> '$1.23M'``: for wide terminal tables; files keep every cent."""
    if cents is None:
        return ""
    value = cents / minor_per_major(currency)
    symbol = SYMBOLS.get(currency, "")
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.3g}{suffix}"
            break
    else:
        text = f"{value:.0f}"
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def percent(share: float | None, digits: int = 1) -> str:
    return "" if share is None else f"{share * 100:.{digits}f}%"


def signed_points(share: float | None) -> str:
    return "" if share is None else f"{share * 100:+.1f} pts"


def _style(group: str | None) -> str:
    return "bold green" if group == CREATION else ""


def summary_table(summary: pl.DataFrame, currency: str, model: str) -> Table:
    """One model's channel summary."""
    table = Table(title=cell(f"Channel credit - {model}"), title_justify="left")
    for name, justify in [
        ("channel", "left"), ("group", "left"), ("deals touched", "right"),
        ("pipeline credit", "right"), ("revenue credit", "right"), ("revenue share", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = summary.filter(pl.col("model") == model)
    for row in rows.iter_rows(named=True):
        table.add_row(
            cell(row["channel"], style=_style(row["channel_group"])),
            cell(row["channel_group"]),
            f"{row['deals_touched']:,}",
            cell(money(row["pipeline_credit_cents"], currency)),
            cell(money(row["revenue_credit_cents"], currency)),
            percent(row["revenue_share"]),
        )
    table.add_section()
    table.add_row(
        "total", "", "",
        cell(money(int(rows.get_column("pipeline_credit_cents").sum()), currency)),
        cell(money(int(rows.get_column("revenue_credit_cents").sum()), currency)),
        percent(1.0 if rows.height else 0.0),
    )
    return table


#: placeholder channels, listed after the real ones
PLACEHOLDERS = ("(no touch)", "(unmapped)")


def _last_placeholders(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of real channels first (in their order), then ``(no touch)`` and ``(unmapped)``."""
    return frame.with_columns(pl.col("channel").is_in(PLACEHOLDERS).alias("_placeholder")).sort(
        "_placeholder", maintain_order=True
    ).drop("_placeholder")


def hidden_caption(hidden: Iterable[str], elsewhere: str | None = None) -> Text | None:
    """The caption of a table that leaves models out for want of terminal width: which ones,
    and how to see them (printed with the table, on stdout: ``-q`` does not hide it)."""
    hidden = list(hidden)
    if not hidden:
        return None
    where = f", in the {elsewhere} file" if elsewhere else ""
    return Text(printable(
        f"not shown, the terminal is too narrow: {', '.join(hidden)}; every model is in "
        f"--format csv or json{where} or on a wider terminal (COLUMNS=250 when piped), or "
        "pick models with --model"), style="yellow")


def credit_matrix(summary: pl.DataFrame, currency: str, models: list[str] | None = None, *,
                  hidden: Iterable[str] = (), elsewhere: str | None = None) -> Table:
    """Channels down, models across: each model's revenue credit (compact money), and the
    deals each channel touched (won, lost or open). ``hidden``: models left out for want of
    width, named in the caption (``elsewhere``: the result file that has them)."""
    models = models or summary.get_column("model").unique(maintain_order=True).to_list()
    table = Table(title="Revenue credit by channel and model", title_justify="left",
                  caption=hidden_caption(hidden, elsewhere), caption_justify="left")
    table.add_column("channel")
    # every deal (won, lost, open) with a touch of the channel, whatever the model credits:
    # the summary's deals_touched
    table.add_column("deals touched", justify="right")
    for model in models:
        table.add_column(cell(model), justify="right")
    cells = {(r["model"], r["channel"]): r for r in summary.iter_rows(named=True)}
    order = _last_placeholders(
        summary.group_by("channel", "channel_group")
        .agg(pl.col("revenue_credit_cents").sum(), pl.col("deals_touched").max())
        .sort(["revenue_credit_cents", "channel"], descending=[True, False])
    )
    for row in order.iter_rows(named=True):
        table.add_row(
            cell(row["channel"], style=_style(row["channel_group"])),
            f"{row['deals_touched']:,}",
            *[
                cell(compact_money(cells[(m, row["channel"])]["revenue_credit_cents"], currency)
                     if (m, row["channel"]) in cells else compact_money(0, currency))
                for m in models
            ],
        )
    table.add_section()
    table.add_row(
        "total", "",
        *[
            cell(compact_money(
                int(summary.filter(pl.col("model") == m)["revenue_credit_cents"].sum()), currency))
            for m in models
        ],
    )
    return table


def comparison_table(comparison: pl.DataFrame, currency: str, baseline: str = "last_touch",
                     models: list[str] | None = None, *, hidden: Iterable[str] = (),
                     elsewhere: str | None = None) -> Table:
    """Channels down: last-touch revenue and share, then each model's share and shift (points).
    ``hidden``: models left out for want of width, named in the caption (``elsewhere``: the
    result file that has them)."""
    models = [m for m in (models or comparison.get_column("model").unique(maintain_order=True))
              if m != baseline]
    table = Table(
        title=("Revenue share: last-touch vs multi-touch"
               " (shift in points; demand creation in green)"),
        title_justify="left", caption=hidden_caption(hidden, elsewhere), caption_justify="left",
    )
    table.add_column("channel")
    table.add_column(cell(baseline), justify="right")
    for model in models:
        table.add_column(cell(model), justify="right")
    base = _last_placeholders(comparison.filter(pl.col("model") == baseline).sort(
        ["last_touch_revenue_credit_cents", "channel"], descending=[True, False]
    ))
    wide = {(row["model"], row["channel"]): row for row in comparison.iter_rows(named=True)}
    for row in base.iter_rows(named=True):
        channel = row["channel"]
        cells: list[str | Text] = [
            cell(channel, style=_style(row["channel_group"])),
            cell(f"{compact_money(row['revenue_credit_cents'], currency)}"
                 f" {percent(row['revenue_share'])}"),
        ]
        for model in models:
            other = wide[(model, channel)]
            shift = other["share_shift"]
            style = "green" if shift > 0.0005 else "red" if shift < -0.0005 else ""
            cells.append(Text(f"{percent(other['revenue_share'])} {shift * 100:+.1f}", style=style))
        table.add_row(*cells)
    return table


def accounting_table(accounting: Iterable[Accounting]) -> Table:
    table = Table(title="Row accounting", title_justify="left")
    for name in ("input", "read", "used", "deduplicated", "out of window", "rejected"):
        table.add_column(name, justify="left" if name == "input" else "right")
    for item in accounting:
        table.add_row(
            cell(item.input), f"{item.read:,}", f"{item.used:,}", f"{item.deduplicated:,}",
            f"{item.out_of_window:,}", f"{item.rejected_total:,}",
        )
    return table


def reject_reasons_table(accounting: Iterable[Accounting]) -> Table | None:
    rows = [(a.input, reason, n) for a in accounting for reason, n in sorted(a.rejected.items())]
    if not rows:
        return None
    table = Table(title="Rejected rows by reason", title_justify="left")
    table.add_column("input")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    for input_name, reason, count in rows:
        table.add_row(cell(input_name), cell(reason), f"{count:,}")
    return table


#: short headers for wide tables, by the column's name in major units (a money column of minor
#: units, ``*_cents``, is shown in major units under its name without the suffix)
# money: keep names from here
LABELS = {
    "channel_group": "group", "opportunities": "opps", "pipeline_credit": "pipeline",
    "revenue_credit": "revenue", "won_deals": "won", "win_rate": "win rate",
    "avg_deal_size": "deal size", "days_to_close": "days to close", "cost_per_lead": "cost/lead",
    "cost_per_opportunity": "cost/opp", "cost_per_won_deal": "cost/won", "roas": "ROAS",
    "roi": "ROI", "lead_to_opportunity": "opps per lead", "avg_cycle_days": "cycle days",
    "won_revenue": "won revenue", "volume_effect": "volume effect",
    "conversion_effect": "conversion effect", "current_spend": "current spend",
    "recommended": "recommended", "last_touch_recommended": "last-touch rec.",
    "decision_shift": "multi vs last-touch", "current_share": "spend share",
    "proposed_spend": "proposed", "return_per_unit": "return per $", "counted_spend": "counted",
    "expected_revenue": "expected revenue", "revenue_change": "revenue change",
    "in_band": "in band", "paid_revenue_share": "revenue share (paid channels)",
    "tracked_revenue_credit": "tracked", "tracked_revenue_share": "tracked %",
    "self_reported_revenue_credit": "stated + fallback", "self_reported_revenue_share":
    "stated + fallback %", "stated_revenue_credit": "stated", "stated_revenue_share": "stated %",
    "stated_deals": "stated deals", "dark_deals": "dark deals",
    "dark_share": "dark %", "dark_revenue": "dark revenue",
}
# money: keep names to here


#: the widest an id column of a frame table is kept whole
ID_WIDTH = 40


def frame_table(frame: pl.DataFrame, title: str = "", currency: str = "USD",
                money_columns: Iterable[str] | None = None,
                share_columns: Iterable[str] | None = None, compact: bool = False,
                caption: str | None = None) -> Table:
    """Any small frame as a table, formatting money and share columns (by default the ones
    :data:`~attribution.schema.MONEY_COLUMNS` and ``SHARE_COLUMNS`` name); ``caption``: a
    line under it (what its figures mean)."""
    money_set = set(MONEY_COLUMNS if money_columns is None else money_columns)
    share_set = set(SHARE_COLUMNS if share_columns is None else share_columns)
    table = Table(title=cell(title) if title else None, title_justify="left",
                  caption=Text(printable(caption), style="dim") if caption else None,
                  caption_justify="left")
    for name, dtype in frame.schema.items():
        shown = major_name(name) if name in money_set else name  # (shown in major units)
        # an id is copied from the terminal (`history`'s run_id): whole, never cut, up to a
        # bound so a hostile one cannot take the table
        whole = (int(frame.get_column(name).cast(pl.String).str.len_chars().fill_null(0)
                     .max() or 0)  # type: ignore[arg-type]
                 if name.endswith("_id") and frame.height else 0)
        table.add_column(cell(LABELS.get(shown, shown) if compact else shown),
                         justify="right" if dtype.is_numeric() else "left",
                         no_wrap=bool(whole), min_width=min(whole, ID_WIDTH) or None)
    for row in frame.iter_rows(named=True):
        cells: list[str | Text] = []
        for name, value in row.items():
            if name in money_set and isinstance(value, float):  # an estimate: whole cents
                cents = round(value) if math.isfinite(value) else None
                cells.append(cell(compact_money(cents, currency) if compact
                                  else money(cents, currency)))
            elif name in money_set and (value is None or isinstance(value, int)):
                cells.append(cell(compact_money(value, currency) if compact
                                  else money(value, currency)))
            elif name in share_set:
                cells.append(percent(value))
            elif isinstance(value, bool):
                cells.append("yes" if value else "no")
            elif isinstance(value, float):
                cells.append(f"{value:,.2f}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(cell(value))  # text from the data: never markup
        table.add_row(*cells)
    return table


#: the dark-funnel columns a terminal shows
DARK_FUNNEL_COLUMNS = ["channel", "tracked_revenue_credit_cents", "tracked_revenue_share",
                       "stated_revenue_credit_cents", "stated_revenue_share",
                       "self_reported_revenue_credit_cents", "self_reported_revenue_share",
                       "stated_deals", "dark_deals", "dark_share", "dark_revenue_cents"]


def dark_funnel_table(dark: pl.DataFrame, currency: str, tracked: str) -> Table:
    """The dark-funnel table: per channel, the tracked model's revenue credit next to what
    buyers said (``stated``: the answered deals alone) and the self_reported model's credit
    (``stated + fallback``: the unanswered deals credited by the fallback), the deals stating
    the channel and those of them no touch of it reached (``dark``)."""
    return frame_table(dark.select(DARK_FUNNEL_COLUMNS),
                       title=f"Dark funnel: tracked credit ({tracked}) vs self-reported",
                       currency=currency, compact=True)


def dark_funnel_line(dark: pl.DataFrame, currency: str) -> str | None:
    """One sentence naming the largest dark channel (enough stated won deals, the most won
    revenue that no touch of the channel reached), escaped; None when no channel qualifies."""
    from attribution.self_reported import largest_dark_channel

    row = largest_dark_channel(dark)
    if row is None:
        return None
    return (f"largest dark channel: {escape_text(row['channel'], 80)}: "
            f"{money(row['dark_revenue_cents'], currency)} of won revenue from "
            f"{_count(row['dark_won_deals'], 'won deal')} that name it with no tracked touch "
            f"of it ({percent(row['dark_share'])} of the {_count(row['stated_deals'], 'deal')} "
            "stating it)")


#: share of an input's rows rejected above which a run warns
REJECT_WARNING = 0.05


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def run_notes(result: RunResult, rejects_file: str | None = None) -> list[str]:
    """What a run says on stderr besides its tables (rich markup; every value from the data
    escaped): models the engine skipped, journey counts, rejected shares and amounts, the
    load's own notes (inferred formats, unknown statuses, first-touch-only data), unmapped
    sources and where the rejects went."""
    notes: list[str] = []
    partitions = result.engine_settings.get("partitions") if result.engine == "polars" else None
    if partitions:
        notes.append(f"partitioned run: the accounts in {_count(partitions, 'partition')}, "
                     "one at a time, to go past memory (same results as in memory; "
                     f"{escape_text(result.engine_settings.get('partitions_from', ''))})")
    if result.skipped_models:
        where = "on Spark" if result.engine == "spark" else "in partitions"
        notes.append(f"[yellow]not run {where}: {', '.join(result.skipped_models)}[/yellow]")
    if result.stats is not None:
        stats = result.stats
        notes.append(
            f"journeys: {_count(stats.deal_journeys, 'deal')} "
            f"({stats.deals_without_touch:,} with no touch in their window, credited to "
            f"'(no touch)'), {_count(stats.account_journeys, 'account')} touched without a deal; "
            f"as of {stats.as_of:%Y-%m-%d %H:%M} UTC"
        )
    for item in result.accounting:
        share = item.rejected_total / item.read if item.read else 0.0
        if share > REJECT_WARNING:
            # a file is named only when one was written (the last note says how to write one)
            where = f"; see {escape_text(rejects_file)}" if rejects_file is not None else ""
            notes.append(f"[yellow]warning: {share:.0%} of {escape_text(item.input)} rows were "
                         f"rejected ({item.rejected_total:,} of {item.read:,}){where}[/yellow]")
        if item.rejected_amount:
            notes.append(
                f"[yellow]rejected deals carry {money(item.rejected_amount, result.currency)}"
                f" of pipeline ({money(item.rejected_won_amount, result.currency)} won) "
                "that is in no total of this run[/yellow]"
            )
    # a note may span lines on purpose (a [statuses] block to paste): each line escaped
    notes.extend("[yellow]" + "\n".join(escape_text(line) for line in note.split("\n"))
                 + "[/yellow]" for note in result.notes)
    if result.unmapped is not None and result.unmapped.height:
        pairs = ", ".join(
            f"{escape_text(s or '(empty)')}/{escape_text(m or '(empty)')} ({n:,})"
            for s, m, n in result.unmapped.head(5).iter_rows()
        )
        more = f" and {result.unmapped.height - 5} more" if result.unmapped.height > 5 else ""
        notes.append(
            f"[yellow]unmapped utm source/medium, kept as '(unmapped)': {pairs}{more}; "
            "add rules with --channel-rules[/yellow]"
        )
    rejected = result.rejects.height + result.rejects_elsewhere
    if rejects_file is not None:
        notes.append(f"{rejected:,} rejected rows written to {escape_text(rejects_file)}")
    elif rejected:
        notes.append(f"{rejected:,} rejected rows (reasons above); write them to "
                     "a file with --rejects FILE")
    return notes


def fitting_columns(models: list[str], width: int, *, per_model: int, fixed: int,
                    recommended: str | None = None) -> tuple[list[str], list[str]]:
    """The models whose columns fit ``width`` (last-touch first, then the recommended model),
    and the rest."""
    ordered = sorted(models, key=lambda name: (name != "last_touch", name != recommended))
    room = max(1, (width - fixed) // per_model)
    return ordered[:room], ordered[room:]
