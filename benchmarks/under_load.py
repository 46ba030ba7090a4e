"""Steady under load: LeNet training steps alone and beside one competing busy process.

    ./run python benchmarks/under_load.py [--steps 100] [--repeats 3]

Each measurement is a fresh process (OpenMP reads its settings when torch is imported) that
trains the textbook LeNet on MNIST (batch 100, Adam, cnnkit's default precision) for
``--steps`` steps after a warm-up, and prints the seconds those steps took. It runs once on
the quiet machine and once beside one competing process that keeps one core busy (a Python
loop), for each OpenMP wait policy:

- ``spin``: libgomp's default, threads spin-wait for work between parallel regions;
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, threads sleep between regions — what the
  ``cnnkit`` command sets unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``.

The ratio loaded/quiet is the figure of merit (a fair share of 2 cores shared with one busy
process is 2x); passive/spin on the quiet machine is its price. Medians over repeats, the
cases interleaved. Run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from common import describe_machine, load_average, markdown_table, median, write_section

HEADERS = ["OpenMP wait", "quiet ms/step", "loaded ms/step", "loaded / quiet", "quiet vs spin"]
POLICIES = {"spin": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
WORKER = """
import sys, time
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

fit(model, train=images, preprocessing=Preprocessing.from_dataset(images), epochs=1,
    batch_size=100, verbose=0, callbacks=[StepClock()])
print(times[-1] - times[19])
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


def measure(policy: str, steps: int, loaded: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    with busy_process(loaded):
        result = subprocess.run(
            [sys.executable, "-c", WORKER, str(steps)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    machine = describe_machine()
    seconds: dict[tuple[str, bool], list[float]] = {}
    for repeat in range(args.repeats):
        for policy in POLICIES:
            for loaded in (False, True):
                taken = measure(policy, args.steps, loaded)
                seconds.setdefault((policy, loaded), []).append(taken)
                print(
                    f"repeat {repeat + 1} {policy} loaded={loaded}: {taken:.2f} s", file=sys.stderr
                )
    med = {key: median(values) for key, values in seconds.items()}
    rows = []
    for policy in POLICIES:
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
Medians over {args.repeats} repeats.

{markdown_table(HEADERS, rows)}
"""
    print(body)
    if not args.no_write:
        write_section("under_load", "Steady under load: OpenMP wait policy", body)


if __name__ == "__main__":
    main()
