"""Settings of torch's CPU threads for the cnnkit command: how idle threads wait for work,
and flushing denormal floats to zero.

libgomp (the OpenMP runtime in torch's CPU wheels) lets idle threads spin for a while before
they sleep. On a quiet machine that saves the wake-up at each of the thousands of parallel
regions of a training step; beside another busy process the spinning threads take the cores it
needs, and every region waits for a thread that is not running. Measured on 2 cores
(benchmarks/under_load.py, LeNet training steps, medians of 3 fresh processes, quiet / beside
one busy process): spinning 37 / 115 ms, sleeping (``OMP_WAIT_POLICY=PASSIVE``) 39 / 70 ms,
one thread 50 / 55 ms; in an earlier run spinning 30 / 131, sleeping 39 / 74, and
``GOMP_SPINCOUNT=10000`` (spin a while, then sleep) 44 / 92: no better than either. One-image
prediction beside other jobs took 48 ms spinning against 2.5 ms sleeping.

So the ``cnnkit`` command asks for sleeping threads (``OMP_WAIT_POLICY=PASSIVE``, before
torch is imported), except in the commands that train (``train``, ``finetune``): their
threads spin, and ``fit`` lowers the thread count while other processes take cores
(:mod:`cnnkit.train.threads`): 36 / 59 ms per step in the run above, the quiet speed of
spinning threads and under load better than sleeping ones. A policy the user chose
(``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set) is kept. Importing cnnkit as a library sets
no policy (set the variable before importing torch for one); ``fit`` adapts its thread count
there too.

Denormal floats (below 1.2e-38) are microcoded on x86 and far slower than other numbers.
Adam's moment estimates for weights whose gradient stays zero (dead ReLU units, inputs that
are always zero) decay geometrically into them within a few hundred steps: on the textbook
LeNet 0.7M of its 6.5M moments were denormal from the 2nd epoch on, and epochs took 21-24 s
instead of 16 s (benchmarks/lenet_speed.py). The command therefore flushes them to zero
(``torch.set_flush_denormal``) before torch starts its threads: the setting is per thread,
threads inherit it when they start, and ones already running keep theirs. Flushing changes
no result a float32 or bfloat16 model can show (same accuracy to 4 digits on LeNet).

``fit`` itself flushes them while it trains on a CPU (:func:`denormals_flushed`, as TensorFlow
does): in a notebook or script that reaches the calling thread and threads started during
training, and the setting found on entry is put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

USER_CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
#: the commands that train: their threads spin, and ``fit`` adapts their number to the load
TRAINING_COMMANDS = ("train", "finetune")


def prefer_sleeping_threads(command: str | None) -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when torch is not imported yet, the user chose no
    policy and ``command`` (the subcommand about to run) does not train; otherwise leave
    everything as it is (OpenMP reads it once, at start-up)."""
    if "torch" in sys.modules or any(name in os.environ for name in USER_CHOICES):
        return
    if command in TRAINING_COMMANDS:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def subcommand(argv: list[str]) -> str | None:
    """The subcommand in a ``cnnkit`` command line (its global options are all flags)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), None)


def wait_policy() -> str:
    """The policy this process's OpenMP threads run with, for the run card."""
    for name in USER_CHOICES:
        if name in os.environ:
            return f"{name}={os.environ[name]}"
    return "spin (libgomp default)"


def flush_denormals() -> None:
    """Have this thread, and the threads torch starts from now on, flush denormals to zero;
    call before torch's first parallel operation (threads already running keep their setting).
    """
    import torch

    torch.set_flush_denormal(True)


def flushes_denormals() -> bool:
    """Whether every one of torch's CPU threads flushes denormals to zero: a product that
    lands in the denormal range, computed in parallel, comes out zero everywhere."""
    import torch

    tiny = torch.full((torch.get_num_threads() * 65536,), 1e-30)
    return bool(((tiny * 1e-10) == 0).all())


@contextlib.contextmanager
def denormals_flushed(*, enabled: bool = True) -> Iterator[None]:
    """A context in which this thread (and threads started inside it) flushes denormal
    floats to zero; on exit the thread's setting is what it was on entry.

    Measured (cnnkit.keras, the video lesson's MLPs, Adam): steps took 2 ms in the first
    epoch and 4-5 ms from the second on, as the decayed moments reached the denormal range;
    flushed, every epoch runs at 2 ms.
    """
    import torch

    if not enabled:
        yield
        return
    was = _this_thread_flushes()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported and not was:
            torch.set_flush_denormal(False)


def _this_thread_flushes() -> bool:
    import torch

    return bool((torch.tensor([1e-39]) * 1.0).item() == 0.0)  # 1e-39: a float32 denormal
