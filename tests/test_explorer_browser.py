"""The explorer in a real browser: Debian's Chromium, headless, driven by Selenium.

The live model must agree with Keras: the response shown for an uploaded
image within 1e-4 of the model's response s.d. over release images, and the
in-page synthesis must follow the Python recipe (classes.analysis.synthesis)
step for step. Skipped without chromium, chromium-driver and selenium;
under CI=true they fail instead.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.explorer_support import chromium_driver, close_driver, small_site

# The shown response may differ from Keras's by at most this fraction of the model's response s.d.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def site(tmp_path_factory, data_root):
    return small_site(tmp_path_factory, data_root)[0]


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    close_driver(driver)


@pytest.fixture(scope="module")
def keras_model(data_root):
    from classes.compact.model import load_compact_model
    from classes.compact.tools import predict_responses
    from classes.data.images import load_images
    from classes.data.preprocessing import recenter_images

    model = load_compact_model("201025", 2, data_root=data_root)
    spread = float(np.std(predict_responses(model, recenter_images(load_images("201025", range(601, 801),
                                                                                  data_root=data_root)))))
    return model, spread


def _errors(driver) -> list:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _wait(condition, seconds: float = 60.0):
    end = time.time() + seconds
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the page did not get there in time")


def _shown_response(driver, action=None) -> float:
    """The response the page shows once it has one (after ``action()``, when given)."""
    if action is not None:
        driver.execute_script("document.getElementById('response').removeAttribute('data-response')")
        action()
    return float(_wait(lambda: driver.find_element("id", "response").get_attribute("data-response")))


def test_browser_index_has_no_console_errors_and_finds_models(site, browser, tmp_path):
    browser.get((site / "index.html").as_uri())
    assert browser.find_element("id", "count").text == "3 of 3 models shown"
    assert _errors(browser) == []
    browser.find_element("id", "find").send_keys("190923/77\n")
    assert "No model 190923/77" in browser.find_element("id", "find-message").text
    browser.find_element("id", "min-r").send_keys("0.5")
    assert _wait(lambda: browser.find_element("id", "count").text.startswith(("1 of", "2 of")))
    browser.set_window_size(375, 800)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.save_screenshot(str(tmp_path / "index_phone.png"))
    browser.set_window_size(1200, 2000)


def test_browser_response_equals_keras(site, browser, keras_model, tmp_path):
    from PIL import Image, ImageDraw

    from classes.compact.tools import predict_responses
    from classes.data.preprocessing import recenter_images

    model, spread = keras_model
    browser.get((site / "neurons" / "201025_neuron2.html").as_uri())
    _shown_response(browser)
    assert _errors(browser) == []
    stimulus = Image.new("RGB", (112, 112), (128, 128, 128))
    drawing = ImageDraw.Draw(stimulus)
    drawing.ellipse((30, 40, 70, 90), fill=(250, 30, 40))
    drawing.rectangle((60, 10, 100, 30), fill=(10, 200, 240))
    stimulus.save(tmp_path / "stimulus.png")
    shown = _shown_response(browser, lambda: browser.find_element("id", "upload").send_keys(
        str(tmp_path / "stimulus.png")))
    expected = float(predict_responses(model, recenter_images(np.asarray(stimulus)[None]))[0])
    assert abs(shown - expected) <= TOLERANCE * spread, (shown, expected, spread)
    # A release JPEG picked in the page: the browser decodes it to the pixels the build saw.
    picked = _shown_response(browser, browser.find_element("css selector", "#picks button[data-index='0']").click)
    built = float(browser.execute_script("return EXPLORER_DATA[document.body.dataset.model].stimuli[0].response"))
    assert abs(picked - built) <= TOLERANCE * spread
    (tmp_path / "broken.png").write_text("not an image")
    browser.find_element("id", "upload").send_keys(str(tmp_path / "broken.png"))
    assert "Could not read" in _wait(lambda: browser.find_element("id", "message").text)
    assert _errors(browser) == []


def test_browser_synthesis_follows_the_python_recipe(site, browser, keras_model, tmp_path):
    from classes.analysis.synthesis import synthesize_images
    from classes.data.preprocessing import RGB_MEANS

    model, spread = keras_model
    browser.get((site / "neurons" / "201025_neuron2.html").as_uri())
    _shown_response(browser)
    noise = np.array(browser.execute_script("return Array.from(CompactSynthesis.initialNoise(0))"), np.float32)
    steps = browser.find_element("id", "steps")
    steps.clear()
    steps.send_keys("4")
    browser.find_element("id", "synthesize").click()
    status = browser.find_element("id", "synthesis-status")
    _wait(lambda: status.get_attribute("data-step") == "4" and "Done" in status.text, 120)
    trajectory = browser.execute_script("return window.explorerSynthesis.trajectory")
    start = noise.reshape(3, 112, 112).transpose(1, 2, 0) + RGB_MEANS
    reference = synthesize_images(model, num_images=1, num_steps=4, initial_images=start[None])
    np.testing.assert_allclose(trajectory, reference.trajectory[:, 0], atol=1e-3 * spread)
    assert float(status.get_attribute("data-best")) > trajectory[0]
    browser.save_screenshot(str(tmp_path / "neuron_after_synthesis.png"))
    assert (tmp_path / "neuron_after_synthesis.png").stat().st_size > 10_000
    assert _errors(browser) == []


def test_browser_keyboard_and_phone_width(site, browser):
    browser.get((site / "neurons" / "190923_neuron0.html").as_uri())
    _shown_response(browser)
    browser.set_window_size(375, 800)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.set_window_size(1200, 2000)
    browser.find_element("tag name", "body").send_keys("\ue014")  # the right arrow key
    _wait(lambda: browser.current_url.endswith("201025_neuron2.html"))
    assert _errors(browser) == []
