"""``cnnkit train``: train a model and write a run directory (or resume one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cnnkit.cli.console import err, out

if TYPE_CHECKING:
    from cnnkit.run import Run


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["init=normal", "rate=0.2"]`` -> ``{"init": "normal", "rate": 0.2}`` (YAML scalars)."""
    import yaml

    from cnnkit.errors import ConfigError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option {pair!r} must look like key=value")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _callback_options(text: str | None) -> dict[str, Any] | None:
    """``"patience=5,monitor=val_accuracy"`` -> options dict; ``"default"`` -> ``{}``."""
    if text is None:
        return None
    if text.strip() in ("", "default", "on"):
        return {}
    return parse_options([part for part in text.split(",") if part.strip()])


def count_or_fraction(value: float | None) -> int | float | None:
    """A split size from the command line: ``5000`` -> 5000 (a count), ``0.1`` -> 0.1."""
    return None if value is None else (int(value) if value >= 1 else value)


def train_command(
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        "-r",
        help="Start from a named recipe (see `cnnkit recipes`); 'auto' chooses from the data "
        "(the default for folder:PATH without --model).",
    ),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue the run in this folder from its last checkpoint (--epochs and "
        "--device may change; everything else is the run's).",
    ),
    data: str | None = typer.Option(
        None, "--data", "-d", help="Data source (see `cnnkit datasets`) [default: mnist]."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Read the data source's files from this folder only."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Model name (see `cnnkit models`) or a model spec file (.yaml/.yml/.json) "
        "[default: lenet].",
    ),
    model_option: list[str] = typer.Option(
        [], "--model-option", "-o", help="Model option key=value, e.g. init=normal (repeatable)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", "-e", min=1, help="Passes over the training set [default: 10]."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", "-b", min=1, help="Samples per step [default: 100]."
    ),
    optimizer: str | None = typer.Option(
        None, "--optimizer", help="sgd, adam, adamw or rmsprop [default: adam]."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate [default: 0.001]."),
    momentum: float | None = typer.Option(None, "--momentum", help="SGD/RMSprop momentum."),
    nesterov: bool | None = typer.Option(
        None, "--nesterov/--no-nesterov", help="Nesterov momentum (sgd)."
    ),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="L2 penalty."),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        help="LR schedule: constant, step, cosine or onecycle, with options like "
        "cosine:warmup=1 or step:every=5,gamma=0.5 [default: constant].",
    ),
    loss: str | None = typer.Option(
        None, "--loss", help="cross_entropy, binary_cross_entropy or mse [default: cross_entropy]."
    ),
    label_smoothing: float | None = typer.Option(
        None, "--label-smoothing", help="Label smoothing, e.g. 0.1."
    ),
    augment: list[str] | None = typer.Option(
        None,
        "--augment",
        help="Training-time augmentation, batched on the device: transforms like "
        "'rotate:p=0.5,max=15', 'distort:magnitude=1.5', 'translate:2', 'flip', 'mixup:0.2' "
        "(repeatable; several in one with ';'), or a YAML/JSON spec file. `cnnkit augment "
        "--list` shows them all; `cnnkit augment SRC -a ... --preview-only` shows them. "
        "'none' turns off a recipe's augmentation.",
    ),
    early_stopping: str | None = typer.Option(
        None,
        "--early-stopping",
        help="Stop when the monitored value stalls: 'patience=5[,monitor=val_loss,"
        "min_delta=0,restore_best_weights=true]'.",
    ),
    reduce_lr: str | None = typer.Option(
        None,
        "--reduce-lr",
        help="Lower the LR on a plateau: 'factor=0.5,patience=10[,monitor=val_loss,"
        "min_delta=1e-4,cooldown=0,min_lr=0]'.",
    ),
    class_weight: str | None = typer.Option(
        None,
        "--class-weight",
        help="'balanced': weigh each class's loss by its inverse frequency (for imbalanced "
        "classes; the auto setup turns it on when classes are imbalanced).",
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="fp32, bf16 or fp16 [default: auto = bf16 where the CPU/GPU computes it natively].",
    ),
    compile: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the model (often slower on CPU)."
    ),
    val_size: float | None = typer.Option(
        None,
        "--val-size",
        help="Validation samples held out of train: a count (5000) or fraction (0.1); "
        "default: the source's (MNIST 5000); 0 for none.",
    ),
    test_size: float | None = typer.Option(
        None,
        "--test-size",
        help="Test samples held out for sources without a test part (a folder without "
        "test/): a count or fraction; default 0.2.",
    ),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        help="Regular expression whose first (...) group names each sample's group in its "
        "file path; a group never spans train/val/test.",
    ),
    split_file: Path | None = typer.Option(
        None,
        "--split-file",
        help="Reuse the split of a split.json or of a run directory (e.g. runs/NAME).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seeds the split, initial weights and shuffling [default: 0]."
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu or cuda[:N] [default: auto]."
    ),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Where run folders go."),
    name: str | None = typer.Option(None, "--name", help="Run folder name (default: generated)."),
    record_filters: str | None = typer.Option(
        None,
        "--record-filters",
        help="Save the first layer's filters after these epochs, e.g. 0,1,2,5 (0 = before "
        "training) or 'all'; the report shows them forming.",
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Evaluate and write report.html at the end."
    ),
) -> None:
    """Train a model (default: the textbook LeNet on MNIST) and save the run."""
    from cnnkit.errors import ConfigError, TrainingInterrupted
    from cnnkit.evaluate.filters import parse_epochs
    from cnnkit.train.auto import auto_config, wants_auto
    from cnnkit.train.callbacks import ProgressBar
    from cnnkit.train.job import TrainConfig, resume_training, run_training

    given: dict[str, Any] = {
        "data": data,
        "data_dir": str(data_dir) if data_dir is not None else None,
        "val_size": count_or_fraction(val_size),
        "test_size": count_or_fraction(test_size),
        "group_by": group_by,
        "split_file": str(split_file) if split_file is not None else None,
        "model": model,
        "model_options": parse_options(model_option) if model_option else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "schedule": schedule,
        "loss": loss,
        "label_smoothing": label_smoothing,
        "augment": ([] if augment == ["none"] else augment) if augment else None,
        "early_stopping": _callback_options(early_stopping),
        "reduce_lr": _callback_options(reduce_lr),
        "class_weight": class_weight,
        "precision": precision,
        "compile": compile,
        "seed": seed,
        "device": device,
        "runs_dir": str(runs_dir) if runs_dir is not None else None,
        "name": name,
    }
    given = {key: value for key, value in given.items() if value is not None}
    try:
        if resume is not None:
            fixed = sorted(set(given) - {"epochs", "device"})
            if fixed or recipe:
                raise ConfigError(
                    "--resume continues with the run's own settings; only --epochs and "
                    f"--device may be given with it, not {', '.join(fixed) or '--recipe'}"
                )
            out.print(f"resuming [bold]{resume}[/] from its last checkpoint")
            result = resume_training(
                str(resume), epochs=epochs, device=device, callbacks=[ProgressBar(out)]
            )
        else:
            if wants_auto(recipe, given):
                config, setup, overridden = auto_config(given)
                for line in setup.lines(overridden):
                    out.print(line, highlight=False, markup=False)
            elif recipe:
                config = TrainConfig.from_recipe(recipe, **given)
            else:
                config = TrainConfig(**given)
            if record_filters:
                config.record_filters = parse_epochs(record_filters, config.epochs)
            out.print(
                f"training [bold]{config.model}[/] on [bold]{config.data}[/]"
                + (f" (recipe {config.recipe})" if config.recipe else "")
                + f": {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
                f"lr {config.lr:g}, seed {config.seed}"
            )
            result = run_training(config, callbacks=[ProgressBar(out)])
    except TrainingInterrupted as exc:
        if exc.run_path:
            err.print(
                f"[yellow]interrupted; checkpoint saved. Continue with:[/] "
                f"cnnkit train --resume {exc.run_path}"
            )
        raise
    if not result.is_main:
        return
    out.print(f"precision {result.training.get('precision')}", highlight=False)
    for split, metrics in result.metrics.items():
        out.print(
            f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  "
            f"loss {metrics['loss']:.4f}"
        )
    print_run_end(result.run, report=report, device=device or "auto")


def print_run_end(run: Run, *, report: bool, device: str) -> None:
    """The end of a training command: training time, the run folder, and (if asked) the
    HTML report written into it."""
    out.print(f"training time {run.card['train_seconds']:.1f}s; run saved to [bold]{run.path}[/]")
    if report:
        from cnnkit.evaluate.report import write_report

        path = write_report(run, device=device)
        out.print(f"report written to [bold]{path}[/]", highlight=False)
