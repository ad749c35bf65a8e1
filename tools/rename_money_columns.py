"""Name every integer (or float estimate) money column of the in-memory tables by its unit.

Issue #21, item 7: inside the library (``RunResult.credit``, ``summary``, ``comparison()``,
``totals()``, the fitted models' tables, the economics and budget tables) money is minor units
of the run's currency, and such a column is named ``*_cents``; the output layer
(:func:`attribution.output.money_to_decimal` and the writers) turns it into an exact decimal in
major units under the name without the suffix, so every file keeps its column names and bytes.

This script does the rename, and is rerunnable (a name already ending ``_cents`` is left
alone): every Python string literal that is exactly one of :data:`CORE` (in any file of
``attribution/``, ``tests/`` and ``bench/``) or one of :data:`GENERIC` (only in
:data:`GENERIC_FILES`, where those words name money columns) becomes ``<name>_cents``; so does
a quoted name inside an f-string's replacement field (``{row['name']}``,
``{frame.get_column('name').sum()}``). A line carrying the comment ``# money: keep name``, and
the lines from one carrying ``# money: keep names from here`` to one carrying ``# money: keep
names to here``, are left as they are: there the literal is a file's column, a label or another
meaning of the word (the ``spend`` input, a ``floor`` bound kind, the ``recommended`` model
flag).

The models' input contract, ``amount`` and ``revenue`` (:data:`CONTRACT`: the journeys table,
the validated deals and spend exports, the path counts and path tables made from them), is
renamed the same way (``amount_cents``, ``revenue_cents``), but these words are also a file's
column (a deals or spend export's ``amount``, a chart's field), an option's value
(``value="revenue"``, ``weight_by="revenue"``, an experiment's ``metric``) and part of method
names, so only where the literal can only be a column:

* in :data:`CONTRACT_FILES`, every literal that is exactly the word, except one that follows
  ``=``, ``==``, ``!=`` or ``:`` or comes before ``==`` or ``!=`` (an option's value: a keyword
  argument, a default, a comparison, a dict value) and the kept lines;
* in every other file of the roots, a literal that is the first argument of ``col(``,
  ``get_column(`` or ``alias(`` (``pl.col("revenue")``, ``.alias("amount")``), except on kept
  lines. So a new module (another engine, a new model) written the old way is found by
  ``--check`` wherever it is; add it to :data:`CONTRACT_FILES` when it names these columns
  in other ways too (a ``select("journey_id", "amount")``, a schema dict).

Identifiers are never touched (``revenue_credit``, a ``revenue=`` keyword, ``self.revenue``).

After merging a branch written before a rename (from the same main):

1. where the merge conflicts on renamed literals, take the other branch's lines (``git
   checkout --theirs FILE`` for a file only the names conflict in), then finish the merge;
2. ``python tools/rename_money_columns.py --check`` lists ``file:line: "old" -> "new"``; read
   it for a literal that is a file's column, a reject's column or an option's value (mark that
   line ``# money: keep name``), then run it without ``--check`` and commit;
3. run the tests: ``tests/test_money_names.py`` fails while ``--check`` finds anything, and
   ``tests/test_api.py`` checks every API table's money columns, the journeys, validated
   inputs, spend rows and path tables included. A column literal in a form the script does
   not rename outside :data:`CONTRACT_FILES` (``frame["amount"]``, a dict key, a
   ``select("amount")``) fails as a missing column in the tests that run it: rename it by
   hand, or add the file to :data:`CONTRACT_FILES` and run the script again.

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
    "tracked_revenue_credit", "self_reported_revenue_credit", "stated_revenue_credit",
    "dark_revenue",
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
#: the models' input contract in minor units: renamed with care (see the module docstring)
CONTRACT = ("amount", "revenue")
#: where every :data:`CONTRACT` literal is a column of the journeys, the validated exports or
#: the tables made from them, but an option's value (auto-skipped) or a kept line
CONTRACT_FILES = (
    "attribution/credit.py", "attribution/evaluate.py",
    "attribution/graph.py", "attribution/hygiene.py", "attribution/intervals.py",
    "attribution/journeys.py", "attribution/partitioned.py", "attribution/paths.py",
    "attribution/pipeline.py",
    "attribution/schema.py", "attribution/self_reported.py", "attribution/simulate.py",
    "attribution/spark.py", "attribution/spend.py", "attribution/validation.py",
    "attribution/report/html.py", "attribution/report/charts.py", "attribution/cli.py",
    "attribution/models/base.py", "attribution/models/counts.py",
    "attribution/models/incremental.py", "attribution/models/markov.py",
    "attribution/models/priors.py", "attribution/models/self_reported.py",
    "attribution/models/shapley.py",
    "tests/reference.py",
)
#: calls whose first argument is a column name, wherever they are
COLUMN_CALLS = ("col", "get_column", "alias")
#: tokens before a literal that make it an option's value, not a column (in CONTRACT_FILES)
VALUE_BEFORE = ("=", "==", "!=", ":")
VALUE_AFTER = ("==", "!=")
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


def _contract_literal(text: str, before: list[str], after: str, everywhere: bool) -> str:
    """A :data:`CONTRACT` literal renamed where it is a column (``before``: the previous
    significant tokens, nearest last; ``after``: the next one; ``everywhere``: the file is one
    of :data:`CONTRACT_FILES`)."""
    match = re.fullmatch(r"([rRuU]?)(['\"])([A-Za-z_]+)\2", text)
    if not match or match.group(3) not in CONTRACT:
        return text
    if everywhere:
        column = (not before or before[-1] not in VALUE_BEFORE) and after not in VALUE_AFTER
    else:
        column = len(before) >= 2 and before[-1] == "(" and before[-2] in COLUMN_CALLS
    if not column:
        return text
    return f"{match.group(1)}{match.group(2)}{match.group(3)}_cents{match.group(2)}"


def rename_source(source: str, path: str) -> str:
    """``source`` with its money column literals renamed (see the module docstring)."""
    lines = source.splitlines(keepends=True)
    for row, start, end, new in sorted(_edits(source, path), reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    return "".join(lines)


def _edits(source: str, path: str) -> list[tuple[int, int, int, str]]:
    """The renames of ``source``: (row, start column, end column, new text)."""
    names = _names(path)
    everywhere = path in CONTRACT_FILES
    lines = source.splitlines(keepends=True)
    kept, inside = set(), False
    for row, line in enumerate(lines, start=1):
        inside = inside or KEEP_FROM in line
        if inside or KEEP in line:
            kept.add(row)
        inside = inside and KEEP_TO not in line
    edits: list[tuple[int, int, int, str]] = []  # (row, start col, end col, new text)
    skipped = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
               tokenize.DEDENT)
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in skipped]
    for at, token in enumerate(tokens):
        if token.type != tokenize.STRING or token.start[0] != token.end[0]:
            continue
        row = token.start[0]
        if row in kept:
            continue
        new = _rename_literal(token.string, names)
        if new == token.string:
            before = [t.string for t in tokens[max(at - 2, 0):at]]
            after = tokens[at + 1].string if at + 1 < len(tokens) else ""
            new = _contract_literal(token.string, before, after, everywhere)
        if new != token.string:
            edits.append((row, token.start[1], token.end[1], new))
    return edits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only list what would change (file:line: old -> new)")
    args = parser.parse_args(argv)
    changed = []
    for root in ROOTS:
        for file in sorted(Path(root).rglob("*.py")):
            path = file.as_posix()
            if path.startswith(SKIP):
                continue
            source = file.read_text(encoding="utf-8")
            edits = _edits(source, path)
            if not edits:
                continue
            changed.append(path)
            if args.check:
                lines = source.splitlines()
                for row, start, end, new in edits:
                    print(f"{path}:{row}: {lines[row - 1][start:end]} -> {new}")
            else:
                file.write_text(rename_source(source, path), encoding="utf-8")
    if not args.check:
        for path in changed:
            print(path)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
