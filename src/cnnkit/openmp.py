"""How torch's OpenMP threads wait for work: sleeping, not spinning, for the cnnkit command.

libgomp (the OpenMP runtime in torch's CPU wheels) lets idle threads spin for a while before
they sleep. On a machine with cores to spare that saves a little latency; on a shared one
the spinning threads take the cores other processes need, and every small operation waits
for a thread that is not running: measured on 2 cores beside other jobs, one LeNet training
step took 334 ms spinning against 68 ms sleeping, and one-image prediction 48 ms against
2.5 ms (benchmarks/under_load.py). The ``cnnkit`` command therefore asks for
``OMP_WAIT_POLICY=PASSIVE`` before torch is imported, unless the user chose a policy
(``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set). Importing cnnkit as a library changes
nothing: set the variable before importing torch to get the same.
"""

from __future__ import annotations

import os
import sys

USER_CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def prefer_sleeping_threads() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when torch is not imported yet and the user chose no
    policy; otherwise leave everything as it is (OpenMP reads it once, at start-up)."""
    if "torch" in sys.modules or any(name in os.environ for name in USER_CHOICES):
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def wait_policy() -> str:
    """The policy this process's OpenMP threads run with, for the run card."""
    for name in USER_CHOICES:
        if name in os.environ:
            return f"{name}={os.environ[name]}"
    return "spin (libgomp default)"
