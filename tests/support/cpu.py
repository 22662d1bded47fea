"""CPU seconds by process name, from /proc (Linux): where a benchmark's time went on this machine."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid_dir: Path) -> tuple[str, float] | None:
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # pid (comm) state ... ; comm may hold spaces and parentheses: split at the last ')'
    head, _, rest = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    try:
        return comm, (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (IndexError, ValueError):
        return None


def snapshot() -> dict[int, tuple[str, float]]:
    """pid -> (command name, CPU seconds so far) of every process."""
    out: dict[int, tuple[str, float]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            found = _proc_stat(d)
            if found is not None:
                out[int(d.name)] = found
    return out


def cpu_between(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                names: dict[int, str] | None = None) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by name (`names` renames chosen pids, e.g. the operator's);
    processes that started in between count from zero, those that ended are not seen."""
    names = names or {}
    out: dict[str, float] = {}
    for pid, (comm, seconds) in after.items():
        spent = seconds - before.get(pid, (comm, 0.0))[1]
        if spent > 0:
            key = names.get(pid, comm)
            out[key] = out.get(key, 0.0) + spent
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
