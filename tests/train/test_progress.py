"""What training prints: the set-up, the live bar, epoch lines and callbacks' decisions."""

from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console
from rich.logging import RichHandler

from cnnkit.errors import ConfigError
from cnnkit.train.callbacks import Callback, EarlyStopping, ProgressBar, ReduceLROnPlateau
from cnnkit.train.loop import fit

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


def terminal(width: int = 100) -> tuple[Console, io.StringIO]:
    """A console that takes itself for a terminal (so the live bar runs), recording to text."""
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=width, color_system=None), buffer


def train(mini, tiny_model, **kwargs):
    train_set, val, preprocessing = mini
    kwargs = {"epochs": 1, "batch_size": 64, "device": "cpu", "precision": "fp32", **kwargs}
    return fit(tiny_model(), train=train_set, val=val, preprocessing=preprocessing, **kwargs)


def test_the_bar_shows_running_metrics_speed_and_labelled_times(mini, tiny_model) -> None:
    console, buffer = terminal(width=200)
    frames: list[str] = []

    bar = ProgressBar(console)
    bar.REFRESH_SECONDS = 0  # read the running metrics at every batch

    class Peek(Callback):  # what the live bar shows mid-epoch
        order = 60  # after the bar has drawn this batch

        def on_train_batch_end(self, batch: int) -> None:
            if batch == 8:
                frames.append(_render(bar._bar))

    train(mini, tiny_model, callbacks=[bar, Peek()])
    shown = frames[0]
    assert re.search(r"Epoch 1/1 .*9/10 elapsed \d:\d\d:\d\d left \d:\d\d:\d\d", shown), shown
    assert re.search(r"loss \d\.\d{4}  accuracy \d+\.\d\d%  [\d,]+ samples/s", shown), shown
    text = buffer.getvalue()
    setup = text.index("device cpu")
    assert "device cpu (1 thread) · precision fp32 · data 640 train, 200 val" in text
    assert "10 steps of 64 per epoch" in text and "parameters" in text
    assert setup < text.index("Epoch 1/1  loss")  # the set-up comes before training
    assert re.search(r"Epoch 1/1  loss .* val_accuracy .* [\d,]+ samples/s", text)


def _render(progress) -> str:
    console = Console(width=100, file=io.StringIO(), color_system=None, record=True)
    for renderable in progress.get_renderables():
        console.print(renderable)
    return console.export_text()


def test_decisions_are_printed_as_keras_prints_them(mini, tiny_model) -> None:
    console, buffer = terminal(width=200)

    class Worse(Callback):  # the validation loss gets worse after epoch 1
        order = -10  # before the callbacks that watch it

        def on_epoch_end(self, epoch: int, logs) -> None:
            logs["val_loss"] = 1.0 + epoch

    train(
        mini,
        tiny_model,
        epochs=3,
        lr=0.01,
        callbacks=[
            Worse(),
            ProgressBar(console, verbose=2),
            EarlyStopping(patience=1, restore_best_weights=True),
            ReduceLROnPlateau(patience=0, factor=0.5),
        ],
    )
    lines = buffer.getvalue().splitlines()
    assert lines[1].startswith("Epoch 1/3  loss")
    assert lines[2].startswith("Epoch 2/3  loss")
    # Keras's words, after the epoch's own line; early stopping's at the end of training
    assert lines[3] == "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.005."
    assert lines[4:] == [
        "Epoch 2: early stopping",
        "Restoring model weights from the end of the best epoch: 1.",
    ]


def test_verbose_chooses_bar_lines_or_silence(mini, tiny_model, capsys) -> None:
    train(mini, tiny_model, verbose=0)
    assert capsys.readouterr().out == ""
    train(mini, tiny_model, verbose=2)  # fit's own ProgressBar, on stdout (not a terminal)
    out = capsys.readouterr().out
    assert out.startswith("device cpu") and "Epoch 1/1  loss" in out
    train(mini, tiny_model)  # default verbose=1: where stdout is no terminal, lines only
    assert "Epoch 1/1  loss" in capsys.readouterr().out
    console, buffer = terminal()
    train(mini, tiny_model, callbacks=[ProgressBar(console, verbose=0)])  # the caller's wins
    assert buffer.getvalue() == "" and capsys.readouterr().out == ""
    with pytest.raises(ConfigError, match="verbose must be 0, 1 or 2"):
        train(mini, tiny_model, verbose=3)
    with pytest.raises(ConfigError, match="verbose must be 0"):
        ProgressBar(verbose=-1)


def test_log_lines_land_above_the_bar_not_on_it(mini, tiny_model) -> None:
    console, buffer = terminal()
    elsewhere = io.StringIO()  # the CLI's log console writes to stderr, not the bar's stream
    handler = RichHandler(console=Console(file=elsewhere, width=100), show_time=False)
    root = logging.getLogger()
    root.addHandler(handler)

    class Warn(Callback):
        def on_train_batch_end(self, batch: int) -> None:
            if batch == 3:
                logging.getLogger("cnnkit.test").warning("Ctrl-C: stopping after this batch")

    try:
        train(mini, tiny_model, callbacks=[ProgressBar(console), Warn()])
    finally:
        root.removeHandler(handler)
    assert elsewhere.getvalue() == ""  # went through the bar's console...
    text = buffer.getvalue()
    assert "Ctrl-C: stopping after this batch" in text
    # ...on a line of its own: the live display erases its lines, prints it, then redraws
    assert re.search(r"\x1b\[2KWARNING +Ctrl-C: stopping after this batch +\S+\nEpoch 1/1 ", text)
    assert handler.console.file is elsewhere
