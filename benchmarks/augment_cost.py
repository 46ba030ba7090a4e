"""Benchmark: what training-time augmentation costs per epoch.

For each augmentation spec it times :meth:`cnnkit.augment.Pipeline.augment_batch` — what the
training loop runs on every batch: draw the parameters from the epoch's generator, warp the
uint8 batch on the device, round back to uint8 — over every batch of one epoch of MNIST's
60,000 training images, batch 256 (the recipes' batch size), on the CPU and, when one is
present, on the GPU. For scale, it also times one plain training epoch of a model
(``--model``, default the ``mnist-best`` recipe's ``fastnet``) through ``fit`` without
augmentation, and gives each spec's cost as a share of it.

    ./run python benchmarks/augment_cost.py                  # every spec, CPU (+ GPU)
    ./run python benchmarks/augment_cost.py --threads 1      # steadier on a loaded machine
    ./run python benchmarks/augment_cost.py --train-steps 0  # augmentation only
"""

from __future__ import annotations

import argparse
import time

import torch
from common import describe_machine, load_average, markdown_table, median, write_section

from cnnkit.augment.spec import parse_augment
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import read_source
from cnnkit.models.registry import build_model
from cnnkit.train.loop import fit

BATCH = 256
SPECS = [
    "flip; translate:2",  # the recipes' (fashion-best)
    "translate:2",  # mnist-best
    "rotate:max=15",
    "skew:0.2",
    "distort:grid=4,magnitude=1.5",
    "shear:max=10",
    "zoom:min_factor=0.9,max_factor=1.1",
    "crop:0.85",
    "brightness; contrast",
    "erase",
    "cutout:0.4",
    "mixup:0.2",
    "cutmix",
    # Augmentor's textbook set, each step half the time
    "rotate:p=0.5,max=15; skew:p=0.5,magnitude=0.2; distort:p=0.5,magnitude=1.5; "
    "shear:p=0.5,max=10; zoom:p=0.5,min_factor=0.9,max_factor=1.1",
]


def augment_epoch(spec: str, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds to augment every batch of one epoch of ``images`` (already on the device)."""
    pipeline = parse_augment(spec)
    generator = torch.Generator().manual_seed(0)
    pipeline.augment_batch(images[:BATCH], labels[:BATCH], generator)  # warm-up
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for first in range(0, len(images), BATCH):
        batch = slice(first, first + BATCH)
        pipeline.augment_batch(images[batch], labels[batch], generator)
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def train_epoch(model_name: str, device: torch.device, steps: int) -> float:
    """Seconds of one plain training epoch (60,000 images) of ``model_name``, from ``steps``."""
    train = read_source("mnist").parts["train"]
    subset = train.subset(range(min(len(train), steps * BATCH)))
    torch.manual_seed(0)
    model = build_model(model_name, input_shape=train.image_shape, num_classes=10)
    history = fit(
        model,
        train=subset,
        preprocessing=Preprocessing.from_dataset(train),
        epochs=2,  # the first epoch pays for warm-up
        batch_size=BATCH,
        device=device,
    )
    return history[-1]["time"] * len(train) / len(subset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="*", default=SPECS, help="augmentation specs to time")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per spec (median)")
    parser.add_argument("--model", default="fastnet", help="model of the reference epoch")
    parser.add_argument("--train-steps", type=int, default=60, help="steps timed (0: skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    machine = describe_machine()
    print(machine, flush=True)
    train = read_source("mnist").parts["train"]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    reference: dict[str, float] = {}
    if args.train_steps:
        for device in devices:
            reference[device.type] = train_epoch(args.model, device, args.train_steps)
            seconds = reference[device.type]
            print(f"plain {args.model} epoch on {device.type}: {seconds:.1f} s", flush=True)
    rows = []
    for spec in args.specs:
        row = [f"`{spec}`"]
        for device in devices:
            images, labels = train.images.to(device), train.labels.to(device)
            seconds = median([augment_epoch(spec, images, labels) for _ in range(args.repeats)])
            batches = (len(images) + BATCH - 1) // BATCH
            share = f"{seconds / reference[device.type] * 100:.0f}%" if reference else "-"
            row += [f"{seconds:.2f}", f"{seconds / batches * 1000:.1f}", share]
            print(f"{spec:50s} {device.type}: {seconds:6.2f} s/epoch ({share})", flush=True)
        rows.append(row)
    headers = ["augmentation"]
    for device in devices:
        headers += [f"{device.type} s/epoch", f"{device.type} ms/batch", f"{device.type} vs epoch"]
    measured = ", ".join(f"{d}: {s:.1f} s" for d, s in reference.items()) or "not measured"
    notes = (
        f"Machine: {machine}; load at the end: {load_average()}.\n\n"
        f"MNIST, 60,000 training images in batches of {BATCH}, uint8 on the device; median of "
        f"{args.repeats} epoch(s) per spec. 'vs epoch': the augmentation's time as a share of "
        f"one plain training epoch of `{args.model}` through `fit` (no augmentation, no "
        f"validation; {measured})."
        "\n\n"
    )
    body = notes + markdown_table(headers, rows)
    print("\n" + body)
    write_section("augment_cost", "Augmentation cost per epoch", body)


if __name__ == "__main__":
    main()
