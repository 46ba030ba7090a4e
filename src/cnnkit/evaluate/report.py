"""The run report: one self-contained HTML file a person can open anywhere, offline.

``write_report`` evaluates a run (:mod:`cnnkit.evaluate.evaluation`), draws its pictures into
``plots/`` beside the report (:mod:`cnnkit.evaluate.plots`) and writes ``report.html`` with
every picture embedded as a ``data:`` URI, all styles inline, no script and no network
access needed to view it.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit import __version__
from cnnkit.atomic import atomic_open
from cnnkit.errors import CnnkitError, RunError
from cnnkit.evaluate import plots
from cnnkit.evaluate.evaluation import Evaluation, evaluate_split, save_evaluation
from cnnkit.evaluate.gradcam import grad_cam
from cnnkit.run import HISTORY, METRICS, Run
from cnnkit.train.filters import filter_weights, recorded_filters

log = logging.getLogger(__name__)

REPORT = "report.html"
PLOTS_DIR = "plots"
TOP_LOSSES = 24  # images in the top-losses gallery
GRADCAM_SAMPLES = 8  # top-loss images explained with Grad-CAM
MATRIX_TABLE_MAX = 20  # confusion matrices up to this size are also printed as a table
SUMMARY_OPEN_MAX = 30  # model summaries up to this many rows are shown unfolded


def read_history(run: Run) -> list[dict[str, float]]:
    """The run's per-epoch history, or an empty list when it has none."""
    if not (run.path / HISTORY).is_file():
        return []
    rows = run.read_json(HISTORY)
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
    title = f"{card.get('name', run.path.name)}"
    written: dict[str, Path] = {}

    def save(key: str, figure: Any) -> None:
        written[key] = plots.save_figure(figure, folder / f"{key}.png")

    history = read_history(run)
    if history:
        save("history", plots.plot_history(history, card.get("training"), title=title))
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
            preprocessing=run.preprocessing,
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
    target = Path(out) if out is not None else run.path / REPORT
    stage(f"evaluating the model on the {split} split" if split else "evaluating the model")
    evaluation = evaluate_split(run, split=split, data=data, data_dir=data_dir, device=device)
    save_evaluation(evaluation, target.parent)
    stage("drawing the plots")
    pictures = draw_pictures(evaluation, target.parent / PLOTS_DIR)
    stage("writing the page")
    page = render_report(evaluation, pictures, history=read_history(run))
    with atomic_open(target, "w") as handle:
        handle.write(page)
    log.info("report written to %s", target)
    return target


# -- HTML ----------------------------------------------------------------------------------

CSS = """
:root { --ink:#1d2430; --muted:#5b6575; --line:#dde2ea; --band:#f5f7fa; --accent:#2456a6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--ink); background:#eef1f5; }
header { background:#1f3b63; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header p { margin:0; color:#c9d6ea; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
  padding:8px 32px; display:flex; flex-wrap:wrap; gap:6px 16px; }
nav a { color:var(--accent); text-decoration:none; font-size:13px; }
main { max-width:1180px; margin:0 auto; padding:18px 24px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; margin:18px 0;
  padding:16px 22px 20px; }
h2 { margin:0 0 12px; font-size:19px; font-weight:600; }
h3 { margin:16px 0 6px; font-size:15px; font-weight:600; color:#2b3646; }
.tiles { display:flex; flex-wrap:wrap; gap:12px; margin-top:14px; }
.tile { background:#fff; color:var(--ink); border-radius:8px; padding:10px 16px; min-width:130px; }
.tile b { display:block; font-size:22px; }
.tile span { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; margin:6px 0 10px; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left;
  vertical-align:top; }
th { background:var(--band); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.low td { background:#fff1f0; }
tr.diff td { font-weight:600; }
table.kv { width:100%; }
table.kv th { width:210px; background:none; color:var(--muted); font-weight:500; }
.cols { display:grid; grid-template-columns:repeat(auto-fit,minmax(330px,1fr)); gap:4px 28px; }
img { max-width:100%; height:auto; display:block; margin:8px 0;
  border:1px solid var(--line); border-radius:4px; }
details summary { cursor:pointer; color:var(--accent); margin:6px 0; }
code, .mono { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; }
p.note { color:var(--muted); margin:4px 0 8px; }
footer { text-align:center; color:var(--muted); font-size:12px; padding:10px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _image(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return f'<p class="note">({_e(alt)}: not available for this run)</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _kv(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{_e(k)}</th><td>{v if isinstance(v, _Html) else _e(v)}</td></tr>"
        for k, v in rows
        if v is not None and v != ""
    )
    return f'<table class="kv">{body}</table>'


class _Html(str):
    """A string already escaped, to be inserted as is."""


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[bool] | None = None,
    row_class: Sequence[str] | None = None,
) -> str:
    numeric = numeric or [False] * len(header)
    head = "".join(
        f'<th class="{"num" if n else ""}">{_e(h)}</th>'
        for h, n in zip(header, numeric, strict=True)
    )
    lines = []
    for k, row in enumerate(rows):
        cls = f' class="{row_class[k]}"' if row_class and row_class[k] else ""
        cells = "".join(
            f'<td class="{"num" if n else ""}">{c if isinstance(c, _Html) else _e(c)}</td>'
            for c, n in zip(row, numeric, strict=True)
        )
        lines.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value) * 100:.2f}%"


def _seconds(value: Any) -> str | None:
    if value is None:
        return None
    value = float(value)
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min ({value:.0f} s)"


def _short(value: Any) -> Any:
    """JSON-ish values for a table cell: lists and dicts compactly."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(_short(v)) for v in value) or "—"
    return value


def _model_section(
    card: Mapping[str, Any], model: nn.Module, input_shape: Sequence[int]
) -> tuple[str, str]:
    """The model's facts (for the run card's column) and its layer-by-layer summary."""
    from cnnkit.layers.summary import summary

    record = card.get("model", {})
    try:
        table = summary(model, input_shape)
    except CnnkitError as exc:
        log.warning("no model summary in the report: %s", exc)
        layers = f'<p class="note">(no summary: {_e(exc)})</p>'
        totals, rows = None, 0
    else:
        layers = _table(
            [
                "layer (type)",
                "output shape",
                "parameters",
                "counted as",
                "receptive field",
                "mult-adds",
            ],
            [
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
            ],
            numeric=[False, False, True, False, True, True],
        )
        rows = len(table.layers)
        totals = (
            f"{table.total_params:,} ({table.trainable_params:,} trainable, "
            f"{table.non_trainable_params:,} non-trainable)"
        )
    return "<h3>Model</h3>" + _kv(
        [
            ("name", record.get("name")),
            ("options", _short(record.get("options", {}))),
            ("input shape (C, H, W)", _short(record.get("input_shape"))),
            ("classes", record.get("num_classes")),
            ("parameters", totals or f"{record.get('parameters', 0):,}"),
        ]
    ), (
        f"<details{' open' if rows <= SUMMARY_OPEN_MAX else ''}><summary>"
        f"layer by layer</summary>{layers}</details>"
    )


def _run_card(card: Mapping[str, Any], model: nn.Module, evaluation: Evaluation) -> str:
    data = card.get("data", {})
    config = card.get("config", {})
    training = card.get("training", {})
    environment = card.get("environment", {})
    pre = card.get("preprocessing", {})
    sizes = data.get("sizes", {})
    classes = data.get("classes", [])
    fingerprints = data.get("fingerprints", {})
    more = " …" if len(classes) > 30 else ""
    prints = _Html(
        "<br>".join(
            f'{_e(k)}: <span class="mono" title="{_e(v)}">{_e(str(v)[:16])}…</span>'
            for k, v in fingerprints.items()
        )
    )
    origin = _Html("<br>".join(f"{_e(k)}: {_e(v)}" for k, v in data.get("origin", {}).items()))
    run_rows = [
        ("name", card.get("name")),
        ("status", card.get("status")),
        ("created", card.get("created")),
        ("training time", _seconds(card.get("train_seconds"))),
        ("total time", _seconds(card.get("total_seconds"))),
        ("folder", str(evaluation.run.path.resolve())),
    ]
    data_rows = [
        ("source", data.get("source")),
        ("files", origin),
        ("split sizes", ", ".join(f"{k} {v:,}" for k, v in sizes.items())),
        ("split seed", data.get("split_seed")),
        ("validation size asked", config.get("val_size", "source default")),
        (
            "classes",
            f"{len(classes)}: " + ", ".join(map(str, classes[:30])) + more,
        ),
        ("fingerprints (SHA-256)", prints),
        ("normalisation", f"mean {_short(pre.get('mean'))}, std {_short(pre.get('std'))}"),
        ("evaluated here", f"{evaluation.split}: {evaluation.metrics.get('data', '')}"),
    ]
    recipe_rows = [(k, _short(v)) for k, v in config.items() if k not in ("name",)]
    training_rows = [(k.replace("_", " "), _short(v)) for k, v in training.items()]
    env_rows = [(k, v) for k, v in environment.items()]
    model_facts, model_layers = _model_section(
        card, model, evaluation.run.preprocessing.input_shape
    )
    return (
        '<section id="run-card"><h2>Run card</h2><div class="cols"><div>'
        + "<h3>Run</h3>"
        + _kv(run_rows)
        + "<h3>Data</h3>"
        + _kv(data_rows)
        + "</div><div>"
        + model_facts
        + "<h3>Recipe and hyper-parameters</h3>"
        + _kv(recipe_rows)
        + ("<h3>Training</h3>" + _kv(training_rows) if training_rows else "")
        + "<h3>Software and hardware</h3>"
        + _kv(env_rows)
        + "</div></div><h3>Model summary</h3>"
        + model_layers
        + "</section>"
    )


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


def _metrics_section(metrics: Mapping[str, Any]) -> str:
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

    rows = [row(c) for c in classes] + [row(a) for a in averages]
    marks = ["low" if report[c]["recall"] <= low and len(classes) > 2 else "" for c in classes]
    headline = _table(["measure", "value"], _headline(metrics), numeric=[False, True])
    return (
        '<section id="metrics"><h2>Metrics</h2><div class="cols"><div>'
        + headline
        + '<p class="note">Balanced accuracy is the mean of the per-class recalls; the balanced '
        "error rate BER is one minus it. Both weigh every class alike, however many samples "
        "it has.</p></div><div>"
        + "<h3>Classification report</h3>"
        + _table(
            ["class", "precision", "recall", "F1", "support"],
            rows,
            numeric=[False, True, True, True, True],
            row_class=[*marks, *([""] * len(averages))],
        )
        + '<p class="note">Shaded: the classes with the lowest recall.</p></div></div></section>'
    )


def _confusion_section(metrics: Mapping[str, Any], picture: Path | None) -> str:
    classes = metrics["classes"]
    matrix = metrics["confusion_matrix"]
    table = ""
    if len(classes) <= MATRIX_TABLE_MAX:
        table = (
            "<details><summary>the matrix as numbers (rows: true, columns: predicted)"
            "</summary>"
            + _table(
                ["true \\ predicted", *classes],
                [[c, *(f"{v:,}" for v in r)] for c, r in zip(classes, matrix, strict=True)],
                numeric=[False, *([True] * len(classes))],
            )
            + "</details>"
        )
    pairs = metrics.get("most_confused", [])
    pair_table = (
        _table(
            ["true class", "predicted as", "count", "share of the true class"],
            [(p["true"], p["predicted"], f"{p['count']:,}", _pct(p["rate"])) for p in pairs],
            numeric=[False, False, True, True],
        )
        if pairs
        else '<p class="note">No sample was misclassified.</p>'
    )
    return (
        '<section id="confusion"><h2>Confusion matrix</h2>'
        '<p class="note">Rows are the true classes, columns the predictions; colour is the '
        "share of each true class.</p>"
        + _image(picture, "confusion matrix")
        + table
        + "</section>"
        + '<section id="confused-pairs"><h2>Most-confused pairs</h2>'
        + pair_table
        + "</section>"
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
    name = card.get("name", evaluation.run.path.name)
    model_name = card.get("model", {}).get("name", "model")
    source = card.get("data", {}).get("source", "data")
    tiles = "".join(
        f'<div class="tile"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
        for k, v in _headline(metrics)[:4]
    )
    sections = [
        ("run-card", "Run card"),
        ("curves", "Training curves"),
        ("metrics", "Metrics"),
        ("confusion", "Confusion matrix"),
        ("confused-pairs", "Most-confused pairs"),
        ("top-losses", "Top losses"),
        ("gradcam", "Grad-CAM"),
        ("filters", "Filters"),
    ]
    nav = "".join(f'<a href="#{anchor}">{_e(title)}</a>' for anchor, title in sections)
    history_table = ""
    if history:
        keys = [k for k in history[0] if k != "epoch"]
        history_table = (
            "<details><summary>the history as numbers</summary>"
            + _table(
                ["epoch", *keys],
                [[row.get("epoch", ""), *(_cell(k, row.get(k)) for k in keys)] for row in history],
                numeric=[True] * (len(keys) + 1),
            )
            + "</details>"
        )
    filters = _image(pictures.get("filters"), "first-layer filters")
    if "filter_epochs" in pictures:
        filters += _image(pictures["filter_epochs"], "filters at recorded epochs")
    else:
        filters += (
            '<p class="note">Train with <code>--record-filters 0,1,2,5</code> (or '
            "<code>all</code>) to watch the filters form epoch by epoch.</p>"
        )
    body = (
        f"<header><h1>{_e(name)}</h1><p>{_e(model_name)} on {_e(source)} — "
        f"{_e(metrics['split'])} split, {metrics['samples']:,} samples</p>"
        f'<div class="tiles">{tiles}</div></header>'
        f"<nav>{nav}</nav><main>"
        + _run_card(card, evaluation.model, evaluation)
        + '<section id="curves"><h2>Training curves</h2>'
        + '<p class="note">Solid: training, dashed: validation. Marked: the best epoch, '
        "learning-rate reductions and early stopping.</p>"
        + _image(pictures.get("history"), "training curves")
        + history_table
        + "</section>"
        + _metrics_section(metrics)
        + _confusion_section(metrics, pictures.get("confusion_matrix"))
        + '<section id="top-losses"><h2>Top losses</h2>'
        + '<p class="note">The samples the model got most wrong: true and predicted class, '
        "the probability of the prediction, the loss and the sample's id or file. Mislabelled "
        "or ambiguous images often show up here.</p>"
        + _image(pictures.get("top_losses"), "top losses")
        + "</section>"
        + '<section id="gradcam"><h2>Grad-CAM</h2>'
        + '<p class="note">For the worst samples, where the last convolution found evidence '
        "for the predicted class (red = strong).</p>"
        + _image(pictures.get("gradcam"), "Grad-CAM heat-maps")
        + "</section>"
        + '<section id="filters"><h2>Filters</h2>'
        + '<p class="note">The first convolution\'s filters, each min-max scaled to [0, 1] '
        "(RGB for colour input). Trained filters often look like edge or blob detectors.</p>"
        + filters
        + "</section></main>"
        + f"<footer>cnnkit {_e(__version__)} · report written "
        + f"{_e(time.strftime('%Y-%m-%d %H:%M:%S'))}</footer>"
    )
    return _page(f"{name} — cnnkit report", body)


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


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


# -- comparing runs ------------------------------------------------------------------------


def summarize_run(run: Run) -> dict[str, Any]:
    """One run's key facts for a side-by-side comparison (from its files; nothing recomputed).

    Keys: ``name``, ``model``, ``parameters``, ``data``, ``optimizer``, ``lr``,
    ``batch_size``, ``epochs`` (run), ``seed``, ``device``, ``train_seconds``,
    ``best_val_accuracy``, and the test (or validation) ``accuracy``, ``loss``,
    ``balanced_accuracy``, ``ber`` where ``metrics.json`` has them.
    """
    card = run.card
    config = card.get("config", {})
    history = read_history(run)
    metrics = run.read_json(METRICS) if (run.path / METRICS).is_file() else {}
    measured = metrics.get("test") or metrics.get("val") or {}
    val = [row["val_accuracy"] for row in history if "val_accuracy" in row]
    return {
        "name": card.get("name", run.path.name),
        "model": card.get("model", {}).get("name"),
        "parameters": card.get("model", {}).get("parameters"),
        "data": card.get("data", {}).get("source"),
        "optimizer": config.get("optimizer"),
        "lr": config.get("lr"),
        "batch_size": config.get("batch_size"),
        "epochs": len(history) or config.get("epochs"),
        "seed": config.get("seed"),
        "device": card.get("environment", {}).get("device"),
        "train_seconds": card.get("train_seconds"),
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
    header = ["", *(s["name"] for s in summaries)]
    body = (
        f"<header><h1>Comparing {len(opened)} runs</h1>"
        f"<p>{_e(', '.join(str(r.path) for r in opened))}</p></header><main>"
        '<section id="comparison"><h2>Side by side</h2>'
        + _table(
            header,
            table,
            numeric=[False, *([True] * len(summaries))],
            row_class=["diff" if len(set(row[1:])) > 1 else "" for row in table],
        )
        + '<p class="note">Bold: what differs between the runs.</p>'
        + "</section>"
        + '<section id="curves"><h2>Validation curves</h2>'
        + _image(picture, "validation curves of the runs")
        + "</section></main>"
    )
    with atomic_open(target, "w") as handle:
        handle.write(_page("cnnkit comparison", body))
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
