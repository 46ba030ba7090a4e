"""keras.utils.image_dataset_from_directory on real folders of PNG and JPEG files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from cnnkit import keras
from cnnkit.errors import ConfigError, DataError, DataNotFoundError
from cnnkit.keras import layers

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def write_folder(root, per_class=8, seed=0):
    """Three colour classes of noisy pictures of mixed sizes, PNG and JPEG, plus a corrupt
    JPEG, a text file and a hidden file (none of which is a sample)."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (20 + i, 24) if i % 2 else (24, 24)
            noise = rng.integers(-30, 30, (*size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            suffix = "png" if i % 3 else "jpg"
            Image.fromarray(pixels).save(folder / f"{i:02d}.{suffix}")
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "red" / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(root / "green" / ".hidden.png")
    return root


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "photos")


def listing(root):
    """The sample files as Keras lists them: class folders in order, sorted file names."""
    return [str(p) for name in sorted(COLOURS) for p in sorted((root / name).glob("[0-9]*.*"))] + [
        str(root / "red" / "broken.jpg")
    ]


def test_batches_are_float_nhwc_pixels_with_int_labels(folder, caplog, capsys) -> None:
    with caplog.at_level(logging.WARNING):
        data = keras.utils.image_dataset_from_directory(
            folder, image_size=(16, 16), batch_size=5, shuffle=False
        )
    assert "Found 25 files belonging to 3 classes." in capsys.readouterr().out
    assert data.class_names == ["blue", "green", "red"]
    assert "broken.jpg" in caplog.text and "cannot read the image" in caplog.text
    assert len(data) == 5 and len(data.file_paths) == 24
    batches = list(data)
    images, labels = batches[0]
    assert tuple(images.shape) == (5, 16, 16, 3) and str(images.dtype) == "torch.float32"
    assert str(labels.dtype) == "torch.int32" and labels.tolist() == [0] * 5
    pixels = images.numpy()
    assert pixels.max() <= 255 and np.all(np.mod(pixels, 1) == 0)
    assert pixels[..., 2].mean() > 150 > pixels[..., 0].mean()  # blue pictures, RGB order
    assert sum(len(b[1]) for b in batches) == 24
    assert int(batches[-1][1][-1]) == 2  # unshuffled: the red class last
    assert data.class_names[labels[0]] == "blue"  # tensors index lists, as in Keras


def test_split_follows_keras_rule_and_subsets_are_disjoint(folder) -> None:
    options = dict(image_size=(8, 8), validation_split=0.25, seed=7, verbose=False)
    train = keras.utils.image_dataset_from_directory(folder, subset="training", **options)
    val = keras.utils.image_dataset_from_directory(folder, subset="validation", **options)
    both = keras.utils.image_dataset_from_directory(folder, subset="both", **options)
    expected = listing(folder)
    np.random.RandomState(7).shuffle(expected)  # Keras: shuffle the list, the last part validates
    cut = len(expected) - int(0.25 * len(expected))
    readable = [p for p in expected if not p.endswith("broken.jpg")]
    assert train.file_paths == [p for p in expected[:cut] if p in readable]
    assert val.file_paths == [p for p in expected[cut:] if p in readable]
    assert not set(train.file_paths) & set(val.file_paths)
    assert sorted(train.file_paths + val.file_paths) == sorted(readable)
    assert [d.file_paths for d in both] == [train.file_paths, val.file_paths]
    other = keras.utils.image_dataset_from_directory(
        folder, subset="validation", **{**options, "seed": 8}
    )
    assert other.file_paths != val.file_paths


def test_fit_evaluate_predict_take_the_datasets(folder) -> None:
    keras.utils.set_random_seed(0)
    train, val = keras.utils.image_dataset_from_directory(
        folder,
        image_size=(12, 12),
        batch_size=4,
        validation_split=0.25,
        subset="both",
        seed=3,
        verbose=False,
    )
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(4, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(train, validation_data=val, epochs=15, verbose=0)
    assert "val_accuracy" in history.history
    _, accuracy = model.evaluate(val, verbose=0)
    assert accuracy == 1.0
    probabilities = model.predict(val, verbose=0)
    assert probabilities.shape == (len(val.file_paths), 3)
    truth = np.concatenate([labels.numpy() for _, labels in val.take(-1)])
    assert sorted(probabilities.argmax(1).tolist()) == sorted(truth.tolist())
    with pytest.raises(ConfigError, match="drop y"):
        model.fit(train, np.zeros(3), verbose=0)
    with pytest.raises(ConfigError, match="batch_size=8 for a dataset batched by 4"):
        model.evaluate(val, batch_size=8, verbose=0)
    with pytest.raises(ConfigError, match="validation_split works on arrays"):
        model.fit(train, validation_split=0.2, verbose=0)


def test_label_modes_class_names_and_explicit_labels(folder) -> None:
    load = keras.utils.image_dataset_from_directory
    options = dict(image_size=(8, 8), shuffle=False, verbose=False)
    images, onehot = next(iter(load(folder, label_mode="categorical", **options)))
    assert tuple(onehot.shape) == (24, 3) and tuple(images.shape) == (24, 8, 8, 3)
    assert onehot.sum(1).tolist() == [1.0] * len(onehot) and str(onehot.dtype) == "torch.float32"
    pair = load(folder, label_mode="binary", class_names=["red", "blue"], **options)
    assert pair.class_names == ["red", "blue"]
    labels = np.concatenate([y.numpy() for _, y in pair])
    assert labels.shape == (16, 1) and labels[:8, 0].tolist() == [0.0] * 8  # red first
    with pytest.raises(ConfigError, match="exactly 2 classes"):
        load(folder, label_mode="binary", **options)
    only = load(folder, label_mode=None, **options)
    assert tuple(next(iter(only)).shape) == (24, 8, 8, 3)
    grey = load(folder, labels=None, color_mode="grayscale", batch_size=None, **options)
    assert grey.class_names is None and tuple(next(iter(grey)).shape) == (8, 8, 1)
    explicit = load(folder, labels=[i % 2 for i in range(25)], **options)
    assert explicit.class_names == ["0", "1"]
    with pytest.raises(DataError, match="25 image files"):
        load(folder, labels=[0, 1], **options)


def test_take_cache_prefetch_and_numpy(folder) -> None:
    data = keras.utils.image_dataset_from_directory(
        folder, image_size=(8, 8), batch_size=3, seed=1, verbose=False
    )
    first = data.take(2).cache().prefetch(buffer_size=2)
    assert len(first) == 2 and len(list(first)) == 2
    images, labels = next(first.as_numpy_iterator())
    assert labels.dtype == np.int32
    assert isinstance(images, np.ndarray) and images.shape == (3, 8, 8, 3)
    orders = [np.concatenate([y.numpy() for _, y in data]) for _ in range(2)]
    assert sorted(orders[0]) == sorted(orders[1]) and list(orders[0]) != list(orders[1])
    with pytest.raises(keras.UnsupportedFeature, match="Rescaling"):
        data.map(lambda x, y: (x / 255, y))


def test_crop_keeps_the_centre_where_stretch_squeezes(tmp_path) -> None:
    root = tmp_path / "wide"
    (root / "a").mkdir(parents=True)
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, 10:20] = 255  # a white middle third
    Image.fromarray(pixels).save(root / "a" / "x.png")
    load = keras.utils.image_dataset_from_directory
    crop = next(iter(load(root, image_size=(10, 10), crop_to_aspect_ratio=True, verbose=False)))
    stretch = next(iter(load(root, image_size=(10, 10), verbose=False)))
    assert crop[0].numpy().mean() == 255.0
    assert 60 < stretch[0].numpy().mean() < 110


@pytest.mark.parametrize(
    ("argument", "value", "match"),
    [
        ("label_mode", "sparse", "label_mode"),
        ("color_mode", "cmyk", "color_mode"),
        ("color_mode", "rgba", "rgba"),
        ("image_size", (0, 8), "image_size"),
        ("batch_size", 0, "batch_size"),
        ("interpolation", "cubic", "interpolation"),
        ("interpolation", "gaussian", "gaussian"),
        ("validation_split", 1.5, "validation_split"),
        ("labels", "folders", "labels"),
        ("class_names", ["purple"], "class_names"),
        ("data_format", "nhwc", "data_format"),
    ],
)
def test_bad_arguments_name_the_argument(folder, argument, value, match) -> None:
    options = {"image_size": (8, 8), "verbose": False, argument: value}
    if argument == "validation_split":
        options.update(subset="training", seed=1)
    with pytest.raises(ConfigError, match=match):
        keras.utils.image_dataset_from_directory(folder, **options)


def test_split_argument_rules(folder, tmp_path) -> None:
    load = keras.utils.image_dataset_from_directory
    with pytest.raises(ConfigError, match="needs a seed"):
        load(folder, validation_split=0.2, subset="training", verbose=False)
    with pytest.raises(ConfigError, match="go together"):
        load(folder, subset="training", seed=1, verbose=False)
    with pytest.raises(ConfigError, match="subset must be"):
        load(folder, validation_split=0.2, subset="test", seed=1, verbose=False)
    with pytest.raises(DataError, match="validation subset has no files"):
        load(folder, validation_split=0.01, subset="validation", seed=1, verbose=False)
    with pytest.raises(DataNotFoundError, match="no such folder"):
        load(tmp_path / "missing", verbose=False)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load(tmp_path / "empty", verbose=False)


def test_follow_links_decides_whether_linked_folders_count(folder, tmp_path) -> None:
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(extra / "more.png")
    (folder / "red" / "linked").symlink_to(extra, target_is_directory=True)
    (folder / "red" / "loop").symlink_to(folder / "red", target_is_directory=True)
    load = keras.utils.image_dataset_from_directory
    plain = load(folder, image_size=(8, 8), shuffle=False, verbose=False)
    followed = load(folder, image_size=(8, 8), shuffle=False, follow_links=True, verbose=False)
    assert len(followed.file_paths) == len(plain.file_paths) + 1  # the loop is walked once
    assert followed.file_paths[-1].endswith("red/linked/more.png")
