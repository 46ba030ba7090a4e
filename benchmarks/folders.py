"""Your own folder: the auto setup against the textbook default and transfer learning.

Builds small class folders from data at hand and trains on each, per seed:

- ``auto``: what ``cnnkit train --data folder:PATH`` now does (:mod:`cnnkit.train.auto`);
- ``textbook``: the textbook default (LeNet, 10 epochs, batch 100, Adam 1e-3), what the same
  command did before;
- ``transfer``: ``cnnkit finetune --data folder:PATH`` — ImageNet EfficientNet-Lite0 with a
  new head, input size and epochs from :func:`cnnkit.train.auto.choose_finetune`.

The folders (train/ and test/ layouts, so every method is measured on the same test images;
cnnkit holds 10% of train out for validation). The training budget per class is what each
folder is about; its test/ is as large as the source allows (500 per class from MNIST's and
Fashion-MNIST's 10,000 test images, 150 crops per photo), so one test image is 0.02-0.08
points and a difference between methods is not one or two images:

- ``mnist-50``: MNIST digits, 50 training images per class, PNG;
- ``fashion-200``: Fashion-MNIST, 200 per class, JPEG;
- ``fashion-imbalanced``: Fashion-MNIST, 5 classes of 300, 150, 75, 40, 20 training images;
- ``photos``: scikit-image's sample photos, random crops / flips / brightness as 8 classes
  of 40 (96x96 colour JPEG);
- ``mixed``: Fashion-MNIST, 80 per class, each image resized to one of several sizes and
  saved as grey, RGB, palette or RGBA PNG or JPEG.

Test accuracy (every test/ folder is balanced, so it is the balanced accuracy too) and
training seconds, median over the seeds; the table goes into RESULTS.md. CPU-heavy: run a
few folders at a time (results of earlier chunks are kept and merged).

    ./run python benchmarks/folders.py --folders mnist-50 photos --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import (
    RESULTS,
    describe_machine,
    load_average,
    markdown_table,
    median,
    write_section,
)
from PIL import Image

from cnnkit.data.sources import load_dataset

METHODS = ("auto", "textbook", "transfer")
STORE = Path(tempfile.gettempdir()) / "cnnkit-bench-folders-2"  # -2: the large test/ folders
PARTIAL = STORE / "results.json"  # per (folder, method, seed): chunks add up to one table,
# and a chunk stopped half-way is resumed where it stopped


def _save(
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    folder: Path,
    *,
    fmt: str,
    rng: np.random.Generator | None = None,
    mixed: bool = False,
) -> None:
    """Write ``(N, C, H, W)`` uint8 images as class folders under ``folder``."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        picture = Image.fromarray(pixels)
        ext = fmt
        if mixed and rng is not None:  # a size and a mode per file, as collected pictures are
            side = int(rng.choice([24, 28, 40, 56, 72]))
            picture = picture.resize((side, side), Image.Resampling.BILINEAR)
            mode = str(rng.choice(["L", "RGB", "P", "RGBA"]))
            picture = picture.convert(mode)
            ext = "jpg" if mode in ("L", "RGB") and rng.random() < 0.5 else "png"
        target = folder / classes[label] / f"{i:05d}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        picture.save(target, quality=90) if ext == "jpg" else picture.save(target)


def _subset(labels: np.ndarray, per_class: list[int], rng: np.random.Generator) -> np.ndarray:
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), n, replace=False) for c, n in enumerate(per_class)]
    )


def _from_source(
    name: str,
    folder: Path,
    train_per_class: list[int],
    *,
    test_per_class: int,
    fmt: str,
    mixed: bool = False,
) -> None:
    splits = load_dataset(name, val_size=0)
    rng = np.random.default_rng(0)
    classes = [c.replace("/", "-").replace(" ", "_") for c in splits.train.classes]
    keep = len(train_per_class)
    for part, dataset, counts in (
        ("train", splits.train, train_per_class),
        ("test", splits.test, [test_per_class] * keep),
    ):
        labels = dataset.labels.numpy()
        index = _subset(labels, counts, rng)
        _save(
            dataset.images[index].numpy(),
            labels[index],
            classes,
            folder / part,
            fmt=fmt,
            rng=rng,
            mixed=mixed,
        )


def _photos(folder: Path) -> None:
    """8 of scikit-image's colour sample photos; each class is random crops of one photo."""
    from skimage import data as samples

    names = [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "stereo_motorcycle",
        "retina",
    ]
    rng = np.random.default_rng(0)
    for name in names:
        pixels = getattr(samples, name)()
        photo = Image.fromarray(pixels[0] if isinstance(pixels, tuple) else pixels).convert("RGB")
        width, height = photo.size
        for part, count in (("train", 40), ("test", PHOTO_TESTS)):
            for i in range(count):
                side = int(min(width, height) * rng.uniform(0.3, 0.6))
                x, y = rng.integers(0, width - side), rng.integers(0, height - side)
                crop = photo.crop((x, y, x + side, y + side)).resize((96, 96))
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                crop = Image.fromarray(
                    np.clip(np.asarray(crop) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
                )
                target = folder / part / name / f"{i:03d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                crop.save(target, quality=90)


TESTS = 500  # test images per class from MNIST's / Fashion-MNIST's test split (1,000 each)
PHOTO_TESTS = 150  # test crops per photo

FOLDERS: dict[str, Callable[[Path], None]] = {
    "mnist-50": lambda f: _from_source("mnist", f, [50] * 10, test_per_class=TESTS, fmt="png"),
    "fashion-200": lambda f: _from_source(
        "fashion-mnist", f, [200] * 10, test_per_class=TESTS, fmt="jpg"
    ),
    "fashion-imbalanced": lambda f: _from_source(
        "fashion-mnist", f, [300, 150, 75, 40, 20], test_per_class=TESTS, fmt="png"
    ),
    "photos": _photos,
    "mixed": lambda f: _from_source(
        "fashion-mnist", f, [80] * 10, test_per_class=TESTS, fmt="png", mixed=True
    ),
}


def build(name: str) -> Path:
    folder = STORE / name
    if not (folder / "train").is_dir():
        FOLDERS[name](folder)
    return folder


def run_method(method: str, source: str, seed: int, runs: str) -> tuple[float, float, str]:
    """(test accuracy, training seconds, setup) of one method on one folder and seed."""
    if method == "transfer":
        from cnnkit.train.auto import choose_finetune, read_facts
        from cnnkit.transfer.finetune import FinetuneConfig, finetune

        defaults = choose_finetune(read_facts(source, seed=seed))
        config = FinetuneConfig(
            data=source,
            input_size=defaults.input_size,
            epochs=defaults.epochs,
            batch_size=defaults.batch_size,
            seed=seed,
            device="cpu",
            runs_dir=runs,
        )
        result = finetune(config)
        setup = f"efficientnet_lite0 head, {defaults.input_size}px, {defaults.epochs} ep"
        run, accuracy = result.run, result.metrics["test"]["accuracy"]
    else:
        from cnnkit.train.config import auto_config
        from cnnkit.train.job import TrainConfig, run_training

        given = {"data": source, "seed": seed, "device": "cpu", "runs_dir": runs}
        if method == "auto":
            config = auto_config(given)[0]
            setup = f"{config.model} {config.epochs} ep" + (
                " weighted" if config.class_weight else ""
            )
        else:
            config = TrainConfig(**given)
            setup = f"{config.model} {config.epochs} ep"
        result = run_training(config)
        run, accuracy = result.run, result.metrics["test"]["accuracy"]
    return accuracy, float(run.card.train_seconds or 0.0), setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folders", nargs="+", default=list(FOLDERS), choices=list(FOLDERS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fresh", action="store_true", help="forget earlier chunks' results")
    parser.add_argument(
        "--forget",
        action="store_true",
        help="measure the chosen folders/methods/seeds again (e.g. after the auto setup changed)",
    )
    parser.add_argument(
        "--table", action="store_true", help="train nothing: write the table of stored results"
    )
    args = parser.parse_args()

    STORE.mkdir(parents=True, exist_ok=True)
    results = {} if args.fresh or not PARTIAL.exists() else json.loads(PARTIAL.read_text())
    if args.forget:
        chosen = {f"{n}/{m}/{s}" for n in args.folders for m in args.methods for s in args.seeds}
        results = {key: value for key, value in results.items() if key not in chosen}
    if not args.table:
        measure(results, args.folders, args.methods, args.seeds)
    write_section(
        "folders",
        "Your own folder: auto setup vs textbook default vs transfer",
        report(results),
    )
    print(report(results).rsplit("\n\n", 1)[-1])
    print(f"table written to {RESULTS}")


def measure(
    results: dict[str, dict], folders: list[str], methods: list[str], seeds: list[int]
) -> None:
    """Train each (folder, method, seed) not in ``results`` yet; store each as it finishes."""
    with tempfile.TemporaryDirectory() as runs:
        for name in folders:
            source = f"folder:{build(name)}"
            for method in methods:
                for seed in seeds:
                    if f"{name}/{method}/{seed}" in results:
                        print(f"{name} {method} seed {seed}: measured before (--forget redoes)")
                        continue
                    started, load = time.time(), load_average()
                    accuracy, seconds, setup = run_method(method, source, seed, runs)
                    entry = {"accuracy": accuracy, "seconds": seconds, "setup": setup}
                    entry |= {"load": load, "when": time.strftime("%Y-%m-%d %H:%M")}
                    results[f"{name}/{method}/{seed}"] = entry
                    PARTIAL.write_text(json.dumps(results, indent=1))
                    print(
                        f"{name:<20}{method:<10}seed {seed}: {accuracy * 100:6.2f}% "
                        f"train {seconds:6.1f}s (wall {time.time() - started:.0f}s) {setup}",
                        flush=True,
                    )


def report(results: dict[str, dict]) -> str:
    rows = []
    for name in FOLDERS:
        cells: list[str] = [name]
        accuracy = {}
        for method in METHODS:
            runs = [v for k, v in results.items() if k.startswith(f"{name}/{method}/")]
            if not runs:
                cells += ["not run", ""]
                continue
            accuracy[method] = median([r["accuracy"] for r in runs]) * 100
            cells += [
                f"{accuracy[method]:.1f}% [{len(runs)}]",
                f"{median([r['seconds'] for r in runs]):.0f} s",
            ]
        auto, textbook = accuracy.get("auto"), accuracy.get("textbook")
        others = [v for k, v in accuracy.items() if k != "auto"]
        versus = auto is not None and textbook is not None
        cells.append(f"{auto - textbook:+.1f}" if versus else "")
        errors = (100 - auto) / (100 - textbook) if versus and textbook < 100 else None
        cells.append(f"{errors:.2f}x" if errors is not None else "")
        cells.append(f"{auto - max(others):+.1f}" if auto is not None and others else "")
        rows.append(cells)
    headers = ["folder", "auto", "time", "textbook", "time", "transfer", "time"]
    headers += ["auto - textbook", "errors vs textbook", "auto - best other"]
    loads = [float(r["load"].split(" / ")[0]) for r in results.values() if "load" in r]
    quiet = (
        f"Each run held the CPU lock (no other benchmark or test ran); the 1-minute load "
        f"average at the start of a run was {min(loads):.1f}-{max(loads):.1f}. "
        if loads
        else ""
    )
    return (
        f"Machine (when the table was written): {describe_machine()}. {quiet}Training "
        "seconds still vary with what else the shared machine did.\n\n"
        "Each folder trained per seed by: the auto setup (`cnnkit train --data folder:PATH`), "
        "the textbook default (LeNet, 10 epochs, batch 100) and EfficientNet-Lite0 fine-tuning "
        "(frozen backbone, new head; input size and epochs from `choose_finetune`). Test "
        f"accuracy on the folder's test/ images ({TESTS} per class, photos {PHOTO_TESTS}: "
        "1,200-5,000 images, so one image is 0.02-0.08 points), median over the seeds (count "
        "in brackets); "
        "training seconds, median; errors vs textbook: the auto setup's test errors as a "
        "share of the textbook default's. `./run python benchmarks/folders.py` "
        "(in chunks: `--folders NAME --seeds 0`; `--table` writes the table of what is "
        "stored).\n\n" + markdown_table(headers, rows)
    )


if __name__ == "__main__":
    main()
