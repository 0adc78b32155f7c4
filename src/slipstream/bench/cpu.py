"""How much of the machine something else used while a pair ran: the bench shares two cores
with whatever else runs (another engineer's tests), and a figure taken under load says so.

Other = all CPU time the kernel counts as busy, minus the bench's own (this process, its
servers, workers, load generators and moto), minus the servers the pair talks to (NATS,
PostgreSQL), whose work is the pair's. It errs low: another client's PostgreSQL backends count
as the pair's. Linux only (/proc); None elsewhere."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

UNDER_LOAD = 0.25  # cores: above this, the pair's figures are marked as taken under load
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait)


@dataclass(frozen=True)
class CpuSample:
    wall: float
    busy: float  # seconds of CPU, all cores, since boot
    ours: float  # this process and its waited-for children
    services: float  # the named server processes


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def system_busy(stat: str) -> float:
    """Busy CPU seconds from the `cpu` line of /proc/stat (in clock ticks there)."""
    fields = [float(v) for v in stat.splitlines()[0].split()[1:]]
    return sum(fields[i] for i in _BUSY_FIELDS if i < len(fields)) / _ticks()


def process_cpu(stat: str) -> float:
    """utime + stime, in seconds, of one /proc/PID/stat (its name may hold spaces and ')')."""
    fields = stat.rsplit(")", 1)[1].split()
    return (float(fields[11]) + float(fields[12])) / _ticks()


def services_cpu(names: Iterable[str]) -> float:
    wanted = set(names)
    total = 0.0
    if not wanted:
        return total
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in wanted:
                total += process_cpu((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return total


def _pid_cpu(pid: int) -> float:
    try:
        return process_cpu(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return 0.0


def sample(services: Iterable[str] = (), children: Iterable[int] = ()) -> CpuSample | None:
    """`children`: the bench's processes still running (not yet waited for, so not in
    os.times()); take both samples while the same ones run."""
    try:
        busy = system_busy(Path("/proc/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    ours += sum(_pid_cpu(pid) for pid in children)
    return CpuSample(time.monotonic(), busy, ours, services_cpu(services))


def other_cores(before: CpuSample | None, after: CpuSample | None) -> float | None:
    """Cores' worth of CPU that neither the bench nor the pair's servers used in between."""
    if before is None or after is None or after.wall <= before.wall:
        return None
    other = (after.busy - before.busy) - (after.ours - before.ours)
    other -= after.services - before.services
    return max(0.0, other / (after.wall - before.wall))
