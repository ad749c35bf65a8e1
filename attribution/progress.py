"""Progress of long steps inside models (a bootstrap, say), without passing callbacks around.

The pipeline installs the caller's callback for the duration of a run with :func:`reporting`;
deep code calls :func:`report`, which does nothing when nobody listens. The library still never
prints: the callback (the CLI's progress bar) decides what to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Callback = Callable[[str, int, int], None]

_listener: ContextVar[Callback | None] = ContextVar("attribution_progress", default=None)


@contextmanager
def reporting(callback: Callback | None) -> Iterator[None]:
    """Send :func:`report` calls to ``callback`` inside the ``with`` block."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def report(stage: str, done: int, total: int) -> None:
    """Tell the listener (if any) that ``done`` of ``total`` steps of ``stage`` are finished."""
    listener = _listener.get()
    if listener is not None:
        listener(stage, done, total)
