"""keras.datasets / keras.utils as Keras returns them, and data never silently changed."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit import keras
from cnnkit.data.dataset import Dataset
from cnnkit.errors import DataError, DataNotFoundError
from tests.data.cifarfiles import write_cifar10, write_cifar100


def test_mnist_load_data_matches_keras_shapes_and_dtypes() -> None:
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the first digits of MNIST, as Keras's


def test_cifar_load_data_is_channels_last_with_column_labels(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    train_x, train_y, _, _ = write_cifar10(tmp_path / "cifar10", kind="python")
    (x, y), (x_test, _) = keras.datasets.cifar10.load_data()
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (20, 1) and y.dtype == np.uint8 and x_test.shape == (3, 32, 32, 3)
    assert np.array_equal(x, train_x.transpose(0, 2, 3, 1)) and y[:, 0].tolist() == train_y.tolist()
    written = write_cifar100(tmp_path / "cifar100", kind="python")
    (x, y), _ = keras.datasets.cifar100.load_data(label_mode="coarse")
    assert y.shape == (6, 1) and y.dtype == np.int64
    assert y[:, 0].tolist() == written["train"][2].tolist()


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="To fix"):
        keras.datasets.cifar10.load_data()
    with pytest.raises(keras.UnsupportedFeature, match="imdb"):
        keras.datasets.imdb.load_data()


def test_to_categorical() -> None:
    assert keras.utils.to_categorical([0, 2], 3).tolist() == [[1, 0, 0], [0, 0, 1]]
    column = keras.utils.to_categorical(np.array([[1], [0]]))
    assert column.shape == (2, 2) and column.dtype == np.float32
    with pytest.raises(DataError, match="do not fit num_classes=2"):
        keras.utils.to_categorical([0, 2], 2)
    with pytest.raises(DataError, match="whole-number"):
        keras.utils.to_categorical([0.5])


def test_dataset_from_numpy_never_changes_data_silently() -> None:
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)  # floats in [0, 1]
    with pytest.raises(DataError, match=r"float32.*\(x \* 255\).round\(\).astype\('uint8'\)"):
        Dataset.from_numpy(images, np.zeros(4), ["a"])
    with pytest.raises(DataError, match=r"look channels-last.*layout='nhwc'"):
        Dataset.from_numpy(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4), ["a"])
    nhwc = np.arange(4 * 5 * 6 * 3, dtype=np.uint8).reshape(4, 5, 6, 3)
    read = Dataset.from_numpy(nhwc, np.zeros(4), ["a"], layout="nhwc")
    assert read.image_shape == (3, 5, 6) and np.array_equal(
        read.images[1, 2].numpy(), nhwc[1, ..., 2]
    )
    whole = Dataset.from_numpy(np.full((2, 3, 3), 200.0), np.array([0.0, 1.0]), ["a", "b"])
    assert int(whole.images.max()) == 200  # whole numbers in range convert losslessly
    with pytest.raises(DataError, match="labels of dtype float64"):
        Dataset.from_numpy(np.zeros((2, 3, 3), np.uint8), np.array([0.5, 1.0]), ["a", "b"])
