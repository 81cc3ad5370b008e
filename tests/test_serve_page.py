"""The page at / in a real headless Chromium: upload a photo, see landmarks, download JSON;
choose the face detector; an error clears the previous answer; the photo fits the window.

Every wait is for a state of the page (``window.tcnnState``, the downloaded file), with a
generous overall bound for a loaded machine.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and Selenium;
nothing is downloaded at run time. Set ``TCNN_SCREENSHOT=docs/serve-page.png`` to keep a
screenshot of the page.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from serve_live import live_server  # noqa: E402
from tcnn.apps.serve import ServeConfig, create_app  # noqa: E402

#: Longest wait for any state of the page, seconds: generous, for a loaded CI machine.
WAIT_S = 180

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no Chromium here: apt-get install chromium chromium-driver (as .ci/run does)",
)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server(create_app(ServeConfig(threads=2))) as base:
        yield base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1150"):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs",
        {"download.default_directory": str(tmp_path), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_file(browser: Any, path: Path) -> bytes:
    """The downloaded file, once Chromium has renamed it into place (it writes a .crdownload
    first)."""
    WebDriverWait(browser, WAIT_S).until(
        lambda _: path.is_file() and path.stat().st_size > 0,
        f"{path} was not downloaded",
    )
    return path.read_bytes()


def _settled(browser: Any, after: int = 0) -> dict[str, Any]:
    """``window.tcnnState`` once a request later than number ``after`` has ended (and no
    other is under way)."""

    def ended(d: Any) -> bool:
        return bool(
            d.execute_script(
                "const s = window.tcnnState; return s.request > arguments[0] && !s.pending",
                after,
            )
        )

    WebDriverWait(browser, WAIT_S).until(ended)
    return browser.execute_script("return window.tcnnState")


def _answer_with(browser: Any, key: str, value: object) -> dict[str, Any]:
    """``window.tcnnState`` once its answer's ``key`` is ``value`` (a new request's answer)."""

    def shown(d: Any) -> bool:
        script = f"return (window.tcnnState.answer || {{}})[{json.dumps(key)}]"
        return bool(d.execute_script(script) == value)

    WebDriverWait(browser, WAIT_S).until(shown)
    return _settled(browser)


def _upload(browser: Any, path: Path) -> dict[str, Any]:
    """Choose the file ``path`` on the page; ``window.tcnnState`` once its request ended."""
    before = browser.execute_script("return window.tcnnState.request")
    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block'", upload)
    upload.send_keys(str(path))
    browser.execute_script("arguments[0].style.display = ''", upload)
    return _settled(browser, before)


def _pixel(browser: Any, x: float, y: float) -> list[int]:
    return browser.execute_script(
        "return Array.from(document.getElementById('canvas').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data)",
        int(x),
        int(y),
    )


def _without_timings(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


@pytest.mark.slow
def test_page_draws_landmarks_and_downloads_the_api_answer(
    url: str, browser: Any, tmp_path: Path, astronaut: np.ndarray
) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url + "/")
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 0)
    state = _upload(browser, photo)
    assert browser.find_element(By.ID, "canvas").get_attribute("data-faces") == "1"
    api = httpx.post(
        f"{url}/v1/landmarks?points=5&model={state['answer']['model']}",  # the page's default
        files={"image": photo.read_bytes()},
    )
    assert api.status_code == 200
    assert _without_timings(state["answer"]) == _without_timings(api.json())
    assert state["faces"] == 1

    # The canvas holds the photo with each landmark drawn in its colour at its place.
    canvas = browser.find_element(By.ID, "canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("512", "512")
    colours = [(255, 59, 48), (52, 199, 89), (10, 132, 255), (255, 204, 0), (191, 90, 242)]
    for (x, y), colour in zip(state["answer"]["faces"][0]["landmarks"], colours):
        rgba = _pixel(browser, x, y)
        assert max(abs(a - b) for a, b in zip(rgba[:3], colour)) < 30, (x, y, rgba, colour)
        assert max(abs(int(a) - b) for a, b in zip(astronaut[int(y), int(x)], colour)) > 30
    corner = _pixel(browser, 5, 5)
    assert max(abs(a - int(b)) for a, b in zip(corner[:3], astronaut[5, 5])) < 8  # the photo

    browser.find_element(By.ID, "download").click()
    downloaded = json.loads(_wait_for_file(browser, tmp_path / "landmarks.json"))
    assert downloaded == state["answer"]
    assert _without_timings(downloaded) == _without_timings(api.json())

    # Switching to 68 points asks again and draws the 68-point answer.
    Select(browser.find_element(By.ID, "points")).select_by_value("68")
    state = _answer_with(browser, "points", 68)
    assert len(state["answer"]["faces"][0]["landmarks"]) == 68
    if os.environ.get("TCNN_SCREENSHOT"):
        browser.save_screenshot(os.environ["TCNN_SCREENSHOT"])


@pytest.mark.slow
def test_an_error_clears_the_previous_answer(
    url: str, browser: Any, tmp_path: Path, astronaut: np.ndarray
) -> None:
    """After a good photo, a bad file shows its error and leaves nothing of the old answer:
    no drawing, no JSON, nothing to download."""
    photo, bad = tmp_path / "astronaut.png", tmp_path / "notes.png"
    Image.fromarray(astronaut).save(photo)
    bad.write_bytes(b"this is not a picture")
    browser.get(url + "/")
    state = _upload(browser, photo)
    assert state["faces"] == 1 and state["error"] is None
    x, y = state["answer"]["faces"][0]["landmarks"][0]
    assert _pixel(browser, x, y)[3] == 255  # the photo and its landmarks are drawn
    assert browser.find_element(By.ID, "download").get_attribute("href")

    state = _upload(browser, bad)
    assert "HTTP 400" in state["error"]
    assert state["answer"] is None and state["faces"] == 0 and "not an image" in state["error"]
    assert "HTTP 400" in browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "json").get_attribute("textContent") == ""
    download = browser.find_element(By.ID, "download")
    assert download.get_attribute("href") is None
    assert "disabled" in download.get_attribute("class")
    assert browser.find_element(By.ID, "canvas").get_attribute("data-faces") == "0"
    assert _pixel(browser, x, y) == [0, 0, 0, 0]  # the old drawing is gone
    assert _pixel(browser, 5, 5) == [0, 0, 0, 0]


@pytest.mark.slow
def test_the_detector_choice_reaches_the_api(
    url: str, browser: Any, tmp_path: Path, astronaut: np.ndarray
) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    listed = httpx.get(f"{url}/v1/detectors").json()
    browser.get(url + "/")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: len(Select(d.find_element(By.ID, "detector")).options) > 1
    )
    select = Select(browser.find_element(By.ID, "detector"))
    options = [(o.get_attribute("value"), o.is_enabled()) for o in select.options]
    assert options == [("", True)] + [(d["name"], d["available"]) for d in listed]
    assert _upload(browser, photo)["answer"]["detector"] == "retinaface-int8"  # the model's own
    for name in [d["name"] for d in listed if d["available"] and d["name"] != "retinaface-int8"]:
        Select(browser.find_element(By.ID, "detector")).select_by_value(name)
        state = _answer_with(browser, "detector", name)
        api = httpx.post(
            f"{url}/v1/landmarks?points=5&model={state['answer']['model']}&detector={name}",
            files={"image": photo.read_bytes()},
            timeout=WAIT_S,
        )
        assert _without_timings(state["answer"]) == _without_timings(api.json())


@pytest.mark.slow
@pytest.mark.parametrize("size", [(300, 2400), (3200, 400)], ids=["tall", "wide"])
def test_the_photo_fits_the_window(
    url: str, browser: Any, tmp_path: Path, astronaut: np.ndarray, size: tuple[int, int]
) -> None:
    """A tall or wide photo is shown whole: no wider than the page, no taller than the
    window, its shape kept."""
    photo = tmp_path / "odd.png"
    Image.fromarray(astronaut).resize(size).save(photo)
    browser.get(url + "/")
    _upload(browser, photo)
    box = browser.execute_script(
        "const r = document.getElementById('canvas').getBoundingClientRect();"
        "return [r.width, r.height, window.innerWidth, window.innerHeight]"
    )
    width, height, window_w, window_h = box
    canvas = browser.find_element(By.ID, "canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == tuple(map(str, size))
    assert 0 < width <= window_w and 0 < height <= window_h, box
    assert abs(width / height - size[0] / size[1]) < 0.02 * size[0] / size[1], box


@pytest.mark.slow
def test_page_shows_the_error_for_a_bad_file(url: str, browser: Any, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    browser.get(url + "/")
    assert "HTTP 400" in _upload(browser, bad)["error"]
    assert "not an image" in browser.find_element(By.ID, "status").text
