"""The page at / in a real headless Chromium: upload a photo, see landmarks, download JSON.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and Selenium;
nothing is downloaded at run time. Set ``TCNN_SCREENSHOT=docs/serve-page.png`` to keep a
screenshot of the page.
"""

from __future__ import annotations

import json
import os
import shutil
import time
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
from tcnn.serve import ServeConfig, create_app  # noqa: E402

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
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_file(path: Path, seconds: float = 20) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_size > 0:
            return path.read_bytes()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not downloaded within {seconds} s")


def _without_timings(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


def test_page_draws_landmarks_and_downloads_the_api_answer(
    url: str, browser: Any, tmp_path: Path, astronaut: np.ndarray
) -> None:
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    wait = WebDriverWait(browser, 30)
    browser.get(url + "/")
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 0)
    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block'", upload)
    upload.send_keys(str(photo))
    browser.execute_script("arguments[0].style.display = ''", upload)
    wait.until(lambda d: d.find_element(By.ID, "canvas").get_attribute("data-faces") != "0")

    state = browser.execute_script("return window.tcnnState")
    api = httpx.post(
        f"{url}/v1/landmarks?points=5&model=vanilla5", files={"image": photo.read_bytes()}
    )
    assert api.status_code == 200
    assert _without_timings(state["answer"]) == _without_timings(api.json())
    assert state["faces"] == 1

    # The canvas holds the photo with each landmark drawn in its colour at its place.
    canvas = browser.find_element(By.ID, "canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("512", "512")
    colours = [(255, 59, 48), (52, 199, 89), (10, 132, 255), (255, 204, 0), (191, 90, 242)]
    for (x, y), colour in zip(state["answer"]["faces"][0]["landmarks"], colours):
        rgba = browser.execute_script(
            "return Array.from(document.getElementById('canvas').getContext('2d')"
            ".getImageData(arguments[0], arguments[1], 1, 1).data)",
            int(x),
            int(y),
        )
        assert max(abs(a - b) for a, b in zip(rgba[:3], colour)) < 30, (x, y, rgba, colour)
        assert max(abs(int(a) - b) for a, b in zip(astronaut[int(y), int(x)], colour)) > 30
    corner = browser.execute_script(
        "return Array.from(document.getElementById('canvas').getContext('2d')"
        ".getImageData(5, 5, 1, 1).data)"
    )
    assert max(abs(a - int(b)) for a, b in zip(corner[:3], astronaut[5, 5])) < 8  # the photo

    browser.find_element(By.ID, "download").click()
    downloaded = json.loads(_wait_for_file(tmp_path / "landmarks.json"))
    assert downloaded == state["answer"]
    assert _without_timings(downloaded) == _without_timings(api.json())

    # Switching to 68 points asks again and draws the 68-point answer.
    Select(browser.find_element(By.ID, "points")).select_by_value("68")
    wait.until(lambda d: d.execute_script("return window.tcnnState.answer.points") == 68)
    state = browser.execute_script("return window.tcnnState")
    assert len(state["answer"]["faces"][0]["landmarks"]) == 68
    if os.environ.get("TCNN_SCREENSHOT"):
        browser.save_screenshot(os.environ["TCNN_SCREENSHOT"])


def test_page_shows_the_error_for_a_bad_file(url: str, browser: Any, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    browser.get(url + "/")
    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block'", upload)
    upload.send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: "HTTP 400" in d.find_element(By.ID, "status").text)
    assert "not an image" in browser.find_element(By.ID, "status").text
