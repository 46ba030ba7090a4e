"""The pictures: drawn from plain arrays, saved as real PNGs, readable at many classes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import ConfigError
from cnnkit.evaluate import plots


def grouped_confusions(classes: int, group: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A confusion matrix whose classes are confused within hidden groups, in shuffled order.

    Returns the matrix and, per (shuffled) class, the group it belongs to.
    """
    rng = np.random.default_rng(seed)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for i in range(classes):
        first = (i // group) * group
        matrix[i, i] = 60
        matrix[i, first : first + group] += rng.integers(3, 12, size=group)
        matrix[i, rng.integers(0, classes)] += 1
    order = rng.permutation(classes)
    return matrix[np.ix_(order, order)], order // group


def saved_png(figure, path) -> np.ndarray:
    plots.save_figure(figure, path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_cluster_order_puts_confused_classes_side_by_side() -> None:
    matrix, groups = grouped_confusions(100, 5)
    order = plots.confusion_order(matrix, "cluster")
    assert sorted(order.tolist()) == list(range(100))
    runs = sum(1 for a, b in itertools.pairwise(order) if groups[a] != groups[b])
    assert runs == 19  # 20 groups, each one contiguous block
    assert plots.confusion_order(matrix[:10, :10], "auto").tolist() == list(range(10))
    recall = np.diag(matrix) / matrix.sum(axis=1)
    worst_first = plots.confusion_order(matrix, "recall")
    assert recall[worst_first[0]] == recall.min()
    with pytest.raises(ConfigError, match="unknown confusion-matrix order 'size'"):
        plots.confusion_order(matrix, "size")


@pytest.mark.parametrize(("classes", "thinned"), [(10, False), (100, False), (200, True)])
def test_confusion_matrix_stays_readable(classes, thinned, tmp_path) -> None:
    matrix, _ = grouped_confusions(classes, 5)
    names = [f"class_{i:03d}" for i in range(classes)]
    figure = plots.plot_confusion_matrix(matrix, names, title="t")
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert (len(labels) < classes) is thinned
    assert all(t.get_fontsize() >= 5 for t in ax.get_xticklabels())
    assert ("th label shown" in ax.get_title()) is thinned
    if classes <= 100:
        pixels = saved_png(figure, tmp_path / "cm.png")
        assert pixels.shape[0] >= 500 and pixels.std() > 20


def test_curve_marks_read_the_run_card_first() -> None:
    history = [
        {"epoch": e, "loss": 1 / e, "val_loss": 1 / e + 0.1, "lr": 1e-3 if e < 4 else 5e-4}
        for e in range(1, 7)
    ]
    training = {"best_epoch": 5, "stopped_epoch": 6, "monitor": "val_loss", "lr_reductions": [3]}
    marks = plots.curve_marks(history, training)
    assert (marks.best_epoch, marks.stopped_epoch) == (5, 6)
    assert marks.lr_drops == [(3.5, 5e-4)]
    assert "val_loss" in marks.best_reason


def test_curve_marks_fall_back_to_the_history() -> None:
    rates = [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]
    val = [0.5, 0.4, 0.35, 0.3, 0.32, 0.33]
    history = [
        {"epoch": e + 1, "loss": 0.1, "val_loss": v, "lr": r}
        for e, (v, r) in enumerate(zip(val, rates, strict=True))
    ]
    marks = plots.curve_marks(history, {})
    assert marks.best_epoch == 4 and marks.stopped_epoch is None
    assert marks.lr_drops == [(3.5, 5e-4), (5.5, 2.5e-4)]
    cosine = [dict(row, lr=0.5 * (1 + math.cos(math.pi * i / 6))) for i, row in enumerate(history)]
    assert plots.curve_marks(cosine).lr_drops == []  # a schedule gets its own panel instead
    assert plots.plot_history(cosine).axes[-1].get_ylabel() == "learning rate"


def test_history_figure_marks_every_event(tmp_path) -> None:
    history = [
        {
            "epoch": e,
            "loss": 1 / e,
            "accuracy": 1 - 1 / (e + 1),
            "val_loss": 1 / e + 0.1,
            "val_accuracy": 1 - 1 / e,
            "lr": 1e-3 if e < 4 else 5e-4,
        }
        for e in range(1, 8)
    ]
    training = {"best_epoch": 5, "stopped_epoch": 7, "monitor": "val_loss", "lr_reductions": [3]}
    figure = plots.plot_history(history, training, title="run")
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == [
        "train",
        "val",
        "best val_loss (epoch 5)",
        "early stop (epoch 7)",
        "learning rate reduced",
    ]
    assert saved_png(figure, tmp_path / "h.png").std() > 10
    single = plots.plot_history(history[:1])
    assert single.axes[0].get_xlim()[0] < 1 < single.axes[0].get_xlim()[1]


def test_filter_mosaic_scales_each_filter_and_keeps_colour() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 3, 5, 5)) * np.arange(1, 7).reshape(-1, 1, 1, 1)
    mosaic = plots.filter_mosaic(weights, columns=3)
    assert mosaic.shape == (2 * 6 + 1, 3 * 6 + 1, 3)
    for k in range(6):
        r, c = divmod(k, 3)
        tile = mosaic[1 + r * 6 : 6 + r * 6, 1 + c * 6 : 6 + c * 6]
        assert tile.min() == 0.0 and tile.max() == 1.0  # min-max scaled on its own
        np.testing.assert_allclose(
            tile, (weights[k] - weights[k].min()).transpose(1, 2, 0) / np.ptp(weights[k])
        )
    grey = plots.filter_mosaic(rng.normal(size=(4, 1, 3, 3)))
    assert np.array_equal(grey[..., 0], grey[..., 2])
    assert plots.filter_mosaic(rng.normal(size=(4, 2, 7))).shape == (2 * 1 + 3, 2 * 8 + 1, 3)
    # 1-D kernels are drawn as rows of height 1, 3-D ones by their middle slice
    assert plots.filter_mosaic(rng.normal(size=(2, 1, 3, 3, 3))).shape == (4 + 1, 2 * 4 + 1, 3)


def test_pictures_of_images_are_drawn(tmp_path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 16, 16), dtype=np.uint8)
    figure = plots.plot_top_losses(
        images,
        ["a"] * 5,
        ["b", "a", "b", "b", "b"],
        [0.9] * 5,
        [2.3] * 5,
        [f"/data/photos/very/long/path/image_{i}.jpg" for i in range(5)],
        columns=3,
    )
    assert figure.axes[0].get_xlabel().endswith("image_0.jpg")
    assert saved_png(figure, tmp_path / "top.png").std() > 10
    maps = rng.random(size=(10, 4, 4))
    assert saved_png(plots.plot_feature_maps(images[0], maps, layer="c"), tmp_path / "f.png").size
    heat = rng.random(size=(5, 16, 16))
    assert saved_png(
        plots.plot_gradcam(images, heat, ["x"] * 5, layer="c"), tmp_path / "g.png"
    ).size
    records = [(0, rng.normal(size=(8, 1, 3, 3))), (2, rng.normal(size=(8, 1, 3, 3)))]
    figure = plots.plot_filter_epochs(records)
    assert [ax.get_ylabel() for ax in figure.axes] == ["initial", "epoch 2", "change 0→2"]


def test_shorten_id_keeps_the_end_of_paths() -> None:
    assert plots.shorten_id("mnist:test/42") == "mnist:test/42"
    assert plots.shorten_id("/data/photos/cats/0042.png", 20) == "…/cats/0042.png"
    long_name = plots.shorten_id("/data/a_very_long_file_name_indeed.png", 20)
    assert long_name == "…ile_name_indeed.png" and len(long_name) == 20
