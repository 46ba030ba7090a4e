"""The demo page in headless Chromium (Debian's, driven by Playwright): draw a digit on the
canvas or upload a picture, and see the class the run predicts."""

from __future__ import annotations

import base64
import io
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.predict import Predictor
from cnnkit.serve.app import create_app
from cnnkit.serve.server import serve_in_background
from tests.browser import launch_playwright, needs_chromium
from tests.data import imagefiles as f

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install 'cnnkit[serve]'"
)

pytestmark = needs_chromium

# strokes of a hand-drawn "1" and "7", in fractions of the pad's width and height
ONE = [[(0.52, 0.18), (0.50, 0.50), (0.48, 0.84)]]
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.55, 0.5), (0.42, 0.85)]]


@pytest.fixture(scope="module")
def demo(trained):
    predictor = Predictor(trained, device="cpu")
    with serve_in_background(create_app(predictor)) as url:
        yield url, predictor


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = launch_playwright(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(demo, browser):
    url, _ = demo
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    problems: list[str] = []  # script errors and Content-Security-Policy violations
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    expected = "the server responded with a status of 422"  # refused uploads, checked in tests
    page.goto(url)
    page.wait_for_selector("#run-title:has-text('tiny')")
    yield page
    page.close()
    assert [p for p in problems if expected not in p] == []


def draw(page, strokes) -> None:
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            for t in np.linspace(0, 1, 12)[1:]:
                page.mouse.move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
        page.mouse.up()


def model_input(answer: dict) -> torch.Tensor:
    """The image the server says the model saw, uint8 ``(1, 28, 28)``."""
    png = base64.b64decode(answer["input"].split(",", 1)[1])
    return torch.from_numpy(np.array(Image.open(io.BytesIO(png))))[None]


def test_draw_a_digit_and_see_the_predicted_class(demo, page, tmp_path) -> None:
    _, predictor = demo
    assert page.is_visible("#pad") and not page.is_visible("#upload-panel")
    facts = page.inner_text("#run-facts")
    assert "lenet" in facts and "10 classes" in facts and "28\u00d728 grey" in facts
    with page.expect_response("**/api/predict**") as response:
        draw(page, ONE)
    page.wait_for_selector("#verdict:not([hidden])")
    shown = page.inner_text("#verdict-class")
    seen = model_input(response.value.json())  # the drawing as the model saw it
    (expected,) = predictor.predict_images(seen[None], top_k=5)
    assert shown == expected.best.name == response.value.json()["predicted"]["class"]
    assert shown == "1"
    assert page.locator("#bars li").count() == 5
    assert page.inner_text("#bars li:first-child .name") == shown
    # MNIST's framing: the digit fits a 20x20 box in the middle of the 28x28 input
    rows, cols = np.nonzero(seen[0].numpy() > 64)
    assert rows.min() >= 3 and rows.max() <= 24 and rows.max() - rows.min() >= 17
    assert cols.min() >= 9 and cols.max() <= 18  # a thin upright stroke, centred
    assert page.is_visible("#cam") and "Grad-CAM at features" in page.inner_text("#cam-caption")
    assert page.evaluate("document.getElementById('cam').naturalWidth") == 224
    page.screenshot(path=str(tmp_path / "drawn.png"))

    page.click("#clear")
    assert not page.is_visible("#verdict") and "Draw a digit" in page.inner_text("#status")
    with page.expect_response("**/api/predict**") as response:
        draw(page, SEVEN)
    page.wait_for_selector("#verdict:not([hidden])")
    (again,) = predictor.predict_images(model_input(response.value.json())[None], top_k=1)
    assert page.inner_text("#verdict-class") == again.best.name


def test_upload_a_picture_and_see_the_predicted_class(demo, page, tmp_path) -> None:
    _, predictor = demo
    digit = predictor.run.load_data("test").images[7, 0].numpy()
    picture = f.write(tmp_path / "digit.png", f.png(digit))
    page.click("#tab-upload")
    assert page.is_visible("#drop") and not page.is_visible("#pad")
    with page.expect_response("**/api/predict**"):
        page.set_input_files("#file", str(picture))
    page.wait_for_selector("#verdict:not([hidden])")
    (expected,) = predictor.predict([picture])
    assert page.inner_text("#verdict-class") == expected.best.name
    assert page.is_visible("#preview")

    junk = f.write(tmp_path / "junk.png", b"this is not a picture")
    with page.expect_response("**/api/predict**") as response:
        page.set_input_files("#file", str(junk))
    assert response.value.status == 422
    page.wait_for_selector("#status.error")
    assert "not a readable image" in page.inner_text("#status")
    assert not page.is_visible("#verdict")


def test_a_photo_of_a_dark_digit_on_paper_is_inverted_and_the_page_says_so(
    demo, page, tmp_path
) -> None:
    from tests.serve.test_demo import photo_of

    _, predictor = demo
    digit = predictor.run.load_data("test").images[0, 0].numpy()
    (expected,) = predictor.predict_images(torch.from_numpy(digit)[None, None], top_k=1)
    page.click("#tab-upload")
    with page.expect_response("**/api/predict**"):
        page.set_input_files("#file", str(f.write(tmp_path / "paper.png", f.png(photo_of(digit)))))
    page.wait_for_selector("#verdict:not([hidden])")
    assert page.inner_text("#verdict-class") == expected.best.name
    note = page.inner_text("#inverted")
    assert "light background" in note and "inverted" in note
    page.screenshot(path=str(tmp_path / "inverted.png"), full_page=True)
    # a picture like the training ones: no note
    with page.expect_response("**/api/predict**"):
        page.set_input_files("#file", str(f.write(tmp_path / "mnist.png", f.png(digit))))
    page.wait_for_selector("#verdict:not([hidden])")
    page.wait_for_selector("#inverted", state="hidden")
