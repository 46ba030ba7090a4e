"""The demo for its user: photos of dark digits on paper, and a request log in the terminal."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.predict import Predictor
from cnnkit.serve.app import create_app, light_background
from cnnkit.serve.server import serve_in_background
from tests.data import imagefiles as f


@pytest.fixture(scope="module")
def demo(trained):
    predictor = Predictor(trained, device="cpu")
    with serve_in_background(create_app(predictor)) as url:
        yield url.rstrip("/"), predictor


def post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(f"{url}/api/predict?gradcam=0", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def seen(answer: dict) -> np.ndarray:
    """The picture the server says the model saw, uint8 (28, 28)."""
    png = base64.b64decode(answer["input"].split(",", 1)[1])
    return np.array(Image.open(io.BytesIO(png)))


def photo_of(digit: np.ndarray) -> np.ndarray:
    """A "photo" of an MNIST digit written in dark ink on lit paper: 112x112, a light
    background with a brightness gradient and noise, the strokes dark."""
    rng = np.random.default_rng(0)
    big = np.array(Image.fromarray(digit).resize((112, 112), Image.BILINEAR), dtype=np.float64)
    paper = 190 + 40 * np.linspace(0, 1, 112)[None, :] + rng.normal(0, 6, (112, 112))
    ink = big / 255.0
    return np.clip(paper * (1 - ink) + 35 * ink, 0, 255).astype(np.uint8)


def test_a_dark_digit_on_paper_is_inverted_and_read_right(demo) -> None:
    url, predictor = demo
    digits = predictor.run.load_data("test")
    for index in range(5):
        digit = digits.images[index, 0].numpy()
        (expected,) = predictor.predict_images(torch.from_numpy(digit)[None, None], top_k=1)
        answer = post(url, f.png(photo_of(digit)))
        assert answer["inverted"] is True
        model_saw = seen(answer)
        assert not light_background(model_saw[None])  # white on black, like MNIST
        assert answer["predicted"]["class"] == expected.best.name
    # an upload that already looks like the training pictures is left alone
    answer = post(url, f.png(digits.images[0, 0].numpy()))
    assert answer["inverted"] is False
    assert np.array_equal(seen(answer), digits.images[0, 0].numpy())


def test_light_background_reads_the_border() -> None:
    dark = np.zeros((1, 28, 28), dtype=np.uint8)
    dark[:, 8:20, 8:20] = 255  # a big bright digit does not make the background light
    assert not light_background(dark)
    assert light_background(255 - dark)


def logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cnnkit.serve.requests"]


def test_each_request_is_logged_with_status_and_time(demo, caplog) -> None:
    url, predictor = demo
    caplog.set_level(logging.INFO, logger="cnnkit.serve.requests")
    urllib.request.urlopen(f"{url}/", timeout=30).read()
    post(url, f.png(predictor.run.load_data("test").images[0, 0].numpy()))
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{url}/static/nope.js", timeout=30)
    deadline = time.monotonic() + 10  # a line is logged once its answer has been sent
    while len(lines := logged(caplog)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.fullmatch(r"GET / 200 \d+\.\d ms", lines[0]), lines
    assert re.fullmatch(r"POST /api/predict 200 \d+\.\d ms", lines[1]), lines
    assert re.fullmatch(r"GET /static/nope.js 404 \d+\.\d ms", lines[2]), lines


@pytest.mark.slow
def test_cnnkit_serve_prints_each_request(trained) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnnkit",
            "serve",
            str(trained.path),
            "--port",
            "0",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        first = process.stdout.readline()
        url = re.search(r"at (http://\S+)", first)
        assert url, first + process.stderr.read()
        url = url.group(1).rstrip("/")
        urllib.request.urlopen(f"{url}/api/info", timeout=30).read()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert re.search(r"GET /api/info 200 \d+\.\d ms", stderr), stderr
