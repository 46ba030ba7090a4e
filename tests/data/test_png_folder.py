"""Arrays -> PNG folders -> arrays, exactly; the textbook's image_no_1.png naming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.dataset import Dataset
from cnnkit.data.png_folder import MANIFEST, class_folder_names, export_pngs, import_pngs
from cnnkit.errors import ConfigError, DataError

FASHION = ("T-shirt/top", "Trouser", "Pullover")


def grey_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(9, 1, 28, 28)).astype(np.uint8)
    return Dataset.from_numpy(images, np.array([2, 0, 1] * 3), FASHION, source="toy:test")


def test_grey_round_trip_is_exact_and_pngs_are_grey(tmp_path) -> None:
    ds = grey_dataset()
    result = export_pngs(ds, tmp_path / "out")
    assert result.files == 9 and result.class_folders == ("T-shirt_top", "Trouser", "Pullover")
    first = tmp_path / "out" / "Pullover" / "0.png"
    with Image.open(first) as png:
        assert png.mode == "L" and png.size == (28, 28)
    back = import_pngs(tmp_path / "out")
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert back.classes == FASHION and back.fingerprint() == ds.fingerprint()
    assert back.ids[0] == str((tmp_path / "out" / "Pullover" / "0.png").absolute())


def test_rgb_slice_round_trip_with_textbook_names(tmp_path) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 3, 32, 32)).astype(np.uint8)
    ds = Dataset.from_numpy(images, np.arange(30) % 10, [f"c{i}" for i in range(10)])
    export_pngs(ds, tmp_path / "out", naming="image_no", indices=range(10, 20))
    names = sorted(p.name for p in (tmp_path / "out").rglob("*.png"))
    assert names[0] == "image_no_11.png" and len(names) == 10
    back = import_pngs(tmp_path / "out")
    assert torch.equal(back.images, ds.images[10:20]) and torch.equal(back.labels, ds.labels[10:20])
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["ids"][0] == "sample/10"


def test_export_refuses_bad_requests(tmp_path) -> None:
    ds = grey_dataset()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        export_pngs(ds, tmp_path / "busy")
    with pytest.raises(ConfigError, match="unknown naming"):
        export_pngs(ds, tmp_path / "a", naming="numbers")
    two = Dataset(
        torch.zeros(1, 2, 4, 4, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64), ("a",)
    )
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        export_pngs(two, tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # nothing half-written


def test_import_detects_changed_or_foreign_folders(tmp_path) -> None:
    with pytest.raises(DataError, match=r"no cnnkit-export\.json"):
        import_pngs(tmp_path)
    export_pngs(grey_dataset(), tmp_path / "out")
    Image.new("L", (10, 10)).save(tmp_path / "out" / "Trouser" / "2.png")
    with pytest.raises(DataError, match="changed since the export"):
        import_pngs(tmp_path / "out")
    (tmp_path / "out" / "Trouser" / "2.png").unlink()
    with pytest.raises(DataError, match="no such image file"):
        import_pngs(tmp_path / "out")


def test_class_folder_names_are_safe_and_unique() -> None:
    assert class_folder_names(["a/b", "a:b", ".hidden", "", "A/B"]) == (
        "a_b",
        "a_b_1",
        "hidden",
        "class_3",
        "A_B_4",
    )
