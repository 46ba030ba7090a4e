"""Fashion-MNIST in a short run: what buys test accuracy per second of training, one seed.

A search around the ``fashion-best`` recipe (issue 18: 93% in less time than the hand-tuned
LeNet loop's 2 epochs). Each variant trains with cnnkit's :func:`~cnnkit.train.loop.fit`
(bf16 autocast, channels-last, one-cycle Adam, label smoothing) on all 60,000 training
images, seed 0, and reports training seconds, the test accuracy after each epoch (the
curve) and at the end, with test-time flips/shifts when it trained with flips (the uint8
picture moved 1 pixel along each diagonal, black filled in: ``tta_pad="edge"`` of the zoo's
nets), and of an exponential moving average of the weights (EMA) when asked.

The net is ``fastnet``'s (``conv -> max-pool -> BN -> ReLU`` stages, residual blocks after
the first and last, global max-pool, Dense) written out in plain torch, so that variants the
zoo lacks can be tried: a fixed whitening stem (a first conv whose filters are the
eigenvectors of the training images' patch covariance scaled by 1/sqrt(eigenvalue), plus
their negatives, frozen, as KellerJordan/cifar10-airbench does), GELU. None beat the recipe at
its own time; the table (and RESULTS.md's section around it) is the record.

Results are kept per variant in a store, so chunks (one per turn of the CPU lock) add up:

    ./run python benchmarks/fashion_search.py fastnet16-lr0.01-e8 fastnet16-lr0.02-e8
    ./run python benchmarks/fashion_search.py --table       # the table of what is stored
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import describe_machine, markdown_table, write_section
from torch import nn

from cnnkit.augment.spec import parse_augment
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset
from cnnkit.models.forward import predict_logits, score_logits
from cnnkit.openmp import flush_denormals
from cnnkit.train.callbacks import Callback, Logs
from cnnkit.train.loop import fit

STORE = Path(tempfile.gettempdir()) / "cnnkit-bench-fashion-search.jsonl"
FLIP_SHIFT = ["flip", "translate:2"]


def whitening_filters(images: torch.Tensor, kernel: int, eps: float = 5e-4) -> torch.Tensor:
    """``(2 k^2, 1, k, k)``: eigenvectors of the k x k patch covariance of ``images`` (already
    normalised), each divided by sqrt(eigenvalue + eps), and their negatives."""
    patches = F.unfold(images, kernel).transpose(1, 2).reshape(-1, kernel * kernel)
    patches = patches - patches.mean(0)
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (vectors / (values + eps).sqrt()).T.reshape(-1, 1, kernel, kernel)
    return torch.cat([filters, -filters])


class Whitening(nn.Module):
    """A frozen first conv (its filters a buffer, never trained)."""

    def __init__(self, filters: torch.Tensor, stride: int) -> None:
        super().__init__()
        self.register_buffer("filters", filters)
        self.stride = stride
        self.padding = (filters.shape[-1] - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.filters.to(x.dtype), stride=self.stride, padding=self.padding)


class Stage(nn.Module):
    """``conv -> [max-pool] -> BN -> act``, then ``x + act(BN(conv(x)))`` when residual."""

    def __init__(
        self, cin: int, cout: int, *, pool: bool, act: type[nn.Module], residual: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.bn, self.act = nn.BatchNorm2d(cout), act()
        self.residual = (
            nn.Sequential(
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), act()
            )
            if residual
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.pool(self.conv(x))))
        return x if self.residual is None else x + self.residual(x)


class Net(nn.Module):
    """fastnet in plain torch: ``widths`` per stage (residual after the first and last), an
    optional whitening stem (``(kernel, stride)``; the first stage then does not pool)."""

    def __init__(
        self,
        widths: tuple[int, int, int] = (16, 32, 64),
        *,
        act: str = "relu",
        whiten: tuple[int, int] | None = None,
        train_images: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        activation = {"relu": nn.ReLU, "gelu": nn.GELU}[act]
        layers: list[nn.Module] = []
        cin = 1
        if whiten is not None and train_images is not None:
            kernel, stride = whiten
            layers += [Whitening(whitening_filters(train_images, kernel), stride), activation()]
            cin = 2 * kernel * kernel
        for i, width in enumerate(widths):
            pool = not (i == 0 and whiten is not None)
            layers.append(Stage(cin, width, pool=pool, act=activation, residual=i != 1))
            cin = width
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 10)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(module.weight)  # Keras's glorot_uniform, as fastnet
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).amax((2, 3)))


class WeightAverage(Callback):
    """EMA of the weights (BN statistics copied), updated every ``every`` steps."""

    def __init__(self, decay: float, every: int = 5) -> None:
        self.decay, self.every = decay, every
        self.average: dict[str, torch.Tensor] | None = None

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self.state.step % self.every:
            return
        weights = self.state.model.state_dict()
        with torch.no_grad():
            if self.average is None:
                self.average = {k: v.detach().clone() for k, v in weights.items()}
                return
            for key, value in weights.items():
                if value.dtype.is_floating_point:
                    self.average[key].lerp_(value, 1 - self.decay**self.every)
                else:
                    self.average[key].copy_(value)


class TestCurve(Callback):
    """Test accuracy after each epoch (bf16, outside the timed training)."""

    def __init__(self, accuracy: Callable[[nn.Module], float]) -> None:
        self.accuracy, self.elapsed = accuracy, 0.0
        self.curve: list[tuple[float, float]] = []

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self.elapsed += logs["time"]
        self.curve.append((round(self.elapsed, 1), self.accuracy(self.state.model)))


# name -> (description, Net options, fit options)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}


def variant(name: str, description: str, net: dict[str, Any] | None = None, **train: Any) -> None:
    VARIANTS[name] = (description, net or {}, {"batch_size": 256, "lr": 0.005} | train)


variant("fastnet16-e3", "fastnet 16, 3 epochs (the short run of before)", epochs=3)
variant("fastnet16-e3-ema", "... with an EMA of the weights (0.99/step)", epochs=3, ema=0.99)
variant(
    "whiten2s2-e3", "2x2 whitening stem, stride 2, then fastnet 16", {"whiten": (2, 2)}, epochs=3
)
variant(
    "whiten3s2-e3", "3x3 whitening stem, stride 2, then fastnet 16", {"whiten": (3, 2)}, epochs=3
)
variant("fastnet16-e6", "fastnet 16, 6 epochs", epochs=6, ema=0.99)
variant(
    "fastnet16-e6-flip",
    "... trained with flip; translate:2",
    epochs=6,
    ema=0.99,
    augment=FLIP_SHIFT,
)
variant("16-64-128-e4", "widths 16/64/128, 4 epochs", {"widths": (16, 64, 128)}, epochs=4, ema=0.99)
variant("fastnet24-e8", "fastnet 24, 8 epochs", {"widths": (24, 48, 96)}, epochs=8, ema=0.99)
variant("fastnet16-e10", "fastnet 16, 10 epochs", epochs=10, ema=0.99)
variant("fastnet16-lr0.01-e8", "fastnet 16, peak lr 0.01, 8 epochs", epochs=8, lr=0.01, ema=0.99)
variant("fastnet16-lr0.02-e8", "fastnet 16, peak lr 0.02, 8 epochs", epochs=8, lr=0.02)
variant(
    "fastnet16-lr0.01-gelu-e8", "... lr 0.01, GELU, 8 epochs", {"act": "gelu"}, epochs=8, lr=0.01
)
variant(
    "16-32-128-lr0.01-e8",
    "widths 16/32/128, lr 0.01, 8 epochs",
    {"widths": (16, 32, 128)},
    epochs=8,
    lr=0.01,
)
variant(
    "fastnet16-lr0.01-ls0.2-e8",
    "... lr 0.01, label smoothing 0.2",
    epochs=8,
    lr=0.01,
    label_smoothing=0.2,
)
variant("fastnet16-lr0.02-e10", "fastnet 16, lr 0.02, 10 epochs", epochs=10, lr=0.02)
variant(
    "fastnet16-b512-lr0.02-e8",
    "fastnet 16, batch 512, lr 0.02, 8 epochs",
    epochs=8,
    batch_size=512,
    lr=0.02,
)
variant(
    "fastnet16-lr0.01-e12-flip",
    "fastnet 16, lr 0.01, 12 epochs, flip; translate:2",
    epochs=12,
    lr=0.01,
    augment=FLIP_SHIFT,
)
variant(
    "fastnet16-lr0.02-e12-flip",
    "fastnet 16, lr 0.02, 12 epochs, flip; translate:2",
    epochs=12,
    lr=0.02,
    augment=FLIP_SHIFT,
)
variant(
    "fastnet16-lr0.01-e10-flip",
    "fastnet 16, lr 0.01, 10 epochs, flip; translate:2",
    epochs=10,
    lr=0.01,
    augment=FLIP_SHIFT,
)
variant(
    "fastnet32-lr0.01-e8-flip",
    "fastnet 32, lr 0.01, 8 epochs, flip; translate:2",
    {"widths": (32, 64, 128)},
    epochs=8,
    lr=0.01,
    augment=FLIP_SHIFT,
)


def test_time_views(images: torch.Tensor, *, flip: bool, shift: int) -> list[torch.Tensor]:
    """The image, its 4 diagonal moves by ``shift`` pixels, and with ``flip`` their mirrors."""
    views = [images]
    if shift:
        height, width = images.shape[2:]
        padded = F.pad(images, (shift, shift, shift, shift))
        views += [
            padded[:, :, dy : dy + height, dx : dx + width]
            for dy in (0, 2 * shift)
            for dx in (0, 2 * shift)
        ]
    return views + ([view.flip(3) for view in views] if flip else [])


def run_variant(name: str, splits: Any, pre: Preprocessing) -> dict[str, Any]:
    _, net, train = VARIANTS[name]
    train = dict(train)
    ema, augment = train.pop("ema", None), train.pop("augment", None)
    test = splits.test

    def accuracy(model: nn.Module, flip: bool = False, shift: int = 0) -> float:
        views = test_time_views(test.images, flip=flip, shift=shift)
        logits = sum(
            predict_logits(model, v, preprocessing=pre, autocast=torch.bfloat16, batch_size=2000)
            for v in views
        )
        return round(100 * score_logits(logits / len(views), test.labels)["accuracy"], 2)

    torch.manual_seed(0)
    model = Net(**net, train_images=pre(splits.train.images[:10_000]))
    curve, average = TestCurve(accuracy), WeightAverage(ema) if ema else None
    history = fit(
        model,
        train=splits.train,
        preprocessing=pre,
        optimizer="adam",
        schedule="onecycle:peak=0.2",
        label_smoothing=train.pop("label_smoothing", 0.1),
        augment=parse_augment(augment) if augment else None,
        callbacks=[curve, *([average] if average else [])],
        seed=0,
        verbose=0,
        **train,
    )
    result: dict[str, Any] = {
        "name": name,
        "train_s": round(sum(row["time"] for row in history), 1),
        "plain": accuracy(model),
        "curve": curve.curve,
    }
    if augment:
        result["flip+shift"] = accuracy(model, flip=True, shift=1)
    if average is not None and average.average is not None:
        averaged = copy.deepcopy(model)
        averaged.load_state_dict(average.average)
        result["ema"] = accuracy(averaged)
    return result


def table() -> str:
    results = {}
    for line in STORE.read_text().splitlines() if STORE.exists() else []:
        record = json.loads(line)
        results[record["name"]] = record
    rows = []
    for name, (description, _, _) in VARIANTS.items():
        if name not in results:
            continue
        r = results[name]
        to_93 = next((f"{s:.1f} s" for s, a in r["curve"] if a >= 93.0), "not reached")
        if to_93 == "not reached" and max(r.get("flip+shift", 0), r.get("ema", 0)) >= 93.0:
            to_93 = f"{r['train_s']:.1f} s (at the end, see the columns)"
        rows.append(
            [
                name,
                description,
                f"{r['train_s']:.1f}",
                f"{r['plain']:.2f}%",
                f"{r['flip+shift']:.2f}%" if "flip+shift" in r else "",
                f"{r['ema']:.2f}%" if "ema" in r else "",
                to_93,
                ", ".join(f"{a:.1f}" for _, a in r["curve"]),
            ]
        )
    headers = [
        "variant",
        "what",
        "train s",
        "test acc.",
        "with test-time flip + shifts",
        "EMA weights",
        "93% after",
        "test acc. after each epoch",
    ]
    return markdown_table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=", ".join(VARIANTS))
    parser.add_argument("--table", action="store_true", help="write the stored table")
    args = parser.parse_args()
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    flush_denormals()
    machine = describe_machine()
    if args.variants:
        splits = load_dataset("fashion-mnist", val_size=0, seed=0)
        pre = Preprocessing.from_dataset(splits.train)
        for name in args.variants:
            result = run_variant(name, splits, pre)
            print(json.dumps(result), flush=True)
            with STORE.open("a") as out:
                out.write(json.dumps(result) + "\n")
    body = (
        f"Machine (this chunk): {machine}.\n\n"
        "Seed 0 each, `./run python benchmarks/fashion_search.py VARIANT...`, in chunks under "
        "the CPU lock; train seconds vary with the machine's speed of the hour (±30%), so "
        "compare a row with its neighbours of the same chunk. Accuracies on the 10,000 test "
        "images in bf16.\n\n" + table()
    )
    print(body)
    if args.table:
        write_section("time_to_accuracy_fashion_search", "Fashion-MNIST short-run search", body)


if __name__ == "__main__":
    main()
