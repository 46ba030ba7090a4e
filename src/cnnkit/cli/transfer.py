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
from cnnkit.cli.params import Given, config_options
from cnnkit.cli.train import print_run_end, resume_options, stopped
from cnnkit.transfer.finetune import FinetuneConfig


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


@config_options(FinetuneConfig, after="resume")
def finetune_command(
    resume: params.ResumeRun = None,
    report: params.WriteReport = True,
    *,
    given: Given,
) -> None:
    """Fine-tune a pretrained backbone with a new head; save it as a run folder."""
    from cnnkit.errors import TrainingInterrupted
    from cnnkit.train.auto import finetune_setup
    from cnnkit.train.callbacks import ProgressBar
    from cnnkit.transfer.finetune import finetune, resume_finetune

    settings = given.values
    try:
        if resume is not None:
            options = resume_options(resume, settings)
            result = resume_finetune(str(resume), **options, callbacks=[ProgressBar(out)])
        else:
            config = FinetuneConfig(**settings)
            config.validate()  # a mistake fails now, before data is loaded or a run made
            config, chosen = finetune_setup(config, set(settings))
            for line in chosen:
                out.print(line, highlight=False, markup=False)
            out.print(
                f"fine-tuning [bold]{config.backbone}[/] on [bold]{config.data}[/]: freeze "
                f"{config.freeze}"
                + (
                    f", unfrozen after {config.unfreeze_after} epochs"
                    if config.unfreeze_after
                    else ""
                )
                + f", {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
                f"lr {config.lr:g} (backbone x{config.backbone_lr_mult:g})"
            )
            result = finetune(config, callbacks=[ProgressBar(out)])
    except TrainingInterrupted as exc:
        stopped(exc)
    for split, metrics in result.metrics.items():
        out.print(
            f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  balanced "
            f"{metrics['balanced_accuracy'] * 100:.2f}%  loss {metrics['loss']:.4f}"
        )
    print_run_end(result.run, report=report, device=settings.get("device", "auto"))
