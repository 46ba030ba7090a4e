"""Steady under load: LeNet training steps alone and beside one competing busy process.

    ./run python benchmarks/under_load.py [--steps 100] [--repeats 3] [--policies spin,passive]
    ./run python benchmarks/under_load.py --arrives 3 --steps 200 --policies spin,cnnkit

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

``--arrives S`` starts the competing process S seconds into the measured steps instead, while
``fit`` already runs at full thread count, and times the steps from then on: how fast the
thread count follows a load that was not there at the start (its own RESULTS.md section).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

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
        times.append(time.time())
        if len(times) == 20:
            print("measuring", flush=True)

history = fit(model, train=images, preprocessing=Preprocessing.from_dataset(images), epochs=1,
              batch_size=100, verbose=0, callbacks=[StepClock()])
print(json.dumps([times[19:], history.training["threads"]["steps_at"]]))
"""


@contextlib.contextmanager
def busy_process(active: bool) -> Iterator[Callable[[float], None]]:
    """One competing process keeping one core busy: from the start of the block if
    ``active``, else from when the yielded ``arrive(after)`` says (``after`` seconds later);
    killed when the block ends."""
    processes: list[subprocess.Popen[bytes]] = []
    timers: list[threading.Timer] = []

    def start() -> None:
        processes.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))

    def arrive(after: float) -> None:
        timers.append(threading.Timer(after, start))
        timers[-1].start()

    if active:
        start()
    try:
        yield arrive
    finally:
        for timer in timers:
            timer.cancel()
            timer.join()
        for process in processes:
            process.kill()
            process.wait()


def measure(
    policy: str, steps: int, loaded: bool, arrives: float | None = None
) -> tuple[float, dict[str, int]]:
    """Seconds per measured step, and the steps ``fit`` ran at each thread count.

    ``arrives``: the competing process starts this many seconds after the first measured
    step, while ``fit`` runs; only the steps from then on are timed."""
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN}
    env.update(POLICIES[policy])
    command = [sys.executable, "-c", WORKER, str(steps), policy]
    with (
        busy_process(loaded and arrives is None) as arrive,
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as worker,
    ):
        lines = []
        for line in worker.stdout or ():
            if line.strip() == "measuring" and loaded and arrives is not None:
                arrive(arrives)
            lines.append(line)
    if worker.returncode:
        raise SystemExit(f"the worker failed ({worker.returncode}): {''.join(lines)[-2000:]}")
    stamps, steps_at = json.loads(lines[-1])
    if loaded and arrives is not None:
        later = [t for t in stamps if t >= stamps[0] + arrives]
        if len(later) < 10:
            raise SystemExit(f"only {len(later)} steps after the arrival: use more --steps")
        stamps = later
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), steps_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--policies",
        default=DEFAULT_POLICIES,
        help=f"comma-separated, of: {', '.join(POLICIES)} (spin is always measured)",
    )
    parser.add_argument(
        "--arrives",
        type=float,
        metavar="S",
        help="the competing process starts S seconds into the measured steps (own section)",
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
                taken, steps_at = measure(policy, args.steps, loaded, args.arrives)
                seconds.setdefault((policy, loaded), []).append(taken)
                print(
                    f"repeat {repeat + 1} {policy} loaded={loaded}: {taken * 1000:.0f} ms/step, "
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
                f"{quiet * 1000:.0f}",
                f"{loaded * 1000:.0f}",
                f"{loaded / quiet:.2f}x",
                f"{quiet / med[('spin', False)]:.2f}x",
            ]
        )
    arrival = (
        ""
        if args.arrives is None
        else f"The competing process starts {args.arrives:g} s into the measured steps, while "
        f'`fit` runs; "loaded" times only the steps from then on (the reaction included). '
    )
    body = f"""Machine: {machine}; load at the end: {load_average()}.

LeNet on MNIST, batch 100, Adam, default precision, {args.steps} steps after 20 warm-up steps,
a fresh process per measurement; "loaded" = beside one process that keeps one core busy.
{arrival}Medians over {args.repeats} repeats. spin: libgomp's default; passive:
`OMP_WAIT_POLICY=PASSIVE`; spincount-N: `GOMP_SPINCOUNT=N`; 1-thread: `OMP_NUM_THREADS=1`;
cnnkit: `cnnkit train`'s default (spinning threads, `fit` lowering their number while other
processes take cores).

{markdown_table(HEADERS, rows)}
"""
    print(body)
    if args.no_write:
        return
    if args.arrives is None:
        write_section("under_load", "Steady under load: OpenMP wait policy", body)
    else:
        write_section("under_load_midrun", "Steady under load: a competitor arriving mid-run", body)


if __name__ == "__main__":
    main()
