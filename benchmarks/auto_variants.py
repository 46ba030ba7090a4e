"""Changes to the auto setup, measured: does any of them widen its margin on small grey folders?

Trains the auto setup (:func:`cnnkit.train.config.auto_config`) on folders of
``benchmarks/folders.py`` with one change at a time (or a few together) and reports test
accuracy per variant, median over seeds, beside the unchanged setup (``auto``). The variants
are what one would try on 28x28 grey pictures: more steps, mirroring with test-time flip
averaging, no rotation, SGD with Nesterov momentum and weight decay, mixup, CutMix,
another input side (28 read at 32 or 40; mixed read at 24, as before), an average of the
weights (EMA), a wider net.

Results per (folder, variant, seed) are kept in the folders benchmark's store, so chunks
add up (one per turn of the CPU lock):

    ./run python benchmarks/auto_variants.py --folders fashion-200 --variants auto side-32 --seeds 0
    ./run python benchmarks/auto_variants.py --table      # the table of what is stored

The stored results are variants of one version of the auto setup, :data:`BASELINE`; after
changing :mod:`cnnkit.train.auto`, say what changed there and start again with ``--fresh``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import torch
from common import markdown_table, median, write_section
from folders import FOLDERS, STORE, build

from cnnkit.train.auto import _with_size
from cnnkit.train.callbacks import Callback

STORED = STORE / "variants-2.json"  # round 2; round 1 (variants.json) is in RESULTS.md's history
BASELINE = (
    "the auto setup of commit 2e8153d: fastnet width 32, pictures under 32 px read at 32, at "
    "least 1,000 optimizer steps, one-cycle Adam (peak lr 0.005), label smoothing 0.1, no "
    "early stopping on these small validation splits, grey pictures shifted up to 2 px and "
    "rotated up to 10 degrees, no flips. Round 1 (variants of commit 88cc2ec, which read 28 px "
    "at 28; in RESULTS.md's history) gave on fashion-200: side-32 +0.7 (taken), side-40 +0.9, "
    "steps-2x +0.7, sgd-nesterov +0.5, width-48 +0.5, no-rotate +0.2, flip-tta -0.2, EMA -0.2, "
    "mixup -0.5, CutMix -1.8. From this round the auto setup took "
    "`sgd-nesterov-wd-1e-3-erase-steps-2x-width-48` (its 3 seeds on every folder are in the "
    "`folders` table)"
)
# name -> changes to the auto setup; "_epochs_x" multiplies its epochs, "_augment_add" appends
# to its augmentation, "_augment_drop" removes steps starting with these names, "_side" reads
# the folder at that side, "_ema" averages the weights (decay per step) and tests with the
# average; model_options are merged into its own
FLIP_TTA: dict[str, Any] = {"_augment_add": ["flip"], "model_options": {"tta_flip": True}}
SGD: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "auto": {},
    "steps-2x": {"_epochs_x": 2},
    "flip-tta": FLIP_TTA,
    "no-rotate": {"_augment_drop": ["rotate"]},
    "no-rotate-flip-tta": {"_augment_drop": ["rotate"], **FLIP_TTA},
    "sgd-nesterov": SGD,
    "cutmix": {"_augment_add": ["cutmix:1.0"]},
    "mixup": {"_augment_add": ["mixup:0.2"]},
    "side-24": {"_side": 24},  # mixed: what the auto setup of 88cc2ec read it at
    "side-32": {"_side": 32},
    "side-40": {"_side": 40},
    "side-32-sgd-nesterov": {"_side": 32, **SGD},
    "side-32-sgd-nesterov-no-rotate": {"_side": 32, "_augment_drop": ["rotate"], **SGD},
    "side-32-sgd-nesterov-flip-tta": {"_side": 32, **SGD, **FLIP_TTA},
    "ema": {"_ema": 0.99},
    "width-48": {"model_options": {"width": 48}},
    # round 2 (fashion-200's margin): random erasing, test-time shifts, combinations
    "erase": {"_augment_add": ["erase:p=0.5"]},
    "erase-steps-2x": {"_augment_add": ["erase:p=0.5"], "_epochs_x": 2},
    "tta-shift": {"model_options": {"tta_shift": 1}},
    "side-48": {"_side": 48},
    "flip-erase-steps-2x": {"_augment_add": ["flip", "erase:p=0.5"], "_epochs_x": 2},
    "width-48-steps-2x": {"model_options": {"width": 48}, "_epochs_x": 2},
    "sgd-nesterov-steps-2x": {**SGD, "_epochs_x": 2},
    "sgd-nesterov-wd-2e-3": {**SGD, "weight_decay": 2e-3},
    "adamw-wd-0.05": {"optimizer": "adamw", "weight_decay": 0.05},
    "adamw-wd-0.2": {"optimizer": "adamw", "weight_decay": 0.2},
    "no-val": {"val_size": 0},  # the 10% validation split (too small to stop on) trains too
    "sgd-nesterov-steps-3x": {**SGD, "_epochs_x": 3},
    "sgd-nesterov-wd-1e-3-steps-2x": {**SGD, "weight_decay": 1e-3, "_epochs_x": 2},
    "sgd-nesterov-erase-steps-2x": {**SGD, "_augment_add": ["erase:p=0.5"], "_epochs_x": 2},
    "sgd-nesterov-steps-2x-no-val": {**SGD, "_epochs_x": 2, "val_size": 0},
    "sgd-nesterov-wd-1e-3-erase-steps-2x": {
        **SGD,
        "weight_decay": 1e-3,
        "_augment_add": ["erase:p=0.5"],
        "_epochs_x": 2,
    },
    "sgd-nesterov-wd-1e-3-erase-steps-2x-width-48": {
        **SGD,
        "weight_decay": 1e-3,
        "_augment_add": ["erase:p=0.5"],
        "_epochs_x": 2,
        "model_options": {"width": 48},
    },
    "sgd-nesterov-wd-1e-3-erase-steps-2x-side-40": {
        **SGD,
        "weight_decay": 1e-3,
        "_augment_add": ["erase:p=0.5"],
        "_epochs_x": 2,
        "_side": 40,
    },
    "sgd-nesterov-wd-1e-3-erase-steps-2x-no-val": {
        **SGD,
        "weight_decay": 1e-3,
        "_augment_add": ["erase:p=0.5"],
        "_epochs_x": 2,
        "val_size": 0,
    },
    "strong-steps-3x": {
        "_augment_add": ["zoom:min_factor=0.9,max_factor=1.15", "shear:8", "erase:p=0.5"],
        "_epochs_x": 3,
    },
    "no-val-erase-steps-2x-sgd": {
        "val_size": 0,
        "_augment_add": ["erase:p=0.5"],
        "_epochs_x": 2,
        **SGD,
    },
    "no-val-erase-steps-2x-width-48": {
        "val_size": 0,
        "_augment_add": ["erase:p=0.5"],
        "_epochs_x": 2,
        "model_options": {"width": 48},
    },
}


class WeightAverage(Callback):
    """An exponential moving average of the weights (and BatchNorm statistics), one update
    per optimizer step; at the end of training the model takes the average."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.average: dict[str, torch.Tensor] = {}

    def on_train_begin(self) -> None:
        self.average = {k: v.detach().clone() for k, v in self.state.model.state_dict().items()}

    def on_train_batch_end(self, batch: int) -> None:
        with torch.no_grad():
            for key, value in self.state.model.state_dict().items():
                if value.is_floating_point():
                    self.average[key].lerp_(value, 1 - self.decay)
                else:
                    self.average[key].copy_(value)

    def on_train_end(self) -> None:
        self.state.model.load_state_dict(self.average)


def configure(source: str, seed: int, variant: str, runs: str) -> Any:
    """The auto setup's TrainConfig for ``source`` with ``variant``'s changes on top."""
    from cnnkit.train.config import auto_config

    given: dict[str, Any] = {"data": source, "seed": seed, "device": "cpu", "runs_dir": runs}
    base = auto_config(given)[0]
    changes = dict(VARIANTS[variant])
    values = {k: v for k, v in changes.items() if not k.startswith("_")}
    if "_epochs_x" in changes:
        values["epochs"] = base.epochs * changes["_epochs_x"]
    augment = [
        step
        for step in base.augment
        if not any(str(step).startswith(name) for name in changes.get("_augment_drop", ()))
    ]
    if "_augment_add" in changes or "_augment_drop" in changes:
        values["augment"] = augment + changes.get("_augment_add", [])
    if "_side" in changes:
        given["data"] = _with_size(source, (changes["_side"], changes["_side"]))
    if "model_options" in values:
        values["model_options"] = {**base.model_options, **values["model_options"]}
    return auto_config({**given, **values})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folders", nargs="+", default=["mnist-50"], choices=list(FOLDERS))
    parser.add_argument("--variants", nargs="+", default=["auto"], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--table", action="store_true", help="train nothing: write the table of stored results"
    )
    parser.add_argument("--fresh", action="store_true", help="forget the stored results")
    args = parser.parse_args()

    from cnnkit.train.job import run_training

    STORE.mkdir(parents=True, exist_ok=True)
    results = json.loads(STORED.read_text()) if STORED.exists() and not args.fresh else {}
    if not args.table:
        with tempfile.TemporaryDirectory() as runs:
            for name in args.folders:
                source = f"folder:{build(name)}"
                for variant in args.variants:
                    for seed in args.seeds:
                        key = f"{name}/{variant}/{seed}"
                        if key in results:
                            print(f"{key}: measured before")
                            continue
                        config = configure(source, seed, variant, runs)
                        decay = VARIANTS[variant].get("_ema")
                        averages = [WeightAverage(decay)] if decay else []
                        result = run_training(config, callbacks=averages)
                        accuracy = result.metrics["test"]["accuracy"]
                        seconds = float(result.run.card.train_seconds or 0.0)
                        results[key] = {"accuracy": accuracy, "seconds": seconds}
                        results[key] |= {"epochs": config.epochs, "when": time.strftime("%H:%M")}
                        STORED.write_text(json.dumps(results, indent=1))
                        print(f"{key}: {accuracy * 100:.1f}% in {seconds:.1f}s", flush=True)
    table = report(results)
    write_section("auto_variants", "The auto setup on grey folders: variants tried", table)
    print(table)


def report(results: dict[str, dict]) -> str:
    folders = [f for f in FOLDERS if any(k.startswith(f"{f}/") for k in results)]
    rows = []
    for variant in VARIANTS:
        if not any(k.rsplit("/", 1)[0].endswith(f"/{variant}") for k in results):
            continue
        cells: list[str] = [variant]
        for name in folders:
            runs = [v for k, v in results.items() if k.rsplit("/", 1)[0] == f"{name}/{variant}"]
            base = [v for k, v in results.items() if k.rsplit("/", 1)[0] == f"{name}/auto"]
            if not runs:
                cells += ["", ""]
                continue
            accuracy = median([r["accuracy"] for r in runs]) * 100
            change = accuracy - median([r["accuracy"] for r in base]) * 100 if base else None
            cells.append(
                f"{accuracy:.1f}% [{len(runs)}]" + (f" {change:+.1f}" if change is not None else "")
            )
            cells.append(f"{median([r['seconds'] for r in runs]):.0f} s")
        rows.append(cells)
    headers = ["variant"] + [h for name in folders for h in (name, "time")]
    return (
        f"Variants of {BASELINE}.\n\n"
        "The auto setup with one change (or a few together), per folder of "
        "`benchmarks/folders.py`: test accuracy, median over the seeds (count in brackets) "
        "and its difference from the unchanged setup (`auto`); training seconds, median. "
        "Test folders of 2,500-5,000 images, one image 0.02-0.04 points. "
        "`./run python benchmarks/auto_variants.py` (in chunks: "
        "`--folders NAME --variants ... --seeds 0 1 2`; `--table` writes this table).\n\n"
        + markdown_table(headers, rows)
    )


if __name__ == "__main__":
    main()
