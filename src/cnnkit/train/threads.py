"""Torch's CPU threads while ``fit`` trains: as many as the cores other processes leave free.

Torch's OpenMP threads meet at a barrier at the end of every parallel region (thousands per
LeNet step). Beside a busy process one of them is often descheduled and the others wait for
it. Spinning while they wait (libgomp's default, the fastest on a quiet machine) makes it
worse: on 2 cores beside one busy process a LeNet step took 115 ms against 37 ms quiet;
sleeping threads took 70 against 39 ms (benchmarks/under_load.py). One thread has no barrier
to wait at: on the core the other process leaves free it took 55 ms. Adapting as below, with
spinning threads, steps took 36 ms quiet and 59 ms beside the busy process (1.66x).

So while training, every half second of steps :class:`AdaptiveThreads` reads how busy the
process's CPUs were (``/proc/stat``) less what this process used (its CPU time): the cores
other processes took. The thread count becomes the cores they leave free, rounded, between 1
and the count training started with, once two readings in a row agree; when the other
process ends, the count goes back up the same way, and it is put back when training ends.

It stays off where it cannot help or must not meddle: training on a GPU, one thread to start
with, the user chose the count (``OMP_NUM_THREADS``), or ``/proc/stat`` cannot be read (not
Linux). What it did goes in the run card (``training.threads``). A different thread count can
split a reduction differently and change the last bits of a result, so a seeded run beside
other processes may not repeat bit for bit; set ``OMP_NUM_THREADS`` for a fixed count.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds of training between readings
AGREEING = 2  # readings in a row that must ask for the same count before it changes
USER_CHOICE = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class CpuTimes:
    """A reading: wall-clock seconds, CPU-seconds the process's CPUs were busy (every
    process), CPU-seconds this process used."""

    wall: float
    busy: float
    own: float


def read_cpu_times(stat: Path = Path("/proc/stat")) -> CpuTimes | None:
    """This moment's :class:`CpuTimes` over the CPUs this process may run on; None where
    ``/proc/stat`` cannot be read."""
    cpus = {f"cpu{n}" for n in _cpus()}
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if name in cpus:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
            busy += user + nice + system + irq + softirq
    return CpuTimes(wall=time.monotonic(), busy=busy / ticks, own=time.process_time())


def others_cores(before: CpuTimes, after: CpuTimes) -> float:
    """Cores other processes kept busy between two readings, on average."""
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / wall)


class AdaptiveThreads:
    """Sets torch's thread count to the cores other processes leave free; call
    :meth:`after_step` after every training step inside :meth:`adapting`."""

    def __init__(
        self,
        most: int,
        cores: int,
        *,
        off: str | None = None,
        read: Callable[[], CpuTimes | None] = read_cpu_times,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.most, self.cores, self.off = most, cores, off
        self._read, self._set, self._clock = read, set_threads, clock
        self.threads = most
        self.steps: Counter[int] = Counter()
        self._last: CpuTimes | None = None
        self._due = 0.0
        self._asked: list[int] = []

    @classmethod
    def for_training(cls, device: torch.device) -> AdaptiveThreads:
        """On for CPU training unless the user chose the count or it cannot work here."""
        most, cores = torch.get_num_threads(), len(_cpus())
        off = None
        if device.type != "cpu":
            off = f"training on {device.type}"
        elif USER_CHOICE in os.environ:
            off = f"{USER_CHOICE}={os.environ[USER_CHOICE]}"
        elif most < 2:
            off = "one thread"
        elif read_cpu_times() is None:
            off = "/proc/stat unreadable"
        return cls(most, cores, off=off)

    @contextlib.contextmanager
    def adapting(self) -> Iterator[AdaptiveThreads]:
        """Readings start here; the thread count found on entry is put back on exit."""
        if self.off is None:
            self._last = self._read()
            self._due = self._clock() + INTERVAL
        try:
            yield self
        finally:
            if self.threads != self.most:
                self._set(self.most)
                self.threads = self.most

    def after_step(self) -> None:
        """Count the step; every :data:`INTERVAL` seconds read the CPUs and follow them."""
        self.steps[self.threads] += 1
        if self.off is not None or self._clock() < self._due:
            return
        reading = self._read()
        if reading is None or self._last is None:
            return
        others = others_cores(self._last, reading)
        self._last, self._due = reading, self._clock() + INTERVAL
        wanted = min(self.most, max(1, int(self.cores - others + 0.5)))
        self._asked = [*self._asked, wanted][-AGREEING:]
        log.debug("other processes used %.2f cores: %d threads wanted", others, wanted)
        if wanted != self.threads and self._asked == [wanted] * AGREEING:
            self._set(wanted)
            self.threads = wanted

    def record(self) -> dict[str, Any]:
        """For the run card: adaptive or why not, the starting count, steps at each count."""
        return {
            "adaptive": self.off is None,
            "off_because": self.off,
            "most": self.most,
            "steps_at": {str(n): self.steps[n] for n in sorted(self.steps, reverse=True)},
        }


def _cpus() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))
