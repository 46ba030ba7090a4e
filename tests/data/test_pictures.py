"""Grids of samples and of one example per class, saved as PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.dataset import Dataset
from cnnkit.data.pictures import (
    one_hot_text,
    plot_class_examples,
    plot_samples,
    sample_indices,
    save_figure,
    show_figure,
)
from cnnkit.errors import ConfigError


def grey(n: int = 12) -> Dataset:
    images = (np.arange(n * 64).reshape(n, 1, 8, 8) % 256).astype(np.uint8)
    return Dataset.from_numpy(images, np.arange(n) % 3, ["cat", "dog", "bird"])


def test_sample_grid_titles_and_grey_colour_map(tmp_path) -> None:
    ds = grey()
    figure = plot_samples(ds, [0, 1, 2, 5], one_hot=True, title="first")
    titles = [a.get_title() for a in figure.axes if a.get_title()]
    assert titles == ["0: cat\n[1 0 0]", "1: dog\n[0 1 0]", "2: bird\n[0 0 1]", "2: bird\n[0 0 1]"]
    image = figure.axes[0].images[0]
    assert image.get_cmap().name == "gray" and image.get_clim() == (0, 255)
    path = save_figure(figure, tmp_path / "grid.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 300


def test_rgb_is_drawn_as_is_and_class_grid_marks_missing_classes(tmp_path) -> None:
    images = np.zeros((2, 3, 4, 4), np.uint8)
    images[:, 0] = 255  # red
    ds = Dataset.from_numpy(images, np.array([0, 0]), ["red", "none"])
    figure = plot_class_examples(ds)
    drawn = figure.axes[0].images[0].get_array()
    assert drawn.shape == (4, 4, 3) and (np.asarray(drawn)[..., 0] == 255).all()
    assert figure.axes[1].get_title() == "1: none\n(no sample)" and not figure.axes[1].images


def test_digit_classes_are_not_repeated_and_long_one_hot_is_short() -> None:
    ds = Dataset.from_numpy(
        np.zeros((1, 1, 2, 2), np.uint8), np.array([3]), [str(i) for i in range(10)]
    )
    assert plot_samples(ds, [0]).axes[0].get_title() == "3"
    assert one_hot_text(37, 100) == "one-hot: 1 at 37 of 100"


def test_indices_and_display() -> None:
    ds = grey(20)
    assert sample_indices(ds, 5, start=17) == [17, 18, 19]
    picked = sample_indices(ds, 5, random=True, seed=2)
    assert len(set(picked)) == 5 and picked == sample_indices(ds, 5, random=True, seed=2)
    with pytest.raises(ConfigError, match="outside the dataset"):
        sample_indices(ds, 5, start=20)
    with pytest.raises(ConfigError, match="nothing to show"):
        plot_samples(ds, [])


def test_no_display_means_no_window(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert show_figure(plot_samples(grey(), [0])) is False
