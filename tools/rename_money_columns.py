"""Name every integer (or float estimate) money column of the in-memory tables by its unit.

Issue #21, item 7: inside the library (``RunResult.credit``, ``summary``, ``comparison()``,
``totals()``, the fitted models' tables, the economics and budget tables) money is minor units
of the run's currency, and such a column is named ``*_cents``; the output layer
(:func:`attribution.output.money_to_decimal` and the writers) turns it into an exact decimal in
major units under the name without the suffix, so every file keeps its column names and bytes.

This script does the rename, and is rerunnable (a name already ending ``_cents`` is left
alone): every Python string literal that is exactly one of :data:`CORE` (in any file of
``attribution/``,
``tests/`` and ``bench/``) or one of :data:`GENERIC` (only in :data:`GENERIC_FILES`,
where those words name money columns) becomes ``<name>_cents``; so does a quoted name inside
an f-string's replacement field (``{row['name']}``, ``{frame.get_column('name').sum()}``). A
line carrying the comment ``# money: keep name``, and the lines from one carrying ``# money:
keep names from here`` to one carrying ``# money: keep names to here``, are left as they are:
there the literal is a file's column,
a label or another meaning of the word (the ``spend`` input, a ``floor`` bound kind, the
``recommended`` model flag).

After merging branches that add code naming money columns the old way, run it again; where a
merge conflicts on renamed literals, take the other branch's lines and run it again.

Run from the repository root::

    python tools/rename_money_columns.py            # rewrite the files
    python tools/rename_money_columns.py --check    # list what would change, exit 1 if any
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tokenize
from pathlib import Path

#: names that always mean a money column in minor units
CORE = (
    "pipeline_credit", "revenue_credit", "last_touch_revenue_credit", "revenue_shift",
    "revenue_credit_low", "revenue_credit_high", "won_revenue", "avg_deal_size",
    "revenue_per_lead", "cost_per_lead", "cost_per_opportunity", "cost_per_won_deal",
    "current_spend", "last_touch_recommended", "last_touch_change", "decision_shift",
    "proposed_spend", "expected_revenue", "revenue_change", "counted_spend", "band_low",
    "band_high",
    # the simulated worlds' ground truth (attribution.simulate, attribution.evaluate): minor
    # units in memory and in the evaluation files alike (not in MONEY_COLUMNS)
    "incremental_revenue", "revenue_removed", "shapley_revenue",
    # attribution calibrate: a model's credit beside an experiment's measured lift
    "model_credit", "lift_lower", "lift_upper", "credit_error", "mean_absolute_error",
    # the dark funnel (attribution.self_reported)
    "tracked_revenue_credit", "self_reported_revenue_credit", "dark_revenue",
)
#: words that name a money column only in some modules (and mean other things elsewhere)
GENERIC = ("pipeline", "spend", "recommended", "change", "floor", "cap")
#: where :data:`GENERIC` words are money columns (other meanings there carry the keep mark)
GENERIC_FILES = (
    "attribution/schema.py", "attribution/economics.py", "attribution/budget.py",
    "attribution/spend.py", "attribution/hygiene.py", "attribution/pipeline.py",
    "attribution/spark.py", "attribution/results.py", "attribution/db.py",
    "attribution/cli.py", "attribution/commands.py", "attribution/render.py",
    "attribution/report/html.py", "attribution/report/charts.py", "attribution/report/data.py",
    "tests/test_budget.py", "tests/test_economics.py", "tests/test_hygiene.py",
    "tests/test_report.py", "tests/test_report_decision.py", "tests/test_api.py",
    "tests/test_render.py", "tests/test_spend.py", "tests/test_recommended.py",
)
KEEP = "# money: keep name"
KEEP_FROM, KEEP_TO = "# money: keep names from here", "# money: keep names to here"
ROOTS = ("attribution", "tests", "bench")
#: this script's own folder is never rewritten
SKIP = ("tools/",)


def _names(path: str) -> set[str]:
    return set(CORE) | (set(GENERIC) if path in GENERIC_FILES else set())


def _rename_literal(text: str, names: set[str]) -> str:
    """A plain string literal that is exactly a name, as ``name_cents``; an f-string's
    subscripts ``['name']`` renamed the same way; anything else unchanged."""
    match = re.fullmatch(r"([rRuU]?)(['\"])([A-Za-z_]+)\2", text)
    if match and match.group(3) in names:
        return f"{match.group(1)}{match.group(2)}{match.group(3)}_cents{match.group(2)}"
    if re.match(r"[rR]?[fF]", text):
        # inside the f-string's replacement fields only: a quoted name there is a literal of
        # the expression (``row['revenue_credit']``, ``get_column('revenue_credit')``)
        quoted = r"(['\"])(" + "|".join(sorted(names, key=len, reverse=True)) + r")\1"

        def field(match: re.Match[str]) -> str:
            return re.sub(quoted, lambda m: f"{m.group(1)}{m.group(2)}_cents{m.group(1)}",
                          match.group(0))

        return re.sub(r"\{[^{}]*\}", field, text)
    return text


def rename_source(source: str, path: str) -> str:
    """``source`` with its money column literals renamed (see the module docstring)."""
    names = _names(path)
    lines = source.splitlines(keepends=True)
    kept, inside = set(), False
    for row, line in enumerate(lines, start=1):
        inside = inside or KEEP_FROM in line
        if inside or KEEP in line:
            kept.add(row)
        inside = inside and KEEP_TO not in line
    edits: list[tuple[int, int, int, str]] = []  # (row, start col, end col, new text)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING or token.start[0] != token.end[0]:
            continue
        row = token.start[0]
        if row in kept:
            continue
        new = _rename_literal(token.string, names)
        if new != token.string:
            edits.append((row, token.start[1], token.end[1], new))
    for row, start, end, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the files to change")
    args = parser.parse_args(argv)
    changed = []
    for root in ROOTS:
        for file in sorted(Path(root).rglob("*.py")):
            path = file.as_posix()
            if path.startswith(SKIP):
                continue
            source = file.read_text(encoding="utf-8")
            renamed = rename_source(source, path)
            if renamed != source:
                changed.append(path)
                if not args.check:
                    file.write_text(renamed, encoding="utf-8")
    for path in changed:
        print(path)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
