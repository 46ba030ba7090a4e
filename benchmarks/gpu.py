"""Benchmarks on a CUDA GPU: the training engine against hand-written PyTorch on the same GPU.

In one run on one machine:

- the GPU's matmul peak (bf16, and fp32 through TF32), the reference for the other figures;
- the textbook LeNet (MNIST, batch 100, Adam 1e-3), seconds per epoch for:
  ``pytorch-idiomatic`` (a DataLoader feeding the GPU batch by batch, fp32),
  ``hand-tuned`` (the data resident on the GPU, batches by indexing, bf16 autocast,
  channels_last, fused Adam: the fastest loop a PyTorch user writes by hand),
  ``cnnkit auto`` (``fit`` as ``cnnkit train`` runs it) and ``cnnkit auto + compile``;
- time to accuracy for the recipes (as ``benchmarks/time_to_accuracy.py``, on the GPU).

    python benchmarks/gpu.py --out gpu.md                      # on a machine with CUDA
    python benchmarks/gpu.py --device cpu --steps 20 --seeds 1 --recipes mnist-fast  # smoke run

Writes its tables to ``--out`` (and, with ``--write``, to the "GPU" section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import describe_machine, load_average, markdown_table, median, write_section
from lenet_speed import (
    BATCH,
    FULL_STEPS,
    PerSample,
    cnnkit_epochs,
    epochs_hand_tuned,
    flops_per_step,
    idiomatic_lenet,
    synchronize,
)
from time_to_accuracy import HEADERS, run_recipe

from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset


def matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 10) -> float:
    """TFLOP/s of an n x n x n matmul in ``dtype`` on ``device``, median of ``repeats``."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / median(times) / 1e12


def epoch_idiomatic(train: Dataset, pre: Preprocessing, steps: int, device: torch.device) -> float:
    model = idiomatic_lenet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(PerSample(train, pre), batch_size=BATCH, shuffle=True)
    synchronize(device)
    started = time.perf_counter()
    for step, (data, target) in enumerate(loader):
        if step == steps:
            break
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        F.cross_entropy(model(data), target).backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - started


def lenet_table(device: torch.device, steps: int, epochs: int) -> str:
    splits = load_dataset("mnist", seed=0)
    train, pre = splits.train, Preprocessing.from_dataset(splits.train)
    steps = min(steps, FULL_STEPS)
    scale = FULL_STEPS / steps
    peak = matmul_peak(torch.bfloat16, device)
    torch.backends.cuda.matmul.allow_tf32 = True
    peak_tf32 = matmul_peak(torch.float32, device)
    torch.backends.cuda.matmul.allow_tf32 = False
    tflop_epoch = flops_per_step(train, pre) * FULL_STEPS / 1e12
    # Each variant: one warm-up epoch (kernel choice, compilation), then ``epochs`` measured.
    variants = {
        "pytorch-idiomatic (DataLoader, fp32)": lambda: [
            epoch_idiomatic(train, pre, steps, device) for _ in range(epochs + 1)
        ],
        "hand-tuned PyTorch (resident data, bf16, channels_last, fused Adam)": lambda: (
            epochs_hand_tuned(train, pre, steps, device, epochs + 1)
        ),
        "cnnkit auto (cnnkit train)": lambda: cnnkit_epochs("auto")(
            train, pre, steps, 0, epochs + 1, device
        ),
        "cnnkit auto + compile": lambda: cnnkit_epochs("auto", True)(
            train, pre, steps, 0, epochs + 1, device
        ),
    }
    seconds = {}
    for name, measure in variants.items():
        torch.manual_seed(0)
        per_epoch = [t * scale for t in measure()[1:]]
        seconds[name] = median(per_epoch)
        print(f"{name:70s} {seconds[name]:7.3f} s/epoch {per_epoch}", flush=True)
    reference = seconds["hand-tuned PyTorch (resident data, bf16, channels_last, fused Adam)"]
    rows = [
        [
            name,
            f"{value:.2f}",
            f"{value / reference:.2f}x",
            f"{tflop_epoch / value:.2f}",
            f"{tflop_epoch / value / peak * 100:.2f}%",
        ]
        for name, value in seconds.items()
    ]
    return (
        f"GPU matmul peak in this run (n=8192, median of 10): bf16 {peak:.4g} TFLOP/s, "
        f"fp32 through TF32 {peak_tf32:.4g} TFLOP/s. One LeNet epoch is {tflop_epoch:.2f} TFLOP. "
        f"Median of {epochs} epochs per variant after one warm-up epoch"
        + (f", each timed over {steps} steps and scaled to 550" if steps < FULL_STEPS else "")
        + ".\n\n"
        + markdown_table(
            ["variant", "s/epoch", "time vs hand-tuned", "TFLOP/s", "of bf16 peak"], rows
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=FULL_STEPS, help="steps per epoch measured")
    parser.add_argument("--epochs", type=int, default=3, help="epochs measured per variant")
    parser.add_argument(
        "--recipes", nargs="*", default=["mnist-fast", "mnist-best", "fashion-best"]
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per recipe")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    parser.add_argument("--write", action="store_true", help="write RESULTS.md's GPU section")
    args = parser.parse_args()

    device = torch.device(args.device)
    machine = describe_machine()
    print(machine, flush=True)
    body = f"Machine: {machine}.\n\n### Textbook LeNet, seconds per epoch\n\n"
    body += lenet_table(device, args.steps, args.epochs)
    if args.out:
        args.out.write_text(body + "\n", encoding="utf-8")
    if args.recipes:
        rows = [
            run_recipe(name, list(range(args.seeds)), None, device=args.device)
            for name in args.recipes
        ]
        body += (
            "\n\n### Time to accuracy\n\nEach recipe as `cnnkit train --recipe NAME --seed S "
            f"--device {args.device}`, seeds 0..{args.seeds - 1}; training seconds until the test "
            "accuracy after an epoch first reached the threshold (median over the seeds that "
            "reached it).\n\n" + markdown_table(HEADERS, rows)
        )
    body += f"\n\nLoad average at the end: {load_average()}."
    print("\n" + body)
    if args.out:
        args.out.write_text(body + "\n", encoding="utf-8")
    if args.write:
        write_section("gpu", "GPU: the engine against hand-written PyTorch", body)


if __name__ == "__main__":
    main()
