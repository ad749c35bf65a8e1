"""A result folder that is always whole: staged beside ``--out``, swapped in, checked later.

A run never writes into ``--out`` itself. It takes an advisory lock (``.<name>.lock`` beside
the folder: one writer at a time), writes every file into a fresh staging folder beside it
(``.<name>.staging-<id>``), lists them in ``run.json``'s ``manifest`` (rows and SHA-256 of each),
then puts the staging folder in the place of ``--out``:

* on Linux, by one ``renameat2(RENAME_EXCHANGE)``: the old and the new folder trade places
  atomically, so at every instant ``--out`` is one complete result set;
* elsewhere (or on a file system that refuses the exchange), by two renames: the old folder
  aside as ``.<name>.previous-<id>``, the new one in. A run killed between the two leaves no
  ``--out``; the next run (or :func:`recover`) puts the previous one back before anything else.

Leftover staging and previous folders of killed runs are removed by the next run that holds the
lock. :func:`verify` checks a folder against its manifest. Nothing here follows a symbolic link
inside a result folder: a link planted there is refused, never written through.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from attribution.errors import AttributionError

#: the run record, which holds the manifest of every other file
RECORD = "run.json"
_STAGING = ".staging-"
_PREVIOUS = ".previous-"
# linux/fs.h; renameat2 is in glibc since 2.28
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


#: this process's staging folders (written, or holding an old set being removed), which the
#: command line's Ctrl-C watchdog removes when the run does not stop in time by itself
_LIVE: set[Path] = set()
#: held across a swap, so a forced stop never lands between its two renames
_SWAP_LOCK = threading.Lock()
#: the result folders this process has already swapped a new set into
_SWAPPED: list[Path] = []


class ResultSetError(AttributionError):
    """A result folder cannot be written, or does not match its manifest."""


class ResultSetBusyError(ResultSetError):
    """Another run holds the result folder's lock."""


def _hidden(out: Path, kind: str) -> str:
    return f".{out.name}{kind}"


_OUTPUT = re.compile(
    r"(credit|summary|comparison|(markov|shapley|incremental)_[a-z_]+)\.(parquet|csv|json)"
    r"|rejects\.csv|run\.json|\.credit\.parts\..*"
)


def _ours(name: str) -> bool:
    """Whether a file name is one a run of attribution writes (an older version's folder, or
    one a killed run left its scratch parts in)."""
    return _OUTPUT.fullmatch(name) is not None


def check_destination(out: Path) -> None:
    """Refuse, before any work is done, a destination a result set cannot go to: a symbolic
    link, something that is not a folder, a folder of other files, or a parent that cannot be
    written."""
    if out.is_symlink():
        raise ResultSetError(f"--out {out}: is a symbolic link; give the folder itself "
                             "(a result folder is replaced whole, never written through a link)")
    if out.exists() and not out.is_dir():
        raise ResultSetError(f"--out {out}: is a file, not a folder")
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries and RECORD not in entries and not all(map(_ours, entries)):
            shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more"
                                             if len(entries) > 3 else "")
            raise ResultSetError(
                f"--out {out}: holds {shown}, which is not a result set of attribution (no "
                f"{RECORD}); a run replaces the whole folder, so give an empty or new one"
            )
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ResultSetError(f"--out {out}: {probe} cannot be written")


@contextlib.contextmanager
def locked(out: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the advisory lock of ``out`` (``.<name>.lock`` beside it); without ``wait`` a
    second run gets :class:`ResultSetBusyError` at once."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / _hidden(out, ".lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip() or "?"
            raise ResultSetBusyError(
                f"--out {out}: another run (pid {holder}) is writing this result folder; "
                "wait for it, or pass --wait to queue behind it"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def recover(out: Path) -> list[Path]:
    """Under the lock: put back a previous result set a killed swap left aside, and remove
    what killed runs left (staging folders, previous sets). Returns what was removed."""
    parent = out.parent
    if not parent.is_dir():
        return []
    staging = sorted(parent.glob(_hidden(out, _STAGING) + "*"))
    previous = sorted(parent.glob(_hidden(out, _PREVIOUS) + "*"))
    if not out.exists() and previous:
        newest = max(previous, key=lambda p: p.stat().st_mtime)
        os.rename(newest, out)
        previous.remove(newest)
    removed = []
    for path in [*staging, *previous]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where that cannot be done."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                       _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(second))


def swap_in(staging: Path, out: Path) -> None:
    """Put the staging folder in the place of ``out`` (see the module docstring)."""
    if out.exists() and _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # (the old set, now at the staging name)
        return
    if not out.exists():
        os.rename(staging, out)
        return
    aside = out.parent / (_hidden(out, _PREVIOUS) + secrets.token_hex(4))
    os.rename(out, aside)
    os.rename(staging, out)
    shutil.rmtree(aside, ignore_errors=True)


@dataclass
class Staging:
    """The staging folder of one run into ``out``."""

    out: Path
    directory: Path

    @classmethod
    def beside(cls, out: Path) -> Staging:
        name = _hidden(out, _STAGING) + f"{os.getpid()}-{secrets.token_hex(4)}"
        directory = out.parent / name
        directory.mkdir(parents=True)
        return cls(out, directory)

    def final(self, path: str | Path) -> str:
        """Where a file written into the staging folder is once it is swapped in."""
        path = Path(path)
        try:
            return str(self.out / path.relative_to(self.directory))
        except ValueError:
            return str(path)


@contextlib.contextmanager
def staged(out: Path, *, wait: bool = False) -> Iterator[Staging]:
    """Write a result set into a staging folder and swap it in when the block ends without
    an error; on an error (a kill, Ctrl-C, a full disk) ``out`` keeps what it held."""
    check_destination(out)
    with locked(out, wait=wait):
        recover(out)
        staging = Staging.beside(out)
        _LIVE.add(staging.directory)
        try:
            yield staging
            with _SWAP_LOCK:
                swap_in(staging.directory, out)
                _SWAPPED.append(out)
        except BaseException as exc:
            shutil.rmtree(staging.directory, ignore_errors=True)
            if _disk_full(exc):
                raise ResultSetError(
                    f"--out {out}: no space left on device while writing the result set "
                    f"beside it ({out.parent}); the folder keeps its previous set"
                ) from None
            raise
        finally:
            _LIVE.discard(staging.directory)


def abandon_staging() -> list[Path]:
    """Remove this process's staging folders, waiting for a swap under way to finish (the
    last act of a process stopping at once on Ctrl-C: its lock goes with the process, and a
    folder this misses is removed by the next run). Returns the result folders that already
    hold this process's new set."""
    with _SWAP_LOCK:
        for directory in list(_LIVE):
            shutil.rmtree(directory, ignore_errors=True)
        return list(_SWAPPED)


def _disk_full(exc: BaseException) -> bool:
    """Whether writing failed for want of space (an OSError, or polars' own I/O error that
    quotes the system's message)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return "No space left on device" in str(exc) or "os error 28" in str(exc)


# -- the manifest ---------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rows(path: Path) -> int:
    """Data rows of a result file (Parquet metadata; CSV and JSON read)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if suffix == ".csv":
        rows = pl.scan_csv(path, infer_schema=False, glob=False).select(pl.len()).collect()
        return int(rows.item())
    if suffix == ".json":
        document = json.loads(path.read_text("utf-8"))
        return len(document) if isinstance(document, list) else 1
    raise ResultSetError(f"{path}: not a result file")


def manifest(directory: Path) -> list[dict[str, Any]]:
    """Every file of a result folder but the run record: name, rows and SHA-256, by name."""
    entries = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if path.name == RECORD:
            continue
        if path.is_symlink() or not path.is_file():
            raise ResultSetError(f"{path}: not a plain file; a result folder holds files only")
        entries.append({"file": path.name, "rows": _rows(path), "sha256": _sha256(path)})
    return entries


def verify(out: Path) -> list[dict[str, Any]]:
    """Check a result folder against the manifest in its ``run.json``: every file listed is
    there with its rows and SHA-256, and no other file is. Returns the manifest; raises
    :class:`ResultSetError` naming the first difference."""
    record_path = out / RECORD
    if out.is_symlink() or not out.is_dir():
        raise ResultSetError(f"{out}: not a result folder")
    if not record_path.is_file() or record_path.is_symlink():
        raise ResultSetError(f"{out}: no {RECORD}; not a result set, or one cut short")
    try:
        record = json.loads(record_path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultSetError(f"{record_path}: not a JSON document ({exc})") from None
    listed = record.get("manifest") if isinstance(record, dict) else None
    if not isinstance(listed, list):
        raise ResultSetError(f"{record_path}: no manifest (written by an older version?)")
    expected = {entry["file"]: entry for entry in listed}
    present = {p.name for p in out.iterdir() if p.name != RECORD}
    for extra in sorted(present - set(expected)):
        raise ResultSetError(f"{out / extra}: not in the manifest of {record_path}")
    for name, entry in expected.items():
        path = out / name
        if not path.is_file() or path.is_symlink():
            raise ResultSetError(f"{path}: listed in the manifest, missing")
        if _sha256(path) != entry["sha256"]:
            try:  # a file cut at a row boundary still reads: say what it lost
                rows: int | None = _rows(path)
            except Exception:  # noqa: BLE001 - a damaged file need not read at all
                rows = None
            if rows is not None and rows != entry["rows"]:
                raise ResultSetError(
                    f"{path}: {rows:,} rows, the manifest says {entry['rows']:,}")
            raise ResultSetError(f"{path}: its SHA-256 differs from the manifest's")
    return listed


__all__ = [
    "RECORD",
    "ResultSetBusyError",
    "ResultSetError",
    "Staging",
    "abandon_staging",
    "check_destination",
    "locked",
    "manifest",
    "recover",
    "staged",
    "swap_in",
    "verify",
]
