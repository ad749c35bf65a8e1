"""Ctrl-C stops a command within a second, whatever it is doing (issue #21, item 6).

Python runs its SIGINT handler (the KeyboardInterrupt) only between bytecodes of the main
thread, so a polars or numpy call of a minute would hold Ctrl-C for that minute. The C-level
handler writes the signal's number to the wakeup descriptor at once, though: :func:`watch`
starts a thread waiting on it that gives the main thread :data:`GRACE` seconds to stop cleanly
(the usual path: staging removed, one line, exit 130), then removes this process's staging
folders itself, prints the same line and ends the process with 130. The result folder's lock
is a ``flock`` and goes with the process; a database write is a transaction the server rolls
back when the connection drops.

Only the console entry point installs it (:func:`main`), before the library's imports, so
Ctrl-C during the imports is the same one line; a process that imports the library (a test
runner, a notebook) keeps its own Ctrl-C. This module imports nothing but the standard library.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import NoReturn

INTERRUPTED = "Error: interrupted (Ctrl-C); earlier results are kept as they were"
#: how long Ctrl-C waits for the command to stop by itself before the process stops at once
GRACE = 0.3
#: whether :func:`watch` runs in this process (the console entry point, not a test runner)
_watching = threading.Event()
#: set once the interruption's line is printed, so a process stopping twice says it once
_announced = threading.Event()
_announce_lock = threading.Lock()


def announce(line: str = INTERRUPTED) -> None:
    """Print the interruption's line on stderr, once per process."""
    with _announce_lock:
        if _announced.is_set():
            return
        _announced.set()
        try:
            if sys.stderr.isatty():
                sys.stderr.write("\x1b[?25h")  # a progress bar may have hidden the cursor
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def watch(grace: float = GRACE) -> None:
    """Stop the process within ``grace`` seconds of Ctrl-C (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        return
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    try:
        signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
        os.close(reader)
        os.close(writer)
        return

    def stop_when_interrupted() -> None:
        while signal.SIGINT not in os.read(reader, 64):
            pass
        time.sleep(grace)
        swapped: list[object] = []
        resultset = sys.modules.get("attribution.resultset")
        if resultset is not None:  # only a process that got as far as writing has staging
            swapped = resultset.abandon_staging()
        announce(INTERRUPTED if not swapped else
                 "Error: interrupted (Ctrl-C) after the new result set was in place")
        os._exit(130)

    threading.Thread(target=stop_when_interrupted, name="interrupt-watchdog",
                     daemon=True).start()
    _watching.set()


def stop(code: int = 130) -> NoReturn:
    """End the process after an interruption its command has cleaned up after: at once under
    the console entry point (the interpreter's orderly shutdown, freeing every table one by
    one, can take longer than the second Ctrl-C has), else by ``SystemExit``."""
    if _watching.is_set():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


def main() -> None:
    """The console entry point (``attribution``, ``python -m attribution``, ``cli.py``)."""
    watch()
    try:
        from attribution.cli import cli
    except KeyboardInterrupt:
        announce()
        stop(130)
    cli(prog_name="attribution")
