"""folder:PATH — hidden entries, class order, empty classes, corrupt files, size, channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.folder import FolderOptions, folder_source_name, parse_folder_source, read_folder
from cnnkit.errors import ConfigError, DataError, DataNotFoundError
from tests.data import imagefiles as f


def test_planted_folder_is_read_and_every_problem_reported(planted_dir: Path) -> None:
    data = read_folder(planted_dir, FolderOptions(allow_empty=True))
    report = data.report
    assert report.layout == "splits" and report.classes == ("cat", "dog", "fish")
    assert report.hidden == ["train/.cache/", "train/cat/.DS_Store"]
    assert [p for p, _ in report.unreadable] == [
        "train/cat/corrupt.png",
        "train/cat/notes.txt",
        "train/cat/truncated.jpg",
    ]
    assert "truncated" in dict(report.unreadable)["train/cat/truncated.jpg"]
    assert report.extension_mismatch == [("train/cat/really_png.jpg", "PNG")]
    assert report.rotated == ["train/cat/rotated.jpg"] and report.fitted == report.rotated
    assert report.empty_classes == ["train/fish"] and report.missing_classes == ["test/fish"]
    assert report.conversions["CMYK->RGB"] == 1 and report.conversions["P->RGB"] == 1
    assert report.size == (16, 16) and report.channels == 3
    train, test = data.parts["train"], data.parts["test"]
    assert train.images.shape == (20, 3, 16, 16) and len(test) == 5
    assert train.class_counts() == [11, 9, 0] and test.class_counts() == [2, 3, 0]
    # every sample keeps its file: ids are absolute paths, in sorted order within a class
    assert train.ids[0] == str(planted_dir / "train" / "cat" / "00.png")
    assert all(Path(i).is_absolute() and Path(i).is_file() for i in train.ids)
    cat_00 = f.rgb_array(0).transpose(2, 0, 1)
    assert np.array_equal(train.images[0].numpy(), cat_00)


def test_empty_class_is_an_error_unless_allowed(planted_dir: Path) -> None:
    with pytest.raises(DataError, match=r"no readable image: train/fish.*allow_empty=1"):
        read_folder(planted_dir)


def test_corrupt_fail_stops_at_the_first_unreadable_file(planted_dir: Path) -> None:
    with pytest.raises(DataError, match=r"(?s)corrupt\.png.*corrupt=fail stops"):
        read_folder(planted_dir, FolderOptions(allow_empty=True, corrupt="fail"))


def _flat(root: Path, spec: dict[str, list[bytes]]) -> Path:
    for cls, files in spec.items():
        for i, data in enumerate(files):
            f.write(root / cls / f"{i:03d}.png", data)
    return root


def test_class_order_is_sorted_and_files_outside_classes_ignored(tmp_path) -> None:
    root = _flat(
        tmp_path / "d",
        {"b": [f.png(f.rgb_array(1))], "B": [f.png(f.rgb_array(2))], "a": [f.png(f.rgb_array(3))]},
    )
    f.write(root / "README.txt", b"hello")
    f.write(root / "a" / "nested" / "deep.png", f.png(f.rgb_array(4)))
    data = read_folder(root)
    assert data.parts["train"].classes == ("B", "a", "b")
    assert data.parts["train"].labels.tolist() == [0, 1, 1, 2]
    assert data.report.ignored == ["README.txt"] and data.report.layout == "classes"
    assert data.parts["train"].ids[2].endswith("a/nested/deep.png")


def test_size_by_majority_channels_by_majority_and_by_option(tmp_path) -> None:
    grey = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    root = _flat(
        tmp_path / "d",
        {
            "x": [f.png(grey), f.png(grey[:, :4]), f.png(f.rgb_array(1, 8, 8))],
            "y": [f.png(255 - grey)],
        },
    )
    data = read_folder(root)
    assert data.report.size == (8, 8) and data.report.channels == 1
    assert data.parts["train"].images.shape == (4, 1, 8, 8)
    assert data.report.fitted == ["x/001.png"]
    forced = read_folder(root, FolderOptions(size=(4, 6), channels=3, fit="stretch"))
    assert forced.parts["train"].images.shape == (4, 3, 4, 6)


def test_unknown_test_class_and_missing_folders(tmp_path) -> None:
    root = _flat(tmp_path / "d" / "train", {"cat": [f.png(f.rgb_array(1))]}).parent
    _flat(root / "test", {"zebra": [f.png(f.rgb_array(2))]})
    with pytest.raises(DataError, match=r"test/ has class folder\(s\) zebra"):
        read_folder(root)
    with pytest.raises(DataNotFoundError, match="no such folder"):
        read_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders found"):
        read_folder(tmp_path / "empty")


def test_folder_options_parse_and_canonical_names(tmp_path) -> None:
    root, options = parse_folder_source("folder:photos?size=64x48&channels=grey&fit=crop")
    assert root == Path("photos")
    assert options == FolderOptions(size=(64, 48), channels=1, fit="crop")
    assert parse_folder_source("folder:p?size=32")[1].size == (32, 32)
    name = folder_source_name(Path("photos"), options)
    assert name == f"folder:{Path('photos').absolute()}?size=64x48&channels=1&fit=crop"
    assert parse_folder_source(name)[1] == options
    for bad, message in [
        ("folder:p?colour=1", "unknown folder option 'colour'"),
        ("folder:p?size=big", "size='big' is not valid"),
        ("folder:p?channels=2", "channels must be 1 or 3"),
        ("folder:p?fit=squash", "fit must be one of"),
        ("folder:p?corrupt=ignore", "corrupt must be skip or fail"),
        ("folder:", "needs a path"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_folder_source(bad)


def test_a_folder_too_large_for_memory_is_refused(tmp_path, monkeypatch) -> None:
    root = _flat(tmp_path / "d", {"a": [f.png(f.rgb_array(1))], "b": [f.png(f.rgb_array(2))]})
    monkeypatch.setattr("cnnkit.data.folder.MAX_BYTES", 1000)
    with pytest.raises(DataError, match=r"would take .* GiB of memory.*size=224x224.*cache=1"):
        read_folder(root, FolderOptions(cache=False))  # by default it goes to the disk cache
