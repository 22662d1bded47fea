"""Fault injection for crash tests: `MODELHUB_FAILPOINT=<name>[:<n>]` kills the process with SIGKILL the n-th time
(default: first) the code passes the named point. Unset (always, outside tests), a failpoint is one dict lookup.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

_passes: Counter[str] = Counter()


def hit(name: str) -> None:
    spec = os.environ.get("MODELHUB_FAILPOINT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passes[name] += 1
    if _passes[name] >= int(nth or 1):
        sys.stderr.write(f"failpoint {spec}: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
