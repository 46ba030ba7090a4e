"""Benchmarks (ii) and (iii): time to accuracy for the recipes, median over seeds.

For each recipe and seed it runs the recipe exactly as ``cnnkit train --recipe NAME
--seed S`` does, evaluates the test split after every epoch (outside the timed training)
and records the training time until test accuracy first reaches each threshold, the final
test accuracy and the total training time. Medians over the seeds; "n/N" says in how many
seeds a threshold was reached.

The peer, measured in the same run: the hand-tuned PyTorch loop of benchmarks/lenet_speed.py
(the textbook LeNet, batch 100, Adam 1e-3, resident data, the default precision's autocast,
channels_last, fused Adam), its test accuracy taken after each epoch the same way; the
issue's targets compare the recipes against its time to 99.0% and against the time its
first 2 epochs take. Like the ``cnnkit`` command, the process flushes denormal floats to zero
before torch starts its threads; the peer, in the same process, gets that too (its later
epochs would be slower without it), so the comparison does not flatter cnnkit.

    ./run python benchmarks/time_to_accuracy.py                           # 5 seeds
    ./run python benchmarks/time_to_accuracy.py --recipes mnist-fast --seeds 2 --peer-seeds 0
"""

from __future__ import annotations

import argparse
import tempfile
from itertools import accumulate

import torch
from common import describe_machine, load_average, markdown_table, median, write_section
from lenet_speed import DTYPES, FULL_STEPS, epochs_hand_tuned

from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset
from cnnkit.models.forward import loss_and_accuracy
from cnnkit.openmp import flush_denormals
from cnnkit.train.callbacks import Callback, Logs
from cnnkit.train.job import TrainConfig, run_training
from cnnkit.train.precision import resolve_precision
from cnnkit.train.recipes import get_recipe

HEADERS = [
    "recipe",
    "data",
    "epochs",
    "time to 99.0% / 90% (Fashion)",
    "time to 99.5% / 93% (Fashion)",
    "median test acc.",
    "worst seed",
    "median train s",
]
THRESHOLDS = {"mnist": (0.990, 0.995), "fashion-mnist": (0.90, 0.93)}


class TestAccuracyEachEpoch(Callback):
    """Measures test accuracy after each epoch; ``logs['time']`` excludes this work."""

    def __init__(self, data: str, seed: int, val_size: int | float | None) -> None:
        splits = load_dataset(data, val_size=val_size, seed=seed)
        self.test, self.pre = splits.test, Preprocessing.from_dataset(splits.train)
        self.curve: list[tuple[float, float]] = []  # (cumulative train seconds, accuracy)
        self.elapsed = 0.0

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self.elapsed += logs["time"]
        model = self.state.model
        device = next(model.parameters()).device
        metrics = loss_and_accuracy(model, self.test, preprocessing=self.pre, device=device)
        self.curve.append((self.elapsed, metrics["accuracy"]))


def time_to(curve: list[tuple[float, float]], threshold: float) -> float | None:
    return next((seconds for seconds, accuracy in curve if accuracy >= threshold), None)


def summary_row(
    name: str,
    data: str,
    epochs: int,
    curves: list[list[tuple[float, float]]],
    finals: list[float],
    totals: list[float],
) -> list[str]:
    """One table row: median time to each threshold (count reached), accuracies, train s."""
    row = [name, data, str(epochs)]
    for threshold in THRESHOLDS.get(data, (0.99, 0.995)):
        times = [t for t in (time_to(curve, threshold) for curve in curves) if t is not None]
        shown = f"{median(times):.1f} s" if times else "not reached"
        row.append(f"{shown} ({len(times)}/{len(curves)})")
    row += [f"{median(finals) * 100:.2f}%", f"{min(finals) * 100:.2f}%", f"{median(totals):.1f}"]
    return row


def run_peer(seeds: list[int], epochs: int) -> tuple[list[str], float, float | None]:
    """The hand-tuned LeNet loop: its row, the median time of its first 2 epochs and its
    median time to 99.0% (None when no seed reached it)."""
    cpu = torch.device("cpu")
    splits = load_dataset("mnist", seed=0)  # 55,000 training images, as lenet_speed.py
    pre = Preprocessing.from_dataset(splits.train)
    dtype = DTYPES[resolve_precision("auto", cpu).name]
    curves, finals, totals, two_epochs = [], [], [], []
    for seed in seeds:
        accuracies: list[float] = []

        def evaluate(model: torch.nn.Module, out: list[float] = accuracies) -> None:
            out.append(loss_and_accuracy(model, splits.test, preprocessing=pre)["accuracy"])

        times = epochs_hand_tuned(
            splits.train, pre, FULL_STEPS, cpu, epochs, dtype=dtype, seed=seed, on_epoch=evaluate
        )
        curves.append(list(zip(accumulate(times), accuracies, strict=True)))
        finals.append(accuracies[-1])
        totals.append(sum(times))
        two_epochs.append(sum(times[:2]))
        print(
            f"peer seed {seed}: " + ", ".join(f"{s:.1f}s {a * 100:.2f}%" for s, a in curves[-1]),
            flush=True,
        )
    name = f"peer: hand-tuned PyTorch LeNet ({resolve_precision('auto', cpu).name})"
    row = summary_row(name, "mnist", epochs, curves, finals, totals)
    reached = [t for t in (time_to(curve, 0.99) for curve in curves) if t is not None]
    return row, median(two_epochs), median(reached) if reached else None


def run_recipe(
    name: str, seeds: list[int], epochs: int | None, device: str = "cpu", *, each_epoch: bool = True
) -> list[str]:
    """The recipe's row; ``each_epoch=False`` measures the test split after the last epoch
    only (the run's own test figure): for recipes with test-time views, whose evaluation
    costs as much as an epoch of training and whose accuracy comes at the end."""
    recipe = get_recipe(name)
    data = recipe.settings.get("data", "mnist")
    curves, finals, totals = [], [], []
    for seed in seeds:
        overrides = {"seed": seed, "device": device} | ({"epochs": epochs} if epochs else {})
        with tempfile.TemporaryDirectory() as runs:
            config = TrainConfig.from_recipe(name, runs_dir=runs, **overrides)
            probe = TestAccuracyEachEpoch(config.data, seed, config.val_size)
            result = run_training(config, callbacks=[probe] if each_epoch else [])
        finals.append(result.metrics["test"]["accuracy"])
        totals.append(sum(row["time"] for row in result.history))
        curves.append(probe.curve if each_epoch else [(totals[-1], finals[-1])])
        print(
            f"{name} seed {seed}: test {finals[-1] * 100:.2f}% in {totals[-1]:.1f}s "
            f"({result.training['precision']}); curve "
            + ", ".join(f"{s:.1f}s {a * 100:.2f}%" for s, a in curves[-1]),
            flush=True,
        )
    return summary_row(name, data, result.history[-1]["epoch"], curves, finals, totals)


def comparison(
    rows: list[list[str]], names: list[str], *, two_epochs: float, to_99: float | None
) -> str:
    """The issue's targets against the peer: time to 99.0% at most half the peer's; 99.5% and
    Fashion 93% in less than the peer's 2-epoch run."""
    lines = [
        f"Peer (median of its seeds): time to 99.0% "
        f"{'not reached' if to_99 is None else f'{to_99:.1f} s'}; its first 2 epochs "
        f"{two_epochs:.1f} s."
    ]
    for name, row in zip(names, rows, strict=True):
        for column, label in ((3, "first threshold"), (4, "second threshold")):
            shown = row[column].split(" s ")[0]
            if shown.startswith("not"):
                continue
            seconds = float(shown)
            against = f"{seconds / two_epochs:.2f}x the peer's 2 epochs"
            if column == 3 and row[1] == "mnist" and to_99:
                against = f"{seconds / to_99:.2f}x the peer's time to 99.0%, " + against
            lines.append(f"- {name}, {label} ({row[column]}): {against}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--recipes", nargs="+", default=["mnist-fast", "mnist-best", "fashion-best"]
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's")
    parser.add_argument("--peer-seeds", type=int, default=3, help="seeds of the peer; 0: none")
    parser.add_argument("--peer-epochs", type=int, default=4, help="epochs of the peer")
    parser.add_argument(
        "--curve",
        choices=["each", "last"],
        default="each",
        help="measure the test split after each epoch, or after the last only",
    )
    args = parser.parse_args()

    flush_denormals()  # as the cnnkit command does, before torch starts its threads
    machine = describe_machine()
    print(machine, flush=True)
    each = args.curve == "each"
    rows = [
        run_recipe(name, list(range(args.seeds)), args.epochs, each_epoch=each)
        for name in args.recipes
    ]
    peer = run_peer(list(range(args.peer_seeds)), args.peer_epochs) if args.peer_seeds else None
    table = markdown_table(HEADERS, rows + ([peer[0]] if peer else []))
    body = (
        f"Machine: {machine}; load at the end: {load_average()}.\n\n"
        f"Each recipe run as `cnnkit train --recipe NAME --seed S` for seeds 0..{args.seeds - 1}"
        + (f" with --epochs {args.epochs}" if args.epochs else "")
        + "; times are training seconds (validation included where the recipe validates, "
        "test evaluation excluded) until the test accuracy after an epoch first reached the "
        "threshold, median over the seeds that reached it (count in brackets)"
        + ("" if each else "; test accuracy measured after the last epoch only (--curve last)")
        + ".\n\n"
        + table
    )
    if peer is not None:
        body += "\n\n" + comparison(rows, args.recipes, two_epochs=peer[1], to_99=peer[2])
    print("\n" + body)
    write_section(
        "time_to_accuracy_" + "_".join(args.recipes).replace("-", "_"),
        "(ii)/(iii) Time to accuracy: " + ", ".join(args.recipes),
        body,
    )


if __name__ == "__main__":
    main()
