"""Benchmarks (ii) and (iii): time to accuracy for the recipes, median over seeds.

For each recipe and seed it runs the recipe exactly as ``cnnkit train --recipe NAME
--seed S`` does, evaluates the test split after every epoch (outside the timed training)
and records the training time until test accuracy first reaches each threshold, the final
test accuracy and the total training time. Medians over the seeds; "n/N" says in how many
seeds a threshold was reached.

    ./run python benchmarks/time_to_accuracy.py                           # 5 seeds
    ./run python benchmarks/time_to_accuracy.py --recipes mnist-fast --seeds 2
"""

from __future__ import annotations

import argparse
import tempfile

from common import describe_machine, load_average, markdown_table, median, write_section

from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset
from cnnkit.models.forward import loss_and_accuracy
from cnnkit.train.callbacks import Callback, Logs
from cnnkit.train.job import TrainConfig, run_training
from cnnkit.train.recipes import get_recipe

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


def run_recipe(name: str, seeds: list[int], epochs: int | None, device: str = "cpu") -> list[str]:
    recipe = get_recipe(name)
    data = recipe.settings.get("data", "mnist")
    thresholds = THRESHOLDS.get(data, (0.99, 0.995))
    finals, totals = [], []
    reached: dict[float, list[float]] = {t: [] for t in thresholds}
    for seed in seeds:
        overrides = {"seed": seed, "device": device} | ({"epochs": epochs} if epochs else {})
        with tempfile.TemporaryDirectory() as runs:
            config = TrainConfig.from_recipe(name, runs_dir=runs, **overrides)
            probe = TestAccuracyEachEpoch(config.data, seed, config.val_size)
            result = run_training(config, callbacks=[probe])
        finals.append(result.metrics["test"]["accuracy"])
        totals.append(sum(row["time"] for row in result.history))
        for threshold in thresholds:
            seconds = time_to(probe.curve, threshold)
            if seconds is not None:
                reached[threshold].append(seconds)
        print(
            f"{name} seed {seed}: test {finals[-1] * 100:.2f}% in {totals[-1]:.1f}s "
            f"({result.training['precision']}); curve "
            + ", ".join(f"{s:.1f}s {a * 100:.2f}%" for s, a in probe.curve),
            flush=True,
        )
    row = [name, data, str(result.history[-1]["epoch"])]
    for threshold in thresholds:
        times = reached[threshold]
        shown = f"{median(times):.1f} s" if times else "not reached"
        row.append(f"{shown} ({len(times)}/{len(seeds)})")
    row += [f"{median(finals) * 100:.2f}%", f"{min(finals) * 100:.2f}%", f"{median(totals):.1f}"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--recipes", nargs="+", default=["mnist-fast", "mnist-best", "fashion-best"]
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's")
    args = parser.parse_args()

    machine = describe_machine()
    print(machine, flush=True)
    rows = [run_recipe(name, list(range(args.seeds)), args.epochs) for name in args.recipes]
    table = markdown_table(
        [
            "recipe",
            "data",
            "epochs",
            "time to 99.0% / 90% (Fashion)",
            "time to 99.5% / 93% (Fashion)",
            "median test acc.",
            "worst seed",
            "median train s",
        ],
        rows,
    )
    body = (
        f"Machine: {machine}; load at the end: {load_average()}.\n\n"
        f"Each recipe run as `cnnkit train --recipe NAME --seed S` for seeds 0..{args.seeds - 1}"
        + (f" with --epochs {args.epochs}" if args.epochs else "")
        + "; times are training seconds (validation included where the recipe validates, "
        "test evaluation excluded) until the test accuracy after an epoch first reached the "
        "threshold, median over the seeds that reached it (count in brackets).\n\n" + table
    )
    print("\n" + body)
    write_section(
        "time_to_accuracy_" + "_".join(args.recipes).replace("-", "_"),
        "(ii)/(iii) Time to accuracy: " + ", ".join(args.recipes),
        body,
    )


if __name__ == "__main__":
    main()
