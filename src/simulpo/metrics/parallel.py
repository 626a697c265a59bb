"""Forked worker processes for the scorers' independent pieces of work, when they pay.

Scoring is one short command on a few cores: a forked child starts in milliseconds and
reads the parent's data copy-on-write, where spawning would re-import everything. Forking
is used only on Linux and only while the process runs no other thread (forking a threaded
process can deadlock the child); otherwise the work runs in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["beside", "cores", "fork_is_safe"]


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fork_is_safe() -> bool:
    """On Linux, in a process with no other thread (forking one that runs threads can
    deadlock the child) that is not itself a pool's worker (those may have no children)."""
    return (sys.platform.startswith("linux") and threading.active_count() == 1
            and not multiprocessing.current_process().daemon)


def beside(fn: Callable[..., Any], *args: Any, parallel: bool = True) -> Callable[[], Any]:
    """Start ``fn(*args)`` in a forked child while the caller goes on; call the returned
    function for its result (the child's exception, if it raised). Without a second core,
    a safe fork or ``parallel``, ``fn`` runs when the result is asked for."""
    if not (parallel and cores() > 1 and fork_is_safe()):
        return lambda: fn(*args)
    pool = multiprocessing.get_context("fork").Pool(1)
    pending = pool.apply_async(fn, args)
    pool.close()

    def result() -> Any:
        try:
            return pending.get()
        finally:
            pool.join()

    return result
