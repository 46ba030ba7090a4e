"""``cnnkit transfer`` (features + classic heads, compared) and ``cnnkit finetune``.

They are two commands because they are two kinds of job: ``transfer`` fits scikit-learn
heads on cached features in seconds and prints a comparison table (nothing to save but the
table), while ``finetune`` trains the network itself with ``fit`` for epochs and writes a run
directory; one command with a mode flag would leave half of its options meaningless in each
mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cnnkit.cli import params
from cnnkit.cli.console import out
from cnnkit.cli.features import embed_splits, on_ray
from cnnkit.cli.train import print_run_end, stopped


def _print_table(rows: list[Any], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column, justify in (
        ("method", "left"),
        ("backbone / model", "left"),
        ("features", "right"),
        ("train", "right"),
        ("test", "right"),
        ("accuracy", "right"),
        ("balanced acc.", "right"),
        ("fit time", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            row.method,
            row.backbone,
            str(row.features or "-"),
            str(row.train_size),
            str(row.test_size),
            f"{row.accuracy * 100:.2f}%",
            f"{row.balanced_accuracy * 100:.2f}%",
            f"{row.seconds:.1f}s",
        )
    out.print(table)


def transfer_command(
    backbones: str = typer.Option(
        "efficientnet_lite0",
        "--backbones",
        "--backbone",
        "-b",
        help="Comma-separated backbones: efficientnet_lite0, run:PATH, torchvision:NAME, "
        "timm:NAME.",
    ),
    head: str = typer.Option(
        "logreg", "--head", help="Comma-separated heads: logreg, svm, rf, mlp."
    ),
    data: params.SampleData = "fashion-mnist",
    data_dir: params.DataDir = None,
    train_per_class: params.TrainPerClass = None,
    test_size: params.SampleTestSize = None,
    input_size: params.InputSize = None,
    baseline: str | None = typer.Option(
        None, "--baseline", help="Also train this registered model from scratch (e.g. lenet)."
    ),
    baseline_epochs: int = typer.Option(
        20, "--baseline-epochs", min=1, help="Epochs for the from-scratch baseline."
    ),
    runs: str | None = typer.Option(
        None, "--runs", help="Comma-separated run folders (e.g. fine-tuned) to measure too."
    ),
    save: Path | None = typer.Option(None, "--save", help="Also write the table as JSON here."),
    seed: params.SampleSeed = 0,
    device: params.Device = "auto",
    cache_dir: params.FeatureCache = None,
    ray: params.RayAddress = None,
) -> None:
    """Fit classic heads on pretrained features and compare backbones in one table."""
    from cnnkit.atomic import write_json
    from cnnkit.devices import resolve_device
    from cnnkit.train.auto import transfer_input_size
    from cnnkit.transfer.backbones import load_backbone
    from cnnkit.transfer.compare import compare_heads, run_row, scratch_baseline
    from cnnkit.transfer.heads import parse_heads
    from cnnkit.transfer.sample import Sample, load_sample

    heads = parse_heads(head)  # a wrong head name fails before any feature is computed
    if ray is not None:
        from cnnkit.transfer.ray_features import require_ray

        require_ray(data)
    specs = [spec.strip() for spec in backbones.split(",") if spec.strip()]
    if input_size is None:
        input_size, chosen = transfer_input_size(data, specs, data_dir=data_dir, seed=seed)
        for line in chosen:
            out.print(line, highlight=False, markup=False)
    sample = Sample(train_per_class, 0, test_size, seed)
    splits = load_sample(data, sample, data_dir=data_dir)
    out.print(f"[bold]{data}[/] ({sample.describe()}): heads {', '.join(heads)}")
    features = {}
    for spec in specs:
        backbone = load_backbone(spec)
        with on_ray(ray, spec, data, input_size) as embedder:
            features[backbone.name] = embed_splits(
                backbone,
                splits,
                cache_dir=cache_dir,
                input_size=input_size,
                device=device,
                embedder=embedder,
            )
    rows = []
    torch_device = resolve_device(device)
    if baseline:
        out.print(f"training {baseline} from scratch for {baseline_epochs} epochs ...")
        rows.append(
            scratch_baseline(
                baseline, splits, epochs=baseline_epochs, seed=seed, device=torch_device
            )
        )
    rows.extend(compare_heads(features, heads, seed=seed))
    for run in (r.strip() for r in (runs or "").split(",")):
        if run:
            rows.append(run_row(run, splits, device=torch_device))
    _print_table(rows, f"test set: {len(splits.test or [])} images of {data}")
    if save is not None:
        write_json(
            save,
            {
                "data": data,
                "sample": sample.records(),
                "input_size": input_size,
                "rows": [row.to_dict() for row in rows],
            },
        )
        out.print(f"table saved to {save}")


def finetune_command(
    backbone: str = typer.Option(
        "efficientnet_lite0", "--backbone", "-b", help="efficientnet_lite0 or run:PATH."
    ),
    data: params.SampleData = "fashion-mnist",
    data_dir: params.DataDir = None,
    train_per_class: params.TrainPerClass = None,
    val_size: int | None = typer.Option(
        None,
        "--val-size",
        min=0,
        help="Validate on a stratified sample of this many validation images (0: none).",
    ),
    test_size: params.SampleTestSize = None,
    input_size: params.InputSize = None,
    freeze: str = typer.Option(
        "all", "--freeze", help="Freeze the backbone: all, none, or until:LAYER (e.g. blocks.8)."
    ),
    unfreeze_after: int | None = typer.Option(
        None, "--unfreeze-after", min=1, help="Unfreeze everything after this many epochs."
    ),
    epochs: int | None = typer.Option(
        None,
        "--epochs",
        "-e",
        min=1,
        help="Passes over the training set [default: chosen from a folder's size, else 5].",
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Samples per step."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam or sgd."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate of the new head."),
    backbone_lr_mult: float = typer.Option(
        0.1, "--backbone-lr-mult", help="Backbone learning rate = lr x this (discriminative)."
    ),
    seed: params.SampleSeed = 0,
    device: params.Device = "auto",
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
    name: str | None = typer.Option(None, "--name", help="Run folder name (default: generated)."),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Evaluate and write report.html at the end."
    ),
) -> None:
    """Fine-tune a pretrained backbone with a new head; save it as a run folder."""
    from cnnkit.errors import TrainingInterrupted
    from cnnkit.train.auto import finetune_setup
    from cnnkit.train.callbacks import ProgressBar
    from cnnkit.transfer.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        backbone=backbone,
        data=data,
        data_dir=data_dir,
        train_per_class=train_per_class,
        val_size=val_size,
        test_size=test_size,
        input_size=input_size,
        freeze=freeze,
        unfreeze_after=unfreeze_after,
        **({"epochs": epochs} if epochs is not None else {}),
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        backbone_lr_mult=backbone_lr_mult,
        seed=seed,
        device=device,
        runs_dir=str(runs_dir),
        name=name,
    )
    config.validate()  # a mistake fails now, before data is loaded or a run made
    given = {k for k, v in (("epochs", epochs), ("input_size", input_size)) if v is not None}
    config, chosen = finetune_setup(config, given)
    for line in chosen:
        out.print(line, highlight=False, markup=False)
    epochs = config.epochs
    out.print(
        f"fine-tuning [bold]{backbone}[/] on [bold]{data}[/]: freeze {freeze}"
        + (f", unfrozen after {unfreeze_after} epochs" if unfreeze_after else "")
        + f", {epochs} epochs, batch {batch_size}, {optimizer} lr {lr:g} "
        f"(backbone x{backbone_lr_mult:g})"
    )
    try:
        result = finetune(config, callbacks=[ProgressBar(out)])
    except TrainingInterrupted as exc:
        stopped(exc, resumable=False)
    for split, metrics in result.metrics.items():
        out.print(
            f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  balanced "
            f"{metrics['balanced_accuracy'] * 100:.2f}%  loss {metrics['loss']:.4f}"
        )
    print_run_end(result.run, report=report, device=device)
