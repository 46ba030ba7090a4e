"""Train / validation / test splits: stratified, seeded, group-aware, saved and reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.sources import load_dataset, make_splits, read_source
from cnnkit.data.split import (
    apply_split_file,
    group_ids,
    read_split_file,
    split_record,
    stratified_indices,
    write_split_file,
)
from cnnkit.errors import ConfigError, DataError
from tests.data import imagefiles as f


@pytest.fixture(scope="module")
def subjects(tmp_path_factory) -> Path:
    """Two classes, 12 subjects each photographed 3 times (s<subject>_<shot>.png)."""
    root = tmp_path_factory.mktemp("subjects") / "faces"
    for c, cls in enumerate(("happy", "sad")):
        for subject in range(12):
            for shot in range(3):
                seed = 10_000 * c + 100 * subject + shot
                f.write(
                    root / cls / f"s{c}{subject:02d}_{shot}.png", f.png(f.rgb_array(seed, 8, 8))
                )
    return root


def _names(dataset) -> list[str]:
    return [Path(i).name for i in dataset.ids]


def test_one_folder_becomes_stratified_train_val_test(subjects: Path) -> None:
    splits = load_dataset(f"folder:{subjects}")
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sizes == [51, 7, 14]  # 72 images: test 0.2 -> 14 (14.4 rounded), val 0.1 -> 7
    assert splits.test.class_counts() == [7, 7]
    again = load_dataset(f"folder:{subjects}")
    assert _names(again.test) == _names(splits.test)
    other = load_dataset(f"folder:{subjects}", seed=1)
    assert _names(other.test) != _names(splits.test)
    everything = _names(splits.train) + _names(splits.val) + _names(splits.test)
    assert len(set(everything)) == 72


def test_group_aware_split_keeps_each_subject_in_one_part(subjects: Path) -> None:
    splits = load_dataset(f"folder:{subjects}", group_by=r"(s\d+)_")
    parts = {name: {n.split("_")[0] for n in _names(ds)} for name, ds in splits.items()}
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
    assert not parts["val"] & parts["test"]
    # without groups the shots of one subject are scattered
    plain = load_dataset(f"folder:{subjects}")
    scattered = {n.split("_")[0] for n in _names(plain.test)} & {
        n.split("_")[0] for n in _names(plain.train)
    }
    assert scattered


def test_group_pattern_errors() -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        group_ids(["a"], "(")
    with pytest.raises(ConfigError, match="matches none of the 2 sample ids"):
        group_ids(["a/1.png", "b/2.png"], r"subject(\d+)")
    assert group_ids(["x_s1_a", "x_s1_b", "x_s2_a", "odd"], r"s(\d)").tolist() == [1, 1, 2, 0]


def test_sizes_that_do_not_fit(tiny_mnist_dir: Path) -> None:
    with pytest.raises(ConfigError, match="has its own test split"):
        load_dataset("mnist", data_dir=tiny_mnist_dir, test_size=0.2)
    with pytest.raises(ConfigError, match="cannot hold out 300 of 300"):
        stratified_indices(np.zeros(300, dtype=int), 300, seed=0)


def test_split_file_round_trip_and_reuse(subjects: Path, tmp_path: Path) -> None:
    name = f"folder:{subjects}"
    splits = load_dataset(name, group_by=r"(s\d+)_", seed=3)
    record = split_record(splits, source=name, root=subjects, seed=3)
    assert record["parts"]["test"][0].count("/") == 1  # stored relative to the folder
    write_split_file(tmp_path / "split.json", record)
    again = load_dataset(name, split_file=tmp_path)  # a run directory holding split.json
    for (part, ds), (_, ds2) in zip(splits.items(), again.items(), strict=True):
        assert ds.fingerprint() == ds2.fingerprint(), part
        assert ds.ids == ds2.ids
    # the same split applies to the folder after it moved
    moved = tmp_path / "moved"
    moved.symlink_to(subjects)
    data = read_source(f"folder:{moved}")
    applied = apply_split_file(read_split_file(tmp_path / "split.json"), data.parts, data.root)
    assert applied.test.fingerprint() == splits.test.fingerprint()


def test_split_file_that_does_not_match_the_data(subjects: Path, tmp_path: Path) -> None:
    name = f"folder:{subjects}"
    splits = load_dataset(name)
    record = split_record(splits, source=name, root=subjects)
    record["parts"]["test"].append("happy/not_there.png")
    write_split_file(tmp_path / "more.json", record)
    with pytest.raises(DataError, match=r"parts name \d+ samples but the data holds \d+"):
        load_dataset(name, split_file=tmp_path / "more.json")
    replaced = record["parts"]["test"].pop(0)
    write_split_file(tmp_path / "bad.json", record)
    with pytest.raises(DataError, match=r"1 sample\(s\) of its test part are not in the data"):
        load_dataset(name, split_file=tmp_path / "bad.json")
    record["parts"]["test"].insert(0, replaced)
    record["parts"]["test"].pop()
    record["parts"]["test"][-1] = record["parts"]["train"][0]
    write_split_file(tmp_path / "twice.json", record)
    with pytest.raises(DataError, match="listed twice"):
        load_dataset(name, split_file=tmp_path / "twice.json")
    split_of_less = split_record(load_dataset(name), source=name, root=subjects)
    split_of_less["parts"]["train"] = split_of_less["parts"]["train"][1:]
    write_split_file(tmp_path / "less.json", split_of_less)
    with pytest.raises(DataError, match=r"holds 1 sample\(s\) the split file does not name"):
        load_dataset(name, split_file=tmp_path / "less.json")
    (tmp_path / "junk.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match=r"junk\.json: parts is missing"):
        read_split_file(tmp_path / "junk.json")
    with pytest.raises(ConfigError, match="no such split file"):
        read_split_file(tmp_path / "missing.json")


def test_named_source_split_files_use_sample_ids(tiny_mnist_dir: Path, tmp_path: Path) -> None:
    data = read_source("mnist", tiny_mnist_dir)
    splits = make_splits("mnist", data, val_size=200, seed=5)
    record = split_record(splits, source="mnist")
    assert record["parts"]["test"][:2] == ["mnist:test/0", "mnist:test/1"]
    write_split_file(tmp_path / "s.json", record)
    again = make_splits("mnist", data, split_file=tmp_path / "s.json")
    assert again.val.fingerprint() == splits.val.fingerprint()


def test_concat_keeps_order_and_ids_and_refuses_mismatches() -> None:
    import torch

    from cnnkit.data.dataset import Dataset

    a = Dataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), ("x", "y"),
                source="a", ids=("a/0", "a/1"))  # fmt: skip
    b = Dataset(
        torch.ones(1, 1, 2, 2, dtype=torch.uint8), torch.tensor([1]), ("x", "y"), source="b"
    )
    both = Dataset.concat([a, b], source="ab")
    assert both.labels.tolist() == [0, 1, 1] and both.ids == ("a/0", "a/1", "b/0")
    assert int(both.images[2].max()) == 1 and both.source == "ab"
    other = Dataset(b.images, b.labels, ("x", "z"))
    with pytest.raises(DataError, match="classes or image shapes differ"):
        Dataset.concat([a, other])
    with pytest.raises(DataError, match="zero datasets"):
        Dataset.concat([])
