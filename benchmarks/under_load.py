"""Steady under load: LeNet training steps alone and beside one competing busy process.

    ./run python benchmarks/under_load.py [--steps 100] [--repeats 3] [--policies spin,passive]

Each measurement is a fresh process (OpenMP reads its settings when torch is imported) that
trains the textbook LeNet on MNIST (batch 100, Adam, cnnkit's default precision) for
``--steps`` steps after a warm-up, and prints the seconds those steps took. It runs once on
the quiet machine and once beside one competing process that keeps one core busy (a Python
loop), for each way of running torch's threads:

- ``spin``: libgomp's default, threads spin-wait for work between parallel regions;
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, threads sleep between regions;
- ``spincount-N``: ``GOMP_SPINCOUNT=N``, threads spin N iterations, then sleep;
- ``1-thread``: ``OMP_NUM_THREADS=1``;
- ``cnnkit``: what ``cnnkit train`` runs with by default (its start-up settings, and
  ``fit`` following the load with its thread count: :mod:`cnnkit.train.threads`).

All but ``cnnkit`` pin the thread count with ``OMP_NUM_THREADS``. The ratio loaded/quiet is
the figure of merit (a fair share of 2 cores shared with one busy process is 2x); the quiet
time against spin's is its price. Medians over repeats, the cases interleaved. Run it on an
otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator

from common import describe_machine, load_average, markdown_table, median, write_section

HEADERS = ["threads", "quiet ms/step", "loaded ms/step", "loaded / quiet", "quiet vs spin"]
CHOSEN = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")
CORES = str(len(os.sched_getaffinity(0)))
POLICIES: dict[str, dict[str, str]] = {
    "spin": {"OMP_NUM_THREADS": CORES},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": CORES},
    **{
        f"spincount-{n}": {"GOMP_SPINCOUNT": str(n), "OMP_NUM_THREADS": CORES}
        for n in (1000, 10000, 100000)
    },
    "1-thread": {"OMP_NUM_THREADS": "1"},
    "cnnkit": {},
}
DEFAULT_POLICIES = "spin,passive,cnnkit"
WORKER = """
import json, sys, time
if sys.argv[2] == "cnnkit":
    command, sys.argv = sys.argv, ["cnnkit", "train"]
    import cnnkit.cli  # the start-up settings of the command `cnnkit train`
    sys.argv = command
from cnnkit.openmp import flush_denormals
flush_denormals()  # as the command does, before torch starts its threads
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset
from cnnkit.models.registry import build_model
from cnnkit.train.callbacks import Callback
from cnnkit.train.loop import fit

steps = int(sys.argv[1])
images = load_dataset("mnist").train.subset(range(100 * (steps + 20)))
model = build_model("lenet", input_shape=(1, 28, 28), num_classes=10)
times = []

class StepClock(Callback):
    def on_train_batch_end(self, batch):
        times.append(time.perf_counter())

history = fit(model, train=images, preprocessing=Preprocessing.from_dataset(images), epochs=1,
              batch_size=100, verbose=0, callbacks=[StepClock()])
print(json.dumps([times[-1] - times[19], history.training["threads"]["steps_at"]]))
"""


@contextlib.contextmanager
def busy_process(active: bool) -> Iterator[None]:
    """One competing process keeping one core busy while the block runs."""
    if not active:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def measure(policy: str, steps: int, loaded: bool) -> tuple[float, dict[str, int]]:
    """Seconds the measured steps took, and the steps ``fit`` ran at each thread count."""
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN}
    env.update(POLICIES[policy])
    with busy_process(loaded):
        result = subprocess.run(
            [sys.executable, "-c", WORKER, str(steps), policy],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    seconds, steps_at = json.loads(result.stdout.strip().splitlines()[-1])
    return float(seconds), steps_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--policies",
        default=DEFAULT_POLICIES,
        help=f"comma-separated, of: {', '.join(POLICIES)} (spin is always measured)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    policies = ["spin"] + [p for p in args.policies.split(",") if p != "spin"]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies: {', '.join(unknown)}")
    machine = describe_machine()
    seconds: dict[tuple[str, bool], list[float]] = {}
    for repeat in range(args.repeats):
        for policy in policies:
            for loaded in (False, True):
                taken, steps_at = measure(policy, args.steps, loaded)
                seconds.setdefault((policy, loaded), []).append(taken)
                print(
                    f"repeat {repeat + 1} {policy} loaded={loaded}: {taken:.2f} s, "
                    f"steps at each thread count {steps_at}",
                    file=sys.stderr,
                    flush=True,
                )
    med = {key: median(values) for key, values in seconds.items()}
    rows = []
    for policy in policies:
        quiet, loaded = med[(policy, False)], med[(policy, True)]
        rows.append(
            [
                policy,
                f"{quiet / args.steps * 1000:.0f}",
                f"{loaded / args.steps * 1000:.0f}",
                f"{loaded / quiet:.2f}x",
                f"{quiet / med[('spin', False)]:.2f}x",
            ]
        )
    body = f"""Machine: {machine}; load at the end: {load_average()}.

LeNet on MNIST, batch 100, Adam, default precision, {args.steps} steps after 20 warm-up steps,
a fresh process per measurement; "loaded" = beside one process that keeps one core busy.
Medians over {args.repeats} repeats. spin: libgomp's default; passive: `OMP_WAIT_POLICY=PASSIVE`;
spincount-N: `GOMP_SPINCOUNT=N`; 1-thread: `OMP_NUM_THREADS=1`; cnnkit: `cnnkit train`'s
default (spinning threads, `fit` lowering their number while other processes take cores).

{markdown_table(HEADERS, rows)}
"""
    print(body)
    if not args.no_write:
        write_section("under_load", "Steady under load: OpenMP wait policy", body)


if __name__ == "__main__":
    main()
