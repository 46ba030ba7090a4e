"""The run report: one self-contained HTML file a person can open anywhere, offline.

``write_report`` evaluates a run (:mod:`cnnkit.evaluate.evaluation`), draws its pictures into
``plots/`` beside the report (:mod:`cnnkit.evaluate.plots`) and writes ``report.html`` with
every picture embedded as a ``data:`` URI, all styles inline, no script and no network
access needed to view it. The page is rendered from the Jinja2 templates in
``cnnkit/evaluate/templates`` (``report.html.j2``, ``comparison.html.j2``) with autoescaping:
this module computes the values, the templates lay them out.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit import __version__
from cnnkit.atomic import atomic_open
from cnnkit.card import RunCard
from cnnkit.errors import CnnkitError, RunError
from cnnkit.evaluate import plots
from cnnkit.evaluate.evaluation import Evaluation, evaluate_split, save_evaluation
from cnnkit.evaluate.gradcam import grad_cam
from cnnkit.run import Run
from cnnkit.run_files import PLOTS_DIR
from cnnkit.train.filters import filter_weights, recorded_filters

log = logging.getLogger(__name__)

TOP_LOSSES = 24  # images in the top-losses gallery
GRADCAM_SAMPLES = 8  # top-loss images explained with Grad-CAM
MATRIX_TABLE_MAX = 20  # confusion matrices up to this size are also printed as a table
SUMMARY_OPEN_MAX = 30  # model summaries up to this many rows are shown unfolded


def read_history(run: Run) -> list[dict[str, float]]:
    """The run's per-epoch history, or an empty list when it has none."""
    if not run.files.history.is_file():
        return []
    rows = run.read_json(run.files.history)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def draw_pictures(
    evaluation: Evaluation,
    folder: str | os.PathLike[str],
    *,
    top_losses: int = TOP_LOSSES,
    gradcam_samples: int = GRADCAM_SAMPLES,
) -> dict[str, Path]:
    """Every picture of a run, as PNG files in ``folder``.

    Returns:
        ``{key: path}`` for the pictures drawn; keys among ``history``, ``confusion_matrix``,
        ``top_losses``, ``gradcam``, ``filters``, ``filter_epochs``. A picture the run
        cannot give (no history, no convolution layer) is left out and logged.
    """
    run = evaluation.run
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = run.card
    title = card.name
    written: dict[str, Path] = {}

    def save(key: str, figure: Any) -> None:
        written[key] = plots.save_figure(figure, folder / f"{key}.png")

    history = read_history(run)
    if history:
        save("history", plots.plot_history(history, card.training, title=title))
    metrics = evaluation.metrics
    save(
        "confusion_matrix",
        plots.plot_confusion_matrix(
            metrics["confusion_matrix"], metrics["classes"], title=f"{evaluation.split} split"
        ),
    )
    predictions = evaluation.predictions
    worst = predictions.top_losses(top_losses)
    classes = predictions.classes
    probabilities = predictions.probabilities
    predicted = predictions.predicted
    losses = predictions.losses
    images = evaluation.dataset.images[worst].numpy()
    save(
        "top_losses",
        plots.plot_top_losses(
            images,
            [classes[int(predictions.labels[i])] for i in worst],
            [classes[int(predicted[i])] for i in worst],
            [float(probabilities[i, predicted[i]]) for i in worst],
            [float(losses[i]) for i in worst],
            [predictions.ids[i] for i in worst],
            title=f"the {len(worst)} {evaluation.split} samples with the highest loss",
        ),
    )
    model = evaluation.model
    try:
        explained = worst[:gradcam_samples]
        cam = grad_cam(
            model,
            evaluation.dataset.images[explained],
            preprocessing=card.preprocessing,
            device=evaluation.device,
        )
        captions = [
            f"{plots.shorten_id(predictions.ids[i], 22)}\n"
            f"true {classes[int(predictions.labels[i])]}, "
            f"explains {classes[int(t)]} ({float(cam.probabilities[k, t]):.2f})"
            for k, (i, t) in enumerate(zip(explained, cam.targets, strict=True))
        ]
        save(
            "gradcam",
            plots.plot_gradcam(
                images[: len(explained)],
                cam.heatmaps.numpy(),
                captions,
                layer=cam.layer,
                title=f"Grad-CAM at {cam.layer} on the top losses: where the model saw "
                "the class it predicted",
            ),
        )
        layer, weights = filter_weights(model)
        save("filters", plots.plot_filters(weights, layer=layer))
    except CnnkitError as exc:
        log.warning("no Grad-CAM or filter pictures: %s", exc)
    records = recorded_filters(run.path)
    if records:
        save("filter_epochs", plots.plot_filter_epochs(records))
    return written


def write_report(
    run: Run | str | os.PathLike[str],
    *,
    split: str | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Path:
    """Evaluate a run, draw its pictures and write its HTML report.

    Args:
        run: a run directory.
        split: the split evaluated (default ``test``, else ``val``).
        data: evaluate on another data source with the same classes (see
            :func:`~cnnkit.evaluate.evaluation.evaluate_split`).
        data_dir: read the data from this folder.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        out: the HTML file to write (default ``<run>/report.html``); ``metrics.json``,
            the predictions CSV and ``plots/`` go beside it.
        on_stage: called with what is being done next (``evaluating the test split``,
            ``drawing the plots``, ...), e.g. to show it on a status line.

    Returns:
        The report's path.
    """
    stage = on_stage or (lambda text: None)
    run = run if isinstance(run, Run) else Run.open(run)
    target = Path(out) if out is not None else run.files.report
    stage(f"evaluating the model on the {split} split" if split else "evaluating the model")
    evaluation = evaluate_split(run, split=split, data=data, data_dir=data_dir, device=device)
    save_evaluation(evaluation, target.parent)
    stage("drawing the plots")
    pictures = draw_pictures(evaluation, target.parent / PLOTS_DIR)  # beside the report
    stage("writing the page")
    page = render_report(evaluation, pictures, history=read_history(run))
    with atomic_open(target, "w") as handle:
        handle.write(page)
    log.info("report written to %s", target)
    return target


# -- HTML ----------------------------------------------------------------------------------


def _templates() -> Any:
    """The report's Jinja2 templates (``cnnkit/evaluate/templates``), every value autoescaped."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("cnnkit.evaluate", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _data_uri(path: Path | None) -> str | None:
    """A PNG file as a ``data:`` URI (the page embeds its pictures), None if there is none."""
    if path is None or not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value) * 100:.2f}%"


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min ({value:.0f} s)"


def _short(value: Any) -> Any:
    """JSON-ish values for a table cell: lists and dicts compactly."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(_short(v)) for v in value) or "—"
    return value


def _summary(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """The layer-by-layer summary's rows and totals, or the problem that prevented it."""
    from cnnkit.layers.summary import summary

    try:
        table = summary(model, input_shape)
    except CnnkitError as exc:
        log.warning("no model summary in the report: %s", exc)
        return {"summary_problem": str(exc), "summary_rows": [], "summary_open": True}
    rows = [
        (
            f"{row.name} ({row.type})",
            table.shape_text(row.output_shape),
            f"{row.params:,}",
            row.counted_as,
            "x".join(map(str, row.receptive_field))
            if isinstance(row.receptive_field, tuple)
            else (row.receptive_field or ""),
            f"{row.mult_adds:,}" if row.mult_adds else "",
        )
        for row in table.layers
    ]
    return {
        "summary_problem": None,
        "summary_rows": rows,
        "summary_open": len(rows) <= SUMMARY_OPEN_MAX,
        "totals": f"{table.total_params:,} ({table.trainable_params:,} trainable, "
        f"{table.non_trainable_params:,} non-trainable)",
    }


def _run_card(card: RunCard, model: nn.Module, evaluation: Evaluation) -> dict[str, Any]:
    """The run card's tables: run, data, model, recipe, training, environment, summary."""
    data = card.data
    classes = data.classes
    more = " …" if len(classes) > 30 else ""
    summary = _summary(model, card.preprocessing.input_shape)
    record = card.model
    pre = card.preprocessing
    return {
        **summary,
        "run_rows": [
            ("name", card.name),
            ("status", card.status),
            ("created", card.created),
            ("training time", _seconds(card.train_seconds)),
            ("total time", _seconds(card.total_seconds)),
            ("folder", str(evaluation.run.path.resolve())),
        ],
        "data_rows": [
            ("source", data.source),
            ("files", [f"{k}: {v}" for k, v in data.origin.items()]),
            ("split sizes", ", ".join(f"{k} {v:,}" for k, v in data.sizes.items())),
            ("split seed", data.split.seed),
            (
                "validation size asked",
                "source default" if data.split.val_size is None else data.split.val_size,
            ),
            ("classes", f"{len(classes)}: " + ", ".join(classes[:30]) + more),
            ("fingerprints (SHA-256)", list(data.fingerprints.items())),
            ("normalisation", f"mean {_short(pre.mean)}, std {_short(pre.std)}"),
            ("resize rule", pre.fit),
            ("evaluated here", f"{evaluation.split}: {evaluation.metrics.get('data', '')}"),
        ],
        "model_rows": [
            ("name", record.name),
            ("options", _short(record.options)),
            ("input shape (C, H, W)", _short(record.input_shape)),
            ("classes", record.num_classes),
            ("parameters", summary.get("totals") or f"{record.parameters or 0:,}"),
        ],
        "recipe_rows": [(k, _short(v)) for k, v in card.config.items() if k != "name"],
        "training_rows": [(k.replace("_", " "), _short(v)) for k, v in card.training.items()],
        "environment_rows": list(card.environment.to_dict().items()),
    }


def _headline(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    tiles = [(f"{metrics['split']} accuracy", _pct(metrics["accuracy"]))]
    for k, value in metrics.get("top_k_accuracy", {}).items():
        if k != "1":
            tiles.append((f"top-{k} accuracy", _pct(value)))
    tiles += [
        ("balanced accuracy", _pct(metrics["balanced_accuracy"])),
        ("BER = 1 - balanced acc.", f"{metrics['ber']:.4f}"),
        ("loss (cross-entropy)", f"{metrics['loss']:.4f}"),
        ("samples", f"{metrics['samples']:,}"),
    ]
    return tiles


def _metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics, classification report, confusion matrix and confused pairs tables."""
    report = metrics["report"]
    classes = [k for k in report if isinstance(report[k], dict) and not k.endswith(" avg")]
    averages = [k for k in report if k.endswith(" avg")]
    recall_floor = sorted(report[c]["recall"] for c in classes)[: max(1, len(classes) // 10)]
    low = recall_floor[-1] if recall_floor else -1.0

    def row(name: str) -> list[Any]:
        r = report[name]
        return [
            name,
            f"{r['precision']:.4f}",
            f"{r['recall']:.4f}",
            f"{r['f1-score']:.4f}",
            f"{int(r['support']):,}",
        ]

    marks = ["low" if report[c]["recall"] <= low and len(classes) > 2 else "" for c in classes]
    names = metrics["classes"]
    small = len(names) <= MATRIX_TABLE_MAX
    return {
        "headline": _headline(metrics),
        "report_rows": [row(c) for c in classes] + [row(a) for a in averages],
        "report_marks": [*marks, *([""] * len(averages))],
        "matrix_header": ["true \\ predicted", *names],
        "matrix_rows": [
            [c, *(f"{v:,}" for v in r)]
            for c, r in zip(names, metrics["confusion_matrix"], strict=True)
        ]
        if small
        else [],
        "pairs": [
            (p["true"], p["predicted"], f"{p['count']:,}", _pct(p["rate"]))
            for p in metrics.get("most_confused", [])
        ],
    }


SECTIONS = (
    ("run-card", "Run card"),
    ("curves", "Training curves"),
    ("metrics", "Metrics"),
    ("confusion", "Confusion matrix"),
    ("confused-pairs", "Most-confused pairs"),
    ("top-losses", "Top losses"),
    ("gradcam", "Grad-CAM"),
    ("filters", "Filters"),
)


def render_report(
    evaluation: Evaluation,
    pictures: Mapping[str, Path],
    *,
    history: Sequence[Mapping[str, float]],
) -> str:
    """The report page as one HTML string (pictures read from ``pictures`` and embedded)."""
    card = evaluation.run.card
    metrics = evaluation.metrics
    keys = [k for k in history[0] if k != "epoch"] if history else []
    context = {
        "title": f"{card.name} — cnnkit report",
        "name": card.name,
        "model_name": card.model.name,
        "source": card.data.source,
        "split": metrics["split"],
        "samples": f"{metrics['samples']:,}",
        "tiles": _headline(metrics)[:4],
        "sections": SECTIONS,
        "pictures": {
            key: _data_uri(pictures.get(key))
            for key in ("history", "confusion_matrix", "top_losses", "gradcam", "filters")
        }
        | {"filter_epochs": _data_uri(pictures.get("filter_epochs"))},
        "history_header": ["epoch", *keys],
        "history_rows": [
            [row.get("epoch", ""), *(_cell(k, row.get(k)) for k in keys)] for row in history
        ],
        "version": __version__,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        **_run_card(card, evaluation.model, evaluation),
        **_metrics(metrics),
    }
    return _templates().get_template("report.html.j2").render(context) + "\n"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key.endswith("accuracy"):
        return _pct(value)
    if key == "lr":
        return f"{float(value):.3g}"
    if key == "time":
        return f"{float(value):.1f} s"
    return f"{float(value):.4f}" if isinstance(value, float) else str(value)


# -- comparing runs ------------------------------------------------------------------------


def summarize_run(run: Run) -> dict[str, Any]:
    """One run's key facts for a side-by-side comparison (from its files; nothing recomputed).

    Keys: ``name``, ``model``, ``parameters``, ``data``, ``optimizer``, ``lr``,
    ``batch_size``, ``epochs`` (run), ``seed``, ``device``, ``train_seconds``,
    ``best_val_accuracy``, and the test (or validation) ``accuracy``, ``loss``,
    ``balanced_accuracy``, ``ber`` where ``metrics.json`` has them.
    """
    card = run.card
    config = card.config  # the settings the job ran with
    history = read_history(run)
    metrics = run.read_json(run.files.metrics) if run.files.metrics.is_file() else {}
    measured = metrics.get("test") or metrics.get("val") or {}
    val = [row["val_accuracy"] for row in history if "val_accuracy" in row]
    return {
        "name": card.name,
        "model": card.model.name,
        "parameters": card.model.parameters,
        "data": card.data.source,
        "optimizer": config.get("optimizer"),
        "lr": config.get("lr"),
        "batch_size": config.get("batch_size"),
        "epochs": len(history) or config.get("epochs"),
        "seed": config.get("seed"),
        "device": card.environment.device,
        "train_seconds": card.train_seconds,
        "best_val_accuracy": max(val) if val else None,
        "split": "test" if metrics.get("test") else ("val" if metrics.get("val") else None),
        "accuracy": measured.get("accuracy"),
        "loss": measured.get("loss"),
        "balanced_accuracy": measured.get("balanced_accuracy"),
        "ber": measured.get("ber"),
    }


def write_comparison(
    runs: Sequence[Run | str | os.PathLike[str]], out: str | os.PathLike[str]
) -> Path:
    """An HTML page putting several runs side by side: a table and overlaid curves.

    Raises:
        RunError: fewer than two runs, or one is not a run directory.
    """
    opened = [r if isinstance(r, Run) else Run.open(r) for r in runs]
    if len(opened) < 2:
        raise RunError("compare needs at least two run directories")
    summaries = [summarize_run(r) for r in opened]
    table = comparison_rows(summaries)
    histories = {s["name"]: read_history(r) for s, r in zip(summaries, opened, strict=True)}
    target = Path(out)
    figure = plots.plot_comparison(histories)
    picture = plots.save_figure(figure, target.with_suffix(".png"))
    page = (
        _templates()
        .get_template("comparison.html.j2")
        .render(
            title="cnnkit comparison",
            runs=[str(r.path) for r in opened],
            header=["", *(s["name"] for s in summaries)],
            rows=table,
            row_class=["diff" if len(set(row[1:])) > 1 else "" for row in table],
            picture=_data_uri(picture),
        )
    )
    with atomic_open(target, "w") as handle:
        handle.write(page + "\n")
    return target


COMPARED = (
    ("model", "model", str),
    ("parameters", "parameters", lambda v: f"{v:,}"),
    ("data", "data", str),
    ("optimizer", "optimizer", str),
    ("lr", "learning rate", lambda v: f"{v:g}"),
    ("batch_size", "batch size", str),
    ("epochs", "epochs run", str),
    ("seed", "seed", str),
    ("device", "device", str),
    ("train_seconds", "training time (s)", lambda v: f"{v:.1f}"),
    ("best_val_accuracy", "best val accuracy", _pct),
    ("accuracy", "accuracy", _pct),
    ("loss", "loss", lambda v: f"{v:.4f}"),
    ("balanced_accuracy", "balanced accuracy", _pct),
    ("ber", "BER", lambda v: f"{v:.4f}"),
)


def comparison_rows(summaries: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Rows ``[label, value per run...]`` of the comparison table (blank where unknown)."""
    rows = []
    for key, label, show in COMPARED:
        values = [s.get(key) for s in summaries]
        if all(v is None for v in values):
            continue
        split = next((s["split"] for s in summaries if s.get("split")), "test")
        if key in ("accuracy", "loss", "balanced_accuracy", "ber"):
            label = f"{split} {label}"
        rows.append([label, *("" if v is None else show(v) for v in values)])
    return rows
