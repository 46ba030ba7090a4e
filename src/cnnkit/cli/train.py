"""``cnnkit train``: train a model and write a run directory (or resume one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from cnnkit.cli import params
from cnnkit.cli.console import err, out
from cnnkit.cli.params import Given, config_options
from cnnkit.train.config import TrainConfig

if TYPE_CHECKING:
    from cnnkit.errors import TrainingInterrupted
    from cnnkit.run import Run


@config_options(TrainConfig, after="resume")
def train_command(
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        "-r",
        metavar="NAME",
        help="Start from a named recipe (see `cnnkit recipes`); 'auto' chooses from the data "
        "(the default for folder:PATH without --model).",
    ),
    resume: params.ResumeRun = None,
    report: params.WriteReport = True,
    *,
    given: Given,
) -> None:
    """Train a model (default: the textbook LeNet on MNIST) and save the run."""
    from cnnkit.errors import TrainingInterrupted
    from cnnkit.train.auto import wants_auto
    from cnnkit.train.callbacks import ProgressBar
    from cnnkit.train.config import auto_config
    from cnnkit.train.job import resume_training, run_training

    settings = given.values
    try:
        if resume is not None:
            options = resume_options(resume, settings, recipe=recipe)
            result = resume_training(str(resume), **options, callbacks=[ProgressBar(out)])
        else:
            if wants_auto(recipe, settings):
                TrainConfig(**settings).validate()  # the options given, before data is read
                config, setup, overridden = auto_config(settings)
                for line in setup.lines(overridden):
                    out.print(line, highlight=False, markup=False)
            elif recipe:
                config = TrainConfig.from_recipe(recipe, **settings)
            else:
                config = TrainConfig(**settings)
            given.complete(config)
            config.validate()  # a mistake fails now, before data is loaded or a run made
            out.print(
                f"training [bold]{config.model}[/] on [bold]{config.data}[/]"
                + (f" (recipe {config.recipe})" if config.recipe else "")
                + f": {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
                f"lr {config.lr:g}, seed {config.seed}"
            )
            result = run_training(config, callbacks=[ProgressBar(out)])
    except TrainingInterrupted as exc:
        stopped(exc)
    if not result.is_main:
        return
    for split, metrics in result.metrics.items():
        out.print(
            f"{split} accuracy [bold green]{metrics['accuracy'] * 100:.2f}%[/]  "
            f"loss {metrics['loss']:.4f}"
        )
    print_run_end(result.run, report=report, device=settings.get("device", "auto"))


def resume_options(
    resume: Path, settings: dict[str, Any], *, recipe: str | None = None
) -> dict[str, Any]:
    """The options a ``--resume`` may change (epochs, device, batch size), after refusing
    any other setting given with it; says what is resumed."""
    from cnnkit.errors import ConfigError

    fixed = sorted(set(settings) - {"epochs", "device", "batch_size"})
    if fixed or recipe:
        raise ConfigError(
            "--resume continues with the run's own settings; only --epochs and "
            "--device (and --batch-size, after running out of memory) may be given "
            f"with it, not {', '.join(fixed) or '--recipe'}"
        )
    out.print(f"resuming [bold]{resume}[/] from its last checkpoint")
    return {name: settings.get(name) for name in ("epochs", "device", "batch_size")}


def stopped(exc: TrainingInterrupted) -> NoReturn:
    """The end of a job stopped by Ctrl-C: the one line about it (main's "interrupted" would
    repeat it) and exit code 130 (128 + SIGINT)."""
    if not exc.run_path:
        raise exc
    if exc.resume:
        err.print(f"[yellow]interrupted; checkpoint saved. Continue with:[/] {exc.resume}")
    else:
        err.print(f"[yellow]interrupted; the run is kept, marked interrupted:[/] {exc.run_path}")
    raise SystemExit(130) from None


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
