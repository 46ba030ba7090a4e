"""Changes to the auto setup, measured: does any of them widen its margin on small grey folders?

Trains the auto setup (:func:`cnnkit.train.config.auto_config`) on folders of
``benchmarks/folders.py`` with one change at a time (or a few together) and reports test
accuracy per variant, median over seeds, beside the unchanged setup (``auto``). The variants
are what one would try on 28x28 grey pictures: more steps, no early stopping on a tiny
validation split, a wider net, stronger augmentation, random erasing, no label smoothing,
AdamW with weight decay, a lower learning rate, mirroring with test-time flip averaging.

Results per (folder, variant, seed) are kept in the folders benchmark's store, so chunks
add up (one per turn of the CPU lock):

    ./run python benchmarks/auto_variants.py --folders mnist-50 --variants auto no-stop
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

from common import markdown_table, median, write_section
from folders import FOLDERS, STORE, build

STORED = STORE / "variants.json"
BASELINE = (
    "the auto setup of commit 56389ad: at least 500 optimizer steps, early stopping on "
    "val_loss (patience max(5, epochs/4)) with the best weights restored. From this table "
    "the auto setup took `no-stop-steps-2x`: at least 1,000 steps, and early stopping only "
    "on a validation split of 1,000 images or more"
)
AUG3 = ["translate:3", "rotate:max=15", "zoom:min_factor=0.9,max_factor=1.1"]
# name -> changes to the auto setup; "_epochs_x" multiplies its epochs, "_augment_add" appends
# to its augmentation, model_options are merged into its own
VARIANTS: dict[str, dict[str, Any]] = {
    "auto": {},
    "steps-2x": {"_epochs_x": 2},
    "width-64": {"model_options": {"width": 64}},
    "augment-strong": {"augment": AUG3},
    "erase": {"_augment_add": ["erase:max_area=0.15"]},
    "no-smoothing": {"label_smoothing": 0.0},
    "adamw-wd": {"optimizer": "adamw", "weight_decay": 0.05},
    "lr-0.002": {"lr": 0.002, "early_stopping": None},
    "no-stop": {"early_stopping": None},
    "no-stop-steps-2x": {"early_stopping": None, "_epochs_x": 2},
    "no-stop-augment-strong": {"early_stopping": None, "augment": AUG3},
    "no-stop-steps-2x-augment-strong": {"early_stopping": None, "_epochs_x": 2, "augment": AUG3},
    "no-stop-steps-2x-flip-tta": {
        "early_stopping": None,
        "_epochs_x": 2,
        "_augment_add": ["flip"],
        "model_options": {"tta_flip": True},
    },
    "no-stop-steps-2x-width-64-flip-tta": {
        "early_stopping": None,
        "_epochs_x": 2,
        "_augment_add": ["flip"],
        "model_options": {"width": 64, "tta_flip": True},
    },
}


def configure(source: str, seed: int, variant: str, runs: str) -> Any:
    """The auto setup's TrainConfig for ``source`` with ``variant``'s changes on top."""
    from cnnkit.train.config import auto_config

    given: dict[str, Any] = {"data": source, "seed": seed, "device": "cpu", "runs_dir": runs}
    base = auto_config(given)[0]
    changes = dict(VARIANTS[variant])
    values = {k: v for k, v in changes.items() if not k.startswith("_")}
    if "_epochs_x" in changes:
        values["epochs"] = base.epochs * changes["_epochs_x"]
    if "_augment_add" in changes:
        values["augment"] = list(base.augment) + changes["_augment_add"]
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
                        result = run_training(config)
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
        "A test/ folder of 500 images: one image is 0.2 points, and the seed alone moves "
        "a run by 1-2 points. `./run python benchmarks/auto_variants.py` (in chunks: "
        "`--folders NAME --variants ... --seeds 0 1 2`; `--table` writes this table).\n\n"
        + markdown_table(headers, rows)
    )


if __name__ == "__main__":
    main()
