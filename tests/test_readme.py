"""Every Python snippet of the README runs, as a new user would run it: beside a photo.jpg
and a short clip.mp4 of it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("n", range(len(SNIPPETS)))
def test_readme_snippet_runs(
    n: int,
    astronaut: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Image.fromarray(astronaut).save(tmp_path / "photo.jpg")
    if "clip.mp4" in SNIPPETS[n]:
        video = pytest.importorskip("tcnn.video")
        writer = video.VideoWriter(tmp_path / "clip.mp4", 25, (512, 512))
        for _ in range(5):
            writer.write(astronaut)
        writer.close()
    monkeypatch.chdir(tmp_path)
    names: dict[str, object] = {"__name__": "readme"}
    exec(compile(SNIPPETS[n], f"README.md python block {n + 1}", "exec"), names)
    assert len(names) > 2 or capsys.readouterr().out.strip()  # it ran to its end
