"""Bounded parallel transfers for the loader: the first failure stops the others (through `stop`), and a
progress line is printed while the rest runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

PROGRESS_EVERY = 5.0  # seconds between progress lines during a long transfer


def run_all(
    items: Sequence[T],
    one: Callable[[T], int],
    *,
    workers: int,
    stop: threading.Event,
    progress: Callable[[int, int], None],
    name: str = "fetch",
) -> int:
    """Run `one` over `items` on at most `workers` threads; the sum of what they return (bytes). The first
    exception sets `stop`, cancels what has not started and is raised; `progress(done, total_bytes)` is called
    about every :data:`PROGRESS_EVERY` seconds while some are still running."""
    total = done = 0
    last = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1)), thread_name_prefix=name) as pool:
        pending: set[Future[int]] = {pool.submit(one, item) for item in items}
        try:
            while pending:
                finished, pending = wait(pending, timeout=PROGRESS_EVERY, return_when=FIRST_EXCEPTION)
                for fut in finished:
                    failure = fut.exception()
                    if failure is not None:
                        raise failure
                    total += fut.result()
                    done += 1
                now = time.monotonic()
                if pending and now - last >= PROGRESS_EVERY:
                    progress(done, total)
                    last = now
        except BaseException:
            stop.set()
            for fut in pending:
                fut.cancel()
            raise
    return total
