"""Benchmark: a folder larger than memory, through the decoded cache.

Generates a folder of small JPEGs (Fashion-MNIST clothes upscaled to ``--size`` and
recoloured, seeded; 100,000 of 96x96 RGB = 2.8 GB decoded), then, each step a fresh process
so that its memory is its own:

- ``build``: decodes the folder into the cache (``folder:PATH?cache=1``) and reports images/s
  against a plain PIL decode loop (open, load, to numpy) over a sample of the same files,
  and the time to reuse the cache (listing, fingerprint of sizes and times; no image opened);
- ``train``: one epoch of a small CNN over the whole folder from the cache, reporting the
  epoch time and the process's peak memory (resident anonymous memory, which the process
  holds, and resident file pages, which the kernel may drop) against the decoded size;
- ``capped`` (as root, cgroup v1): the same epoch in one run without and with a memory limit
  (2 GiB by default; a child cgroup of the memory controller, which counts page cache), the
  page cache dropped before each, with and without read-ahead (``--runs capped-random``: the
  fully random order this path had before block-wise shuffling);
- ``accuracy``: test accuracy after a few epochs on the folder from the cache, the fully
  random order against block-wise shuffling;
- ``compare``: on a subset that fits in memory (hard links to the first ``--subset`` files),
  the same epoch from memory (``cache=0``) and from the cache (``cache=1``), median over
  ``--repeats``; the target is the cache within 15% of memory.

The model is deliberately tiny (one strided convolution), so the epoch time is mostly the
data path: the comparison is the hardest case for the cache, not a model hiding it.

    ./run python benchmarks/large_folder.py generate     # ~1-2 min on 2 cores
    ./run python benchmarks/large_folder.py build
    ./run python benchmarks/large_folder.py capped       # root: drops caches, cgroup v1
    ./run python benchmarks/large_folder.py accuracy
    ./run python benchmarks/large_folder.py compare
    ./run python benchmarks/large_folder.py report       # writes RESULTS.md
    ./run python benchmarks/large_folder.py clean        # removes the folder and caches

Results of each step go to ``<work>/results.json``; ``report`` turns them into the section.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from common import describe_machine, markdown_table, median, write_section

WORK = Path(os.environ.get("LARGE_FOLDER_WORK", "/work/tmp-19/large-folder"))
BATCH = 256


class PeakMemory:
    """Samples this process's resident memory every 20 ms: peak anonymous and file pages."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for line in Path("/proc/self/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]) * 1024)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _save(step: str, values: dict[str, Any]) -> None:
    path = WORK / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[step] = values
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps({step: values}, indent=2))


@functools.cache
def _fashion() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """All 70,000 Fashion-MNIST pictures, labels and class names."""
    from cnnkit.data.mnist import FASHION_MNIST, load_idx_source

    parts = load_idx_source(FASHION_MNIST)
    images = np.concatenate([parts["train"].images[:, 0].numpy(), parts["test"].images[:, 0]])
    labels = np.concatenate([parts["train"].labels.numpy(), parts["test"].labels.numpy()])
    return images, labels, parts["train"].classes


def _write_images(job: tuple[int, int, int, str]) -> int:
    """Write images ``first..last-1`` of the generated folder (a worker process)."""
    from PIL import Image

    first, last, size, root = job
    images, labels, classes = _fashion()
    for i in range(first, last):
        j = i % len(images)
        rng = np.random.default_rng(i)
        ink, paper = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        alpha = images[j].astype(np.float32)[..., None] / 255.0
        rgb = (paper * (1 - alpha) + ink * alpha).round().astype(np.uint8)
        picture = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
        folder = Path(root) / classes[int(labels[j])].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{i:06d}.jpg", quality=90)
    return last - first


def generate(args: argparse.Namespace) -> None:
    root = WORK / "folder"
    if root.exists():
        shutil.rmtree(root)
    started = time.perf_counter()
    step = 2000
    jobs = [
        (s, min(s + step, args.count), args.size, str(root)) for s in range(0, args.count, step)
    ]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        written = sum(pool.map(_write_images, jobs))
    files = sum(1 for _ in root.rglob("*.jpg"))
    on_disk = sum(p.stat().st_size for p in root.rglob("*.jpg"))
    _save(
        "generate",
        {
            "count": written,
            "files": files,
            "size": args.size,
            "jpeg_bytes": on_disk,
            "decoded_bytes": written * 3 * args.size * args.size,
            "seconds": time.perf_counter() - started,
        },
    )


def _fresh_cache_home() -> Path:
    home = WORK / "home"
    os.environ["CNNKIT_DATA"] = str(home)
    return home


def build(args: argparse.Namespace) -> None:
    from PIL import Image

    from cnnkit.data.folder import FolderOptions, read_folder

    root = WORK / "folder"
    home = _fresh_cache_home()
    shutil.rmtree(home / "folder-cache", ignore_errors=True)
    files = sorted(root.rglob("*.jpg"))
    sample = files[:: max(1, len(files) // args.sample)][: args.sample]
    started = time.perf_counter()
    for path in sample:  # the plain loop: what a script without cnnkit would do
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[-1] == 3
    plain = len(sample) / (time.perf_counter() - started)
    with PeakMemory() as memory:
        started = time.perf_counter()
        data = read_folder(root, FolderOptions(cache=True))
        built = time.perf_counter() - started
        started = time.perf_counter()
        again = read_folder(root, FolderOptions(cache=True))
        reused = time.perf_counter() - started
    train = data.parts["train"]
    assert len(again.parts["train"]) == len(train)
    _save(
        "build",
        {
            "images": len(train),
            "shape": list(train.image_shape),
            "processes": min(os.cpu_count() or 1, 16),
            "build_seconds": built,
            "build_images_per_s": len(train) / built,
            "plain_pil_images_per_s": plain,
            "plain_sample": len(sample),
            "reuse_seconds": reused,
            "peak_memory": memory.peak,
        },
    )


def _model(channels: int, classes: int) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 5, stride=4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, classes),
    )


def _epoch(
    source: str, *, epochs: int = 1, test_size: float = 0, window: int = 0, read_ahead: bool = True
) -> dict[str, Any]:
    """Load ``source`` and train ``epochs`` epochs: times, peak memory, test accuracy.

    ``window`` (bytes) replaces the block-wise shuffle's window of the mapped path; one larger
    than the split gives the fully random order of the in-memory path. ``read_ahead`` False
    turns off asking the OS for the next window's blocks ahead.
    """
    import torch

    from cnnkit.data.preprocess import Preprocessing
    from cnnkit.data.sources import load_dataset
    from cnnkit.train import batches
    from cnnkit.train.loop import fit

    torch.set_num_threads(os.cpu_count() or 1)
    if window:
        batches.WINDOW_BYTES = window
    batches.READ_AHEAD = read_ahead
    with PeakMemory() as memory:
        started = time.perf_counter()
        splits = load_dataset(source, val_size=0, test_size=test_size)
        train = splits.train
        preprocessing = Preprocessing.from_dataset(train)
        loaded = time.perf_counter() - started
        model = _model(train.image_shape[0], train.num_classes)
        started = time.perf_counter()
        history = fit(
            model,
            train=train,
            val=splits.test,
            preprocessing=preprocessing,
            epochs=epochs,
            batch_size=BATCH,
            seed=0,
            verbose=0,
        )
        seconds = time.perf_counter() - started
    return {
        "load": loaded,
        "epoch": seconds / epochs,
        "samples": len(train),
        "peak": memory.peak,
        "accuracy": history[-1].get("val_accuracy"),
    }


def train(args: argparse.Namespace) -> None:
    _fresh_cache_home()
    result = _epoch(f"folder:{WORK / 'folder'}?cache=1")
    _save(
        "train",
        {
            "samples": result["samples"],
            "load_seconds": result["load"],
            "epoch_seconds": result["epoch"],
            "images_per_s": result["samples"] / result["epoch"],
            "peak_memory": result["peak"],
        },
    )


CGROUP = Path("/sys/fs/cgroup/memory/cnnkit-cap")  # cgroup v1 memory controller, as root


def _run_child(*args: str, limit: int = 0) -> dict[str, Any]:
    """One ``_epoch`` step in a fresh process after dropping the page cache; with ``limit``
    (bytes) inside a child memory cgroup whose limit counts page cache too."""
    import subprocess
    import sys

    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    enter = None
    if limit:
        if CGROUP.exists():
            CGROUP.rmdir()
        CGROUP.mkdir()
        (CGROUP / "memory.limit_in_bytes").write_text(str(limit))

        def enter() -> None:
            (CGROUP / "cgroup.procs").write_text(str(os.getpid()))

    try:
        out = subprocess.run(
            [sys.executable, __file__, "_epoch", *args],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=enter,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if limit:
            result["cgroup_max_usage"] = int((CGROUP / "memory.max_usage_in_bytes").read_text())
            result["cgroup_failcnt"] = int((CGROUP / "memory.failcnt").read_text())
    finally:
        if limit and CGROUP.exists():
            CGROUP.rmdir()
    return result


def capped(args: argparse.Namespace) -> None:
    """Epochs over the whole folder from the cache, without and with a memory cap, in one
    run, the page cache dropped before each."""
    source = f"folder:{WORK / 'folder'}?cache=1"
    limit = int(args.limit_gib * 2**30)
    variants = {
        "free": ([], 0),
        "capped": ([], limit),
        "capped-no-read-ahead": (["--no-read-ahead"], limit),
        # the fully random order: what this path did before block-wise shuffling
        "capped-random": (["--window", str(1 << 40)], limit),
    }
    path = WORK / "results.json"
    saved = json.loads(path.read_text()).get("capped", {}) if path.exists() else {}
    runs = saved.get("runs", {}) if saved.get("limit") == limit else {}
    for name in args.runs.split(","):
        extra, cap = variants[name]
        runs[name] = _run_child(source, *extra, limit=cap)
    _save("capped", {"limit": limit, "runs": runs})


def accuracy(args: argparse.Namespace) -> None:
    """Test accuracy after a few epochs: the fully random order against block-wise shuffling."""
    source = f"folder:{WORK / 'folder'}?cache=1"
    common = ["--epochs", str(args.epochs), "--test-size", str(args.test_size)]
    runs = {
        "random": _run_child(source, *common, "--window", str(1 << 40)),
        "blocks": _run_child(source, *common),
    }
    _save("accuracy", {"epochs": args.epochs, "test_size": args.test_size, "runs": runs})


def compare(args: argparse.Namespace) -> None:
    import subprocess
    import sys

    subset = WORK / f"subset-{args.subset}"
    if not subset.exists():
        files = sorted((WORK / "folder").rglob("*.jpg"), key=lambda p: p.name)[: args.subset]
        for path in files:
            target = subset / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    times: dict[str, list[float]] = {"memory": [], "cache": []}
    peaks: dict[str, dict[str, int]] = {}
    for _ in range(args.repeats):
        for name, flag in (("memory", 0), ("cache", 1)):
            out = subprocess.run(
                [sys.executable, __file__, "_epoch", f"folder:{subset}?cache={flag}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            times[name].append(result["epoch"])
            peaks[name] = result["peak"]
    _save(
        "compare",
        {
            "subset": args.subset,
            "repeats": args.repeats,
            "memory_seconds": times["memory"],
            "cache_seconds": times["cache"],
            "ratio": median(times["cache"]) / median(times["memory"]),
            "peak_memory": peaks,
        },
    )


def _child_epoch(args: argparse.Namespace) -> None:
    _fresh_cache_home()
    result = _epoch(
        args.source,
        epochs=args.epochs,
        test_size=args.test_size,
        window=args.window,
        read_ahead=not args.no_read_ahead,
    )
    print(json.dumps(result))


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def report(args: argparse.Namespace) -> None:
    results = json.loads((WORK / "results.json").read_text())
    gen, built = results["generate"], results["build"]
    size = gen["size"]
    decode = built["build_seconds"] - built["reuse_seconds"]
    body = [
        f"Machine: {describe_machine()} (load taken when this report was written; each step "
        "ran alone under the shared CPU lock, but other work on the machine was not stopped).",
        "",
        f"A generated folder of {gen['count']:,} JPEGs, {size}x{size} RGB (Fashion-MNIST "
        f"clothes recoloured; {_gib(gen['jpeg_bytes'])} of JPEG, **{_gib(gen['decoded_bytes'])}"
        " decoded**), one sub-folder per class. Anonymous memory is what the process holds; "
        "file pages of the mapped cache are page cache the kernel drops under pressure.",
        "",
        markdown_table(
            ["step", "figure", "peak anonymous memory", "peak file pages"],
            [
                [
                    f"build the cache ({built['processes']} processes)",
                    f"{built['build_images_per_s']:,.0f} images/s in {built['build_seconds']:.0f}"
                    f" s; a plain PIL decode loop: {built['plain_pil_images_per_s']:,.0f} "
                    f"images/s ({built['plain_sample']:,} files); "
                    f"**{built['build_images_per_s'] / built['plain_pil_images_per_s']:.2f}x**",
                    _gib(built["peak_memory"]["RssAnon"]),
                    _gib(built["peak_memory"]["RssFile"]),
                ],
                [
                    "of which probing and decoding (build minus reuse)",
                    f"{built['images'] / decode:,.0f} images/s in {decode:.0f} s; "
                    f"**{built['images'] / decode / built['plain_pil_images_per_s']:.2f}x** "
                    "the plain loop",
                    "",
                    "",
                ],
                [
                    "reuse the cache (list the files, fingerprint their sizes and times, read "
                    "the header, map; no image opened)",
                    f"**{built['reuse_seconds']:.1f} s**",
                    "",
                    "",
                ],
            ],
        ),
    ]
    body += _capped_section(results.get("capped"), gen)
    body += _accuracy_section(results.get("accuracy"))
    compared = results.get("compare")
    if compared is None:
        body += ["", "Cache vs memory on a subset: not measured in this run (`compare`)."]
    else:
        body += [
            "",
            f"The same epoch (batch {BATCH}, one strided convolution, no augmentation, seed 0) "
            f"on a subset that fits, {compared['subset']:,} images, each path in a fresh process, "
            f"{compared['repeats']} repeats alternating:",
            "",
            markdown_table(
                ["path", "epoch seconds (each)", "median", "peak anonymous memory"],
                [
                    [
                        name,
                        ", ".join(f"{t:.1f}" for t in compared[f"{name}_seconds"]),
                        f"{median(compared[f'{name}_seconds']):.1f}",
                        _gib(compared["peak_memory"][name]["RssAnon"]),
                    ]
                    for name in ("memory", "cache")
                ],
            ),
            "",
            f"Cache / memory epoch time: **{compared['ratio']:.2f}x** (target: within 1.15x).",
        ]
    write_section("large_folder", "Folders larger than memory: the decoded cache", "\n".join(body))


CAPPED_NAMES = {
    "free": "no limit",
    "capped": "limit",
    "capped-no-read-ahead": "limit, without read-ahead",
    "capped-random": "limit, fully random order (before block-wise shuffling)",
}


def _capped_section(capped: dict[str, Any] | None, gen: dict[str, Any]) -> list[str]:
    if capped is None:
        return ["", "Under a memory limit: not measured in this run (`capped`)."]
    runs, limit = capped["runs"], capped["limit"]
    free = runs.get("free", {}).get("epoch")
    rows = []
    for key, name in CAPPED_NAMES.items():
        if key not in runs:
            continue
        run = runs[key]
        rows.append(
            [
                name if key == "free" else name.replace("limit", f"{_gib(limit)} limit"),
                f"{run['epoch']:.1f}",
                f"**{run['epoch'] / free:.2f}x**" if free else "",
                f"{run['load']:.0f}",
                _gib(run["peak"]["RssAnon"]),
                _gib(run["peak"]["RssFile"]),
                _gib(run["cgroup_max_usage"]) if "cgroup_max_usage" in run else "",
            ]
        )
    return [
        "",
        f"**Under an enforced {_gib(limit)} limit** (`capped`): one run, each epoch in a fresh "
        "process after dropping the page cache (`echo 3 > /proc/sys/vm/drop_caches`); the "
        "limited ones inside a child cgroup of the v1 memory controller "
        f"(`{CGROUP}`, `memory.limit_in_bytes` = {_gib(limit)}, which counts page cache as well "
        f"as anonymous memory), {_gib(gen['decoded_bytes'])} decoded. One epoch over all "
        "images from the cache, batch 256, block-wise shuffling unless said otherwise:",
        "",
        markdown_table(
            [
                "epoch",
                "seconds",
                "vs no limit",
                "loading s",
                "peak anonymous",
                "peak file pages",
                "cgroup peak",
            ],
            rows,
        ),
    ]


def _accuracy_section(accuracy: dict[str, Any] | None) -> list[str]:
    if accuracy is None:
        return ["", "Accuracy, fully random vs block-wise order: not measured (`accuracy`)."]
    runs = accuracy["runs"]
    return [
        "",
        f"**Does block-wise shuffling cost accuracy?** (`accuracy`) The same tiny model, seed "
        f"and data: the whole folder from the cache, {accuracy['test_size']:.0%} held out "
        f"(stratified, seed 0; the training part keeps the file order, one class after "
        f"another — the hardest case for blocks), {accuracy['epochs']} epochs, no limit, page "
        "cache dropped first:",
        "",
        markdown_table(
            ["order", "test accuracy", "seconds per epoch"],
            [
                [name, f"{runs[key]['accuracy']:.4f}", f"{runs[key]['epoch']:.1f}"]
                for key, name in (
                    ("random", "fully random (the in-memory order)"),
                    ("blocks", "block-wise (2 MiB blocks, 256 MiB windows)"),
                )
            ],
        ),
    ]


def clean(args: argparse.Namespace) -> None:
    shutil.rmtree(WORK, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    make = steps.add_parser("generate")
    make.add_argument("--count", type=int, default=100_000)
    make.add_argument("--size", type=int, default=96)
    make.set_defaults(run=generate)
    make = steps.add_parser("build")
    make.add_argument("--sample", type=int, default=5000, help="files in the plain PIL loop")
    make.set_defaults(run=build)
    steps.add_parser("train").set_defaults(run=train)
    make = steps.add_parser("compare")
    make.add_argument("--subset", type=int, default=20_000)
    make.add_argument("--repeats", type=int, default=3)
    make.set_defaults(run=compare)
    make = steps.add_parser("capped")
    make.add_argument("--limit-gib", type=float, default=2.0)
    make.add_argument(
        "--runs",
        default="free,capped,capped-no-read-ahead",
        help="comma-separated of free (no limit), capped, capped-no-read-ahead, "
        "capped-random (the fully random order); kept with earlier runs of the same limit",
    )
    make.set_defaults(run=capped)
    make = steps.add_parser("accuracy")
    make.add_argument("--epochs", type=int, default=3)
    make.add_argument("--test-size", type=float, default=0.2)
    make.set_defaults(run=accuracy)
    make = steps.add_parser("_epoch")
    make.add_argument("source")
    make.add_argument("--epochs", type=int, default=1)
    make.add_argument("--test-size", type=float, default=0)
    make.add_argument("--window", type=int, default=0)
    make.add_argument("--no-read-ahead", action="store_true")
    make.set_defaults(run=_child_epoch)
    steps.add_parser("report").set_defaults(run=report)
    steps.add_parser("clean").set_defaults(run=clean)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    args.run(args)


if __name__ == "__main__":
    main()
