"""Split lines longer than 100 characters at the last ``, `` (outside strings and comments)
that fits, continuing aligned after the innermost bracket opened on the line (or at the line's
own indent): the lines :mod:`rename_money_columns` made too long. Each file must still parse.
A trailing comment stays on the last piece (check a ``# type: ignore`` by hand: mypy says).

    python tools/wrap_long_lines.py $(ruff check . --output-format concise | grep E501 \
        | cut -d: -f1 | sort -u)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 100

def split(line: str) -> list[str] | None:
    indent = len(line) - len(line.lstrip())
    stack: list[int] = []
    quote: str | None = None
    i, best = 0, None
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif ch == "#":
            break
        elif ch in "'\"":
            quote = line[i:i + 3] if line[i:i + 3] in ('"""', "'''") else ch
            i += len(quote)
            continue
        elif ch in "([{":
            stack.append(i)
        elif ch in ")]}":
            if stack:
                stack.pop()
        elif ch == "," and line[i + 1:i + 2] == " " and i + 1 <= LIMIT:
            col = stack[-1] + 1 if stack else indent
            rest = line[i + 2:]
            if col + len(rest.rstrip("\n")) <= LIMIT or best is None:
                best = (i, col)
        i += 1
    if best is None:
        return None
    i, col = best
    return [line[:i + 1] + "\n", " " * col + line[i + 2:]]


def main(names: list[str]) -> None:
    for name in names:
        wrap(Path(name))


def wrap(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        pieces = [line]
        while len(pieces[-1].rstrip("\n")) > LIMIT:
            parts = split(pieces[-1])
            if parts is None:
                break
            pieces[-1:] = parts
        out.extend(pieces)
    text = "".join(out)
    ast.parse(text)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
