"""``cnnkit features``: compute (or reuse) a backbone's embeddings of a data source."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import typer

from cnnkit.cli import params
from cnnkit.cli.console import out


@contextmanager
def on_ray(address: str | None, spec: str, data: str, input_size: int | None) -> Iterator[Any]:
    """A features function running on Ray at ``address`` (None: compute here)."""
    if address is None:
        yield None
        return
    from cnnkit.data.sources import fit_rule
    from cnnkit.transfer.ray_features import connected, ray_embed

    with connected(address):
        yield partial(ray_embed, spec, fit=fit_rule(data), input_size=input_size)


def _advance(bar: Any, task: Any, done: int, total: int) -> None:
    bar.update(task, completed=done, total=total)


def embed_splits(
    backbone: Any,
    splits: Any,
    *,
    cache_dir: Path | None,
    input_size: int | None,
    device: str,
    embedder: Any = None,
) -> dict[str, Any]:
    """Cached features of every split, with a progress bar; prints one line per split."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cnnkit.devices import resolve_device
    from cnnkit.transfer.features import cached_embed

    torch_device = resolve_device(device)
    results = {}
    for name, dataset in splits.items():
        started = time.perf_counter()
        with Progress(
            TextColumn(f"{backbone.name} {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
            transient=True,
            disable=not out.is_terminal,
        ) as bar:
            task = bar.add_task(name, total=len(dataset))
            result = cached_embed(
                backbone,
                dataset,
                cache_dir=cache_dir,
                input_size=input_size,
                device=torch_device,
                progress=partial(_advance, bar, task),
                embedder=embedder,
            )
        how = "reused from cache" if result.reused else "computed"
        out.print(
            f"{backbone.name} {name}: {tuple(result.features.shape)} features, {how} in "
            f"{time.perf_counter() - started:.1f}s -> {result.path}",
            soft_wrap=True,
        )
        results[name] = result
    return results


def features_command(
    backbone: str = typer.Option(
        "efficientnet_lite0",
        "--backbone",
        "-b",
        help="efficientnet_lite0, run:PATH, torchvision:NAME or timm:NAME.",
    ),
    data: params.SampleData = "fashion-mnist",
    data_dir: params.DataDir = None,
    train_per_class: params.TrainPerClass = None,
    test_size: params.SampleTestSize = None,
    input_size: params.InputSize = None,
    seed: params.SampleSeed = 0,
    device: params.Device = "auto",
    cache_dir: params.FeatureCache = None,
    ray: params.RayAddress = None,
) -> None:
    """Compute a backbone's features of a data source's train and test images, once.

    Features are cached by backbone weights and data fingerprint: a second call reuses them,
    a changed backbone or changed data recomputes them.
    """
    from cnnkit.transfer.backbones import load_backbone
    from cnnkit.transfer.ray_features import require_ray
    from cnnkit.transfer.sample import Sample, load_sample

    if ray is not None:
        require_ray(data)  # before any data is read
    sample = Sample(train_per_class, 0, test_size, seed)
    splits = load_sample(data, sample, data_dir=data_dir)
    loaded = load_backbone(backbone)
    out.print(
        f"features of [bold]{data}[/] ({sample.describe()}) from [bold]{loaded.name}[/]: "
        f"input {'x'.join(map(str, loaded.input_shape))}"
        + (f" resized to {input_size}x{input_size}" if input_size else "")
        + f", {loaded.num_features} features per image"
    )
    with on_ray(ray, backbone, data, input_size) as embedder:
        embed_splits(
            loaded,
            splits,
            cache_dir=cache_dir,
            input_size=input_size,
            device=device,
            embedder=embedder,
        )
