"""``cnnkit train``: train a model and write a run directory (or resume one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cnnkit.cli.console import err, out

if TYPE_CHECKING:
    from cnnkit.run import Run


def _callback_options(text: str | None) -> dict[str, Any] | None:
    """``"patience=5,monitor=val_accuracy"`` -> options dict; ``"default"`` -> ``{}``."""
    from cnnkit.options import parse_settings

    if text is None:
        return None
    if text.strip() in ("", "default", "on"):
        return {}
    return parse_settings(text)


def count_or_fraction(value: float | None) -> int | float | None:
    """A split size from the command line: ``5000`` -> 5000 (a count), ``0.1`` -> 0.1."""
    return None if value is None else (int(value) if value >= 1 else value)


def train_command(
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        "-r",
        metavar="NAME",
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
        None,
        "--data",
        "-d",
        metavar="SOURCE",
        help="Data source: a name (see `cnnkit datasets`), folder:PATH or a folder "
        "[default: mnist].",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Read the data source's files from this folder only."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        metavar="NAME|FILE",
        help="Model name (see `cnnkit models`) or a model spec file (.yaml/.yml/.json) "
        "[default: lenet].",
    ),
    model_option: list[str] = typer.Option(
        [],
        "--model-option",
        "-o",
        metavar="KEY=VALUE",
        help="Model option, e.g. init=normal (repeatable).",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", "-e", min=1, help="Passes over the training set [default: 10]."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", "-b", min=1, help="Samples per step [default: 100]."
    ),
    optimizer: str | None = typer.Option(
        None,
        "--optimizer",
        metavar="NAME",
        help="sgd, adam, adamw, rmsprop or adagrad [default: adam].",
    ),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate [default: 0.001]."),
    momentum: float | None = typer.Option(
        None, "--momentum", help="SGD/RMSprop momentum [default: 0]."
    ),
    nesterov: bool | None = typer.Option(
        None, "--nesterov/--no-nesterov", help="Nesterov momentum (sgd)."
    ),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="L2 penalty [default: 0]."
    ),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        metavar="NAME[:OPTIONS]",
        help="LR schedule: constant, step, cosine or onecycle; options after ':' joined by "
        "',', from warmup (epochs), every, gamma, final, peak; e.g. cosine:warmup=1 "
        "[default: constant].",
    ),
    loss: str | None = typer.Option(
        None,
        "--loss",
        metavar="NAME",
        help="cross_entropy, binary_cross_entropy or mse [default: cross_entropy].",
    ),
    label_smoothing: float | None = typer.Option(
        None, "--label-smoothing", help="Label smoothing, e.g. 0.1 [default: 0]."
    ),
    augment: list[str] | None = typer.Option(
        None,
        "--augment",
        metavar="STEP|FILE",
        help="Training-time augmentation, batched on the device: transforms like "
        "rotate:p=0.5,max=15 or translate:2 or flip or mixup:0.2 (repeatable; several in "
        "one with ';'), or a YAML/JSON spec file. `cnnkit augment "
        "--list` shows them all; `cnnkit augment SRC -a ... --preview-only` shows them. "
        "'none' turns off a recipe's augmentation.",
    ),
    early_stopping: str | None = typer.Option(
        None,
        "--early-stopping",
        metavar="OPTIONS",
        help="Stop when the monitored value stalls. OPTIONS joined by ',': patience "
        "(epochs, default 0), monitor (val_loss), mode (auto), min_delta (0), "
        "restore_best_weights (false); e.g. patience=5,monitor=val_accuracy.",
    ),
    reduce_lr: str | None = typer.Option(
        None,
        "--reduce-lr",
        metavar="OPTIONS",
        help="Lower the LR on a plateau. OPTIONS joined by ',': factor (default 0.1), "
        "patience (10 epochs), monitor (val_loss), mode (auto), min_delta (1e-4), "
        "cooldown (0), min_lr (0); e.g. factor=0.5,patience=10.",
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
        metavar="NAME",
        help="fp32, bf16 or fp16 [default: auto = bf16 where the CPU/GPU computes it natively].",
    ),
    compile: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the model (often slower on CPU)."
    ),
    val_size: float | None = typer.Option(
        None,
        "--val-size",
        metavar="N|FRACTION",
        help="Validation samples held out of train: a count (5000) or fraction (0.1); "
        "default: the source's (MNIST 5000); 0 for none.",
    ),
    test_size: float | None = typer.Option(
        None,
        "--test-size",
        metavar="N|FRACTION",
        help="Test samples held out for sources without a test part (a folder without "
        "test/): a count or fraction; default 0.2.",
    ),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        metavar="REGEX",
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
        None, "--device", metavar="DEVICE", help="auto, cpu or cuda[:N] [default: auto]."
    ),
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Where run folders go [default: runs]."
    ),
    name: str | None = typer.Option(None, "--name", help="Run folder name (default: generated)."),
    record_filters: str | None = typer.Option(
        None,
        "--record-filters",
        metavar="EPOCHS",
        help="Save the first layer's filters after these epochs, e.g. 0,1,2,5 (0 = before "
        "training) or 'all'; the report shows them forming.",
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Evaluate and write report.html at the end."
    ),
) -> None:
    """Train a model (default: the textbook LeNet on MNIST) and save the run."""
    from cnnkit.errors import ConfigError, TrainingInterrupted
    from cnnkit.options import parse_pairs
    from cnnkit.train.auto import auto_config, wants_auto
    from cnnkit.train.callbacks import ProgressBar
    from cnnkit.train.filters import parse_epochs
    from cnnkit.train.job import TrainConfig, resume_training, run_training

    given: dict[str, Any] = {
        "data": data,
        "data_dir": str(data_dir) if data_dir is not None else None,
        "val_size": count_or_fraction(val_size),
        "test_size": count_or_fraction(test_size),
        "group_by": group_by,
        "split_file": str(split_file) if split_file is not None else None,
        "model": model,
        "model_options": parse_pairs(model_option, what="--model-option") if model_option else None,
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
            fixed = sorted(set(given) - {"epochs", "device", "batch_size"})
            if fixed or recipe:
                raise ConfigError(
                    "--resume continues with the run's own settings; only --epochs and "
                    "--device (and --batch-size, after running out of memory) may be given "
                    f"with it, not {', '.join(fixed) or '--recipe'}"
                )
            out.print(f"resuming [bold]{resume}[/] from its last checkpoint")
            result = resume_training(
                str(resume),
                epochs=epochs,
                device=device,
                batch_size=batch_size,
                callbacks=[ProgressBar(out)],
            )
        else:
            if wants_auto(recipe, given):
                TrainConfig(**given).validate()  # the options given, before data is read
                config, setup, overridden = auto_config(given)
                for line in setup.lines(overridden):
                    out.print(line, highlight=False, markup=False)
            elif recipe:
                config = TrainConfig.from_recipe(recipe, **given)
            else:
                config = TrainConfig(**given)
            if record_filters:
                config.record_filters = parse_epochs(record_filters, config.epochs)
            config.validate()  # a mistake fails now, before data is loaded or a run made
            out.print(
                f"training [bold]{config.model}[/] on [bold]{config.data}[/]"
                + (f" (recipe {config.recipe})" if config.recipe else "")
                + f": {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
                f"lr {config.lr:g}, seed {config.seed}"
            )
            result = run_training(config, callbacks=[ProgressBar(out)])
    except TrainingInterrupted as exc:
        if not exc.run_path:
            raise
        # the one line about it (main's "interrupted" would repeat it): 130 = 128 + SIGINT
        err.print(
            f"[yellow]interrupted; checkpoint saved. Continue with:[/] "
            f"cnnkit train --resume {exc.run_path}"
        )
        raise SystemExit(130) from None
    if not result.is_main:
        return
    for split, metrics in result.metrics.items():
        out.print(
            f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  "
            f"loss {metrics['loss']:.4f}"
        )
    print_run_end(result.run, report=report, device=device or "auto")


def print_run_end(run: Run, *, report: bool, device: str) -> None:
    """The end of a training command: training time, the run folder, and (if asked) the
    HTML report written into it."""
    out.print(f"training time {run.card.train_seconds or 0:.1f}s; run saved to [bold]{run.path}[/]")
    if report:
        from cnnkit.evaluate.report import write_report

        with out.status("writing the report") as status:
            path = write_report(
                run, device=device, on_stage=lambda text: status.update(f"report: {text}")
            )
        out.print(f"report written to [bold]{path}[/]", highlight=False)
