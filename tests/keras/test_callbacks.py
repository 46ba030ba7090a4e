"""Keras's callbacks, run by cnnkit's engine, with Keras's arguments and messages."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cnnkit import keras
from cnnkit.errors import ConfigError
from cnnkit.keras import layers
from cnnkit.train.callbacks import Callback as EngineCallback

pytestmark = pytest.mark.usefixtures("single_thread")


def compiled(lr: float = 0.001) -> keras.Sequential:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), layers.Dense(10, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.Adam(lr), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def test_early_stopping_stops_restores_and_says_so(flat, capsys) -> None:
    (x, y), (x_val, y_val) = flat
    model = compiled(lr=0.5)  # too high: validation loss soon stops improving
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", min_delta=1e-4, patience=1, verbose=1, restore_best_weights=True
    )
    history = model.fit(
        x, y, epochs=20, verbose=0, validation_data=(x_val, y_val), callbacks=[stop]
    )
    out = capsys.readouterr().out
    ran = len(history.epoch)
    assert ran < 20
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    assert f"Restoring model weights from the end of the best epoch: {best + 1}." in out
    assert f"Epoch {ran}: early stopping" in out
    assert model.evaluate(x_val, y_val, verbose=0)[0] == pytest.approx(losses[best], rel=1e-2)


def test_reduce_lr_on_plateau_lowers_the_rate_and_says_so(flat, capsys) -> None:
    (x, y), (x_val, y_val) = flat
    model = compiled(lr=0.5)
    reduce = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=0, min_delta=10.0, verbose=1
    )  # every epoch
    history = model.fit(
        x, y, epochs=3, verbose=0, validation_data=(x_val, y_val), callbacks=[reduce]
    )
    out = capsys.readouterr().out
    # the first epoch sets the best value; each later one fails to beat it by 10
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.25." in out
    assert "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.125." in out
    assert history.history["learning_rate"] == pytest.approx([0.5, 0.5, 0.25])
    assert model.optimizer.learning_rate == pytest.approx(0.125)  # kept after fit, as Keras


def test_learning_rate_scheduler_and_custom_callback_hooks(flat) -> None:
    (x, y), _ = flat
    seen: list[tuple] = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(("begin", self.params["epochs"], self.model is model))

        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs), self.model.optimizer.learning_rate))
            if epoch == 1:
                self.model.stop_training = True

    model = compiled()
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))
    history = model.fit(x[:300], y[:300], epochs=5, verbose=0, callbacks=[schedule, Spy()])
    assert seen[0] == ("begin", 5, True)
    assert seen[1] == (0, ["accuracy", "learning_rate", "loss"], pytest.approx(0.01))
    assert seen[2][2] == pytest.approx(0.005)
    assert history.epoch == [0, 1]  # stop_training from a callback ends fit


def test_model_checkpoint_and_csv_logger_write_files(flat, tmp_path, capsys) -> None:
    (x, y), (x_val, y_val) = flat
    model = compiled()
    best = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best-{epoch:02d}.keras"),
        monitor="val_accuracy",
        save_best_only=True,
        verbose=1,
    )
    weights = keras.callbacks.ModelCheckpoint(tmp_path / "w.weights.h5", save_weights_only=True)
    log = keras.callbacks.CSVLogger(tmp_path / "log.csv")
    history = model.fit(
        x, y, epochs=2, verbose=0, validation_data=(x_val, y_val), callbacks=[best, weights, log]
    )
    assert "Epoch 1: val_accuracy improved from -inf to" in capsys.readouterr().out
    assert (tmp_path / "best-01.keras").is_file() and (tmp_path / "w.weights.h5").is_file()
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    loaded = keras.models.load_model(tmp_path / "best-01.keras")
    first = history.history["val_accuracy"][0]
    assert loaded.evaluate(x_val, y_val, verbose=0)[1] == pytest.approx(first, abs=0.01)


def test_terminate_on_nan_stops_training(flat, capsys) -> None:
    (x, y), _ = flat
    bad = x.copy()
    bad[5] = np.nan
    model = compiled()
    history = model.fit(
        bad, y, epochs=3, verbose=0, shuffle=False, callbacks=[keras.callbacks.TerminateOnNaN()]
    )
    assert history.epoch == [0]
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out


def test_backup_and_restore_resumes_after_a_crash(flat, tmp_path) -> None:
    (x, y), _ = flat

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("power cut")

    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    model = compiled()
    with pytest.raises(RuntimeError, match="power cut"):
        model.fit(x, y, epochs=4, verbose=0, callbacks=[backup, Crash()])
    assert (tmp_path / "backup" / "last.pt").is_file()
    again = compiled()
    history = again.fit(x, y, epochs=4, verbose=0, callbacks=[backup])
    assert history.epoch == [1, 2, 3]  # epoch 0 was backed up; 1 starts again
    assert not (tmp_path / "backup").exists()


def test_monitoring_a_value_fit_never_logs_fails_first(flat) -> None:
    (x, y), _ = flat
    with pytest.raises(ConfigError, match=r"'val_loss'.*validation_data"):
        compiled().fit(x, y, verbose=0, callbacks=[keras.callbacks.EarlyStopping()])
    with pytest.raises(ConfigError, match=r"callbacks must be keras.callbacks.Callback"):
        compiled().fit(x, y, verbose=0, callbacks=[print])
    assert isinstance(
        keras.callbacks.EarlyStopping().engine_callback.__self__, keras.callbacks.Callback
    )
    assert not isinstance(keras.callbacks.EarlyStopping(), EngineCallback)
