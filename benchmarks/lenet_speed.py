"""Benchmark (i): the textbook LeNet on MNIST, batch 100, Adam 1e-3 — seconds per epoch.

Compares, in one run on one machine:

- ``pytorch-idiomatic``: the loop everyone writes (as in pytorch/examples' MNIST script):
  a Dataset normalising one sample at a time, a shuffling DataLoader, fp32;
- ``hand-tuned``: the fastest loop a PyTorch user writes by hand: the data resident as one
  tensor, batches by indexing, the default precision's autocast (bf16 where the CPU computes
  it natively), channels_last, fused Adam — the reference of the "time vs hand-tuned" column;
- ``cnnkit fp32``: cnnkit's ``fit`` in fp32 (data on the device, batches by indexing,
  fused Adam);
- ``cnnkit auto``: ``fit`` with its default precision for this device (bf16 autocast and
  channels_last where the CPU computes bf16 natively) and the start-up settings of
  ``cnnkit train`` — what ``cnnkit train`` runs;
- ``cnnkit auto, threads sleeping``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads
  sleep instead of spinning: the other commands' setting, ``cnnkit train``'s until issue 18);
- ``cnnkit auto+compile`` (with ``--compile``): the same through ``torch.compile``.

Each variant runs in a fresh process; the cnnkit ones with the settings ``cnnkit train``
makes at start (:mod:`cnnkit.openmp`: denormals flushed to zero, libgomp's default spinning
threads; ``fit`` adapts their number to the load, :mod:`cnnkit.train.threads`), the
plain-PyTorch ones with torch's defaults. ``OMP_*``/``GOMP_*`` settings of the caller are
dropped.

Each row gives the median seconds per epoch over all measured epochs (``--steps N`` times
N steps and scales to the full 550-step epoch), the time against the hand-tuned loop's and
the achieved GFLOP/s against the matmul peak of its precision measured in the same run.
Measure at least 3 full epochs: from the 2nd epoch on, a loop that does not flush denormal
floats slows down (Adam's moments for weights whose gradient stays zero decay into them).
``--parity`` also trains the full default job (10 epochs, validation included) in fp32 and
in the default precision and compares test accuracy.

    ./run python benchmarks/lenet_speed.py                 # full epochs, 3 per variant
    ./run python benchmarks/lenet_speed.py --steps 100     # shortened
    ./run python benchmarks/lenet_speed.py --parity        # + the 10-epoch accuracy check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from common import describe_machine, load_average, markdown_table, median, write_section
from torch import nn

from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset
from cnnkit.models.registry import build_model
from cnnkit.openmp import USER_CHOICES, flush_denormals
from cnnkit.train.job import TrainConfig, run_training
from cnnkit.train.loop import fit
from cnnkit.train.precision import resolve_precision
from cnnkit.train.threads import USER_CHOICE as THREADS_CHOICE

BATCH = 100
FULL_STEPS = 550  # 55,000 training images / batch 100
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def idiomatic_lenet() -> nn.Module:
    """The textbook LeNet as a PyTorch user writes it (Keras-style 'same' padding)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 4, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1024),
        nn.ReLU(),
        nn.Linear(1024, 10),
    )


class PerSample(torch.utils.data.Dataset):
    """One normalised float image per ``__getitem__``, like torchvision's ToTensor+Normalize."""

    def __init__(self, data: Dataset, pre: Preprocessing) -> None:
        self.images, self.labels = data.images, data.labels
        self.mean, self.std = pre.mean[0], pre.std[0]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div(255.0)
        return (image - self.mean) / self.std, self.labels[index]


def epoch_idiomatic(train: Dataset, pre: Preprocessing, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = idiomatic_lenet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(PerSample(train, pre), batch_size=BATCH, shuffle=True)
    model.train()
    started = time.perf_counter()
    for step, (data, target) in enumerate(loader):
        if step == steps:
            break
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def epochs_hand_tuned(
    train: Dataset,
    pre: Preprocessing,
    steps: int,
    device: torch.device,
    epochs: int,
    dtype: torch.dtype | None = torch.bfloat16,
    seed: int = 0,
    on_epoch: Callable[[nn.Module], None] | None = None,
) -> list[float]:
    """The fastest plain-PyTorch loop: resident data, ``dtype`` autocast (None: fp32),
    channels_last, fused Adam. ``on_epoch(model)`` runs after each epoch, outside the time."""
    torch.manual_seed(seed)
    model = idiomatic_lenet().to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    images, labels = train.images.to(device), train.labels.to(device)
    mean = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, -1, 1, 1)
    times = []
    for _ in range(epochs):
        model.train()
        synchronize(device)
        started = time.perf_counter()
        order = torch.randperm(len(labels), device=device)
        for step in range(steps):
            index = order[step * BATCH : (step + 1) * BATCH]
            inputs = (images[index].float() / 255.0 - mean) / std
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype) if dtype else nullcontext():
                logits = model(inputs)
            loss = F.cross_entropy(logits.float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss.item()  # the epoch ends when the device is done
        times.append(time.perf_counter() - started)
        if on_epoch is not None:
            model.eval()
            on_epoch(model)
    return times


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cnnkit_epochs(precision: str, compile: bool = False) -> Callable[..., list[float]]:
    def run(
        train: Dataset,
        pre: Preprocessing,
        steps: int,
        seed: int,
        epochs: int,
        device: torch.device | str = "cpu",
    ) -> list[float]:
        torch.manual_seed(seed)
        model = build_model("lenet")
        subset = train if steps >= FULL_STEPS else train.subset(range(steps * BATCH))
        history = fit(
            model,
            train=subset,
            preprocessing=pre,
            epochs=epochs,
            batch_size=BATCH,
            precision=precision,
            compile=compile,
            seed=seed,
            device=device,
            verbose=0,
        )
        threads = history.training["threads"]
        print(f"  thread counts, steps at each: {threads['steps_at']}", file=sys.stderr)
        return [row["time"] for row in history]

    return run


def flops_per_step(train: Dataset, pre: Preprocessing) -> float:
    """Floating-point operations of one training step (forward + backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("lenet")
    inputs, labels = pre(train.images[:BATCH]), train.labels[:BATCH]
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(inputs), labels).backward()
    return float(counter.get_total_flops())


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of an n x n x n matmul in ``dtype``, median of ``repeats``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * n**3 / median(times) / 1e9


def in_fresh_process(variant: str, steps: int, epochs: int, seed: int) -> list[float]:
    """Seconds per epoch of ``variant``, measured in a new process: the cnnkit variants with
    the settings ``cnnkit train`` makes before torch starts (denormals flushed to zero;
    sleeping OpenMP threads only for ``-passive``), the plain-PyTorch loops with torch's
    defaults."""
    chosen = (*USER_CHOICES, THREADS_CHOICE)
    env = {k: v for k, v in os.environ.items() if k not in chosen}
    if variant.endswith("-passive"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    command = [sys.executable, __file__, "--variant", variant, "--steps", str(steps)]
    command += ["--epochs", str(epochs), "--seed", str(seed)]
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return [float(t) for t in json.loads(result.stdout.strip().splitlines()[-1])]


def measure_variant(variant: str, steps: int, epochs: int, seed: int) -> list[float]:
    """The child's side of :func:`in_fresh_process` (unscaled seconds per epoch)."""
    if variant.startswith("cnnkit"):
        flush_denormals()  # as the command does, before torch starts its threads
    splits = load_dataset("mnist", seed=seed)
    train, pre = splits.train, Preprocessing.from_dataset(splits.train)
    steps = min(steps, FULL_STEPS)
    if variant == "idiomatic":
        return [epoch_idiomatic(train, pre, steps, seed + i) for i in range(epochs)]
    if variant == "hand-tuned":
        auto = resolve_precision("auto", torch.device("cpu")).name
        return epochs_hand_tuned(
            train, pre, steps, torch.device("cpu"), epochs, dtype=DTYPES[auto], seed=seed
        )
    if variant == "cnnkit-fp32":
        return cnnkit_epochs("fp32")(train, pre, steps, seed, epochs)
    if variant == "cnnkit-auto-compile":  # the first epoch pays for compilation
        return cnnkit_epochs("auto", True)(train, pre, steps, seed, epochs + 1)[1:]
    return cnnkit_epochs("auto")(train, pre, steps, seed, epochs)


def parity(seed: int) -> list[list[str]]:
    """The default job (10 epochs, validation) in fp32 and in the default precision."""
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for precision in ("fp32", "auto"):
            result = run_training(
                TrainConfig(precision=precision, seed=seed, runs_dir=runs, device="cpu")
            )
            times = [row["time"] for row in result.history]
            rows.append(
                [
                    f"{precision} ({result.training['precision']})",
                    f"{median(times):.1f}",
                    f"{sum(times):.0f}",
                    f"{result.metrics['test']['accuracy'] * 100:.2f}%",
                ]
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=FULL_STEPS, help="steps per epoch measured")
    parser.add_argument("--epochs", type=int, default=3, help="epochs measured per variant")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--parity", action="store_true", help="also run the 10-epoch job twice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:  # a child process: measure one variant, print its epoch times
        print(json.dumps(measure_variant(args.variant, args.steps, args.epochs, args.seed)))
        return
    machine = describe_machine()
    print(machine, flush=True)
    splits = load_dataset("mnist", seed=args.seed)
    train, pre = splits.train, Preprocessing.from_dataset(splits.train)
    steps = min(args.steps, FULL_STEPS)
    scale = FULL_STEPS / steps
    auto = resolve_precision("auto", torch.device("cpu")).name
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    flops_epoch = flops_per_step(train, pre) * FULL_STEPS

    names = {
        "idiomatic": "pytorch-idiomatic (fp32)",
        "hand-tuned": f"hand-tuned PyTorch ({auto})",
        "cnnkit-fp32": "cnnkit fp32",
        "cnnkit-auto": f"cnnkit auto ({auto})",
        "cnnkit-auto-passive": f"cnnkit auto ({auto}), threads sleeping",
    }
    if args.compile:
        names["cnnkit-auto-compile"] = f"cnnkit auto ({auto}) + compile"
    seconds: dict[str, float] = {}
    epochs: dict[str, list[float]] = {}
    for variant, name in names.items():
        epochs[name] = [t * scale for t in in_fresh_process(variant, steps, args.epochs, args.seed)]
        seconds[name] = median(epochs[name])
        print(f"{name:34s} {seconds[name]:6.1f} s/epoch  {epochs[name]}", flush=True)

    reference = seconds[names["hand-tuned"]]
    rows = []
    for name, value in seconds.items():
        dtype = "bf16" if "bf16" in name else "fp32"
        achieved = flops_epoch / value / 1e9
        rows.append(
            [
                name,
                f"{value:.1f}",
                ", ".join(f"{t:.1f}" for t in epochs[name]),
                f"{value / reference:.2f}x",
                f"{achieved:.0f}",
                f"{achieved / peaks[dtype] * 100:.0f}% of {dtype} {peaks[dtype]:.0f}",
            ]
        )
    table = markdown_table(
        ["variant", "s/epoch", "each epoch", "time vs hand-tuned", "GFLOP/s", "of matmul peak"],
        rows,
    )
    notes = (
        f"Machine: {machine}; load at the end: {load_average()}.\n\n"
        f"Textbook LeNet, MNIST 55,000 training images, batch 100, Adam 1e-3, no validation; "
        f"median over {args.epochs} epoch(s) per variant"
        + (f", each timed over {steps} steps and scaled to 550" if steps < FULL_STEPS else "")
        + f". One training epoch is {flops_epoch / 1e12:.2f} TFLOP (counted by "
        "torch.utils.flop_counter); the peak is an n=2048 matmul in the same run.\n\n"
    )
    body = notes + table
    if args.parity:
        parity_rows = parity(args.seed)
        body += (
            "\n\nThe default job `cnnkit train` (10 epochs, validation every epoch), trained "
            "in fp32 and in the default precision, seed "
            f"{args.seed}:\n\n"
            + markdown_table(
                ["precision", "median s/epoch", "train s", "test accuracy"], parity_rows
            )
        )
    print("\n" + body)
    write_section("lenet_speed", "(i) Textbook LeNet, seconds per epoch", body)


if __name__ == "__main__":
    main()
