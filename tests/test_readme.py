"""Every Python snippet of the README runs, as a new user would run it: beside a photo.jpg
a photos/ folder holding it, and a short clip.mp4 of it."""

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


def _run_snippet(n: int, astronaut: np.ndarray, folder: Path) -> dict[str, object]:
    """Run README python block ``n`` in ``folder`` (the current folder) beside the files."""
    Image.fromarray(astronaut).save(folder / "photo.jpg")
    (folder / "photos").mkdir()
    Image.fromarray(astronaut).save(folder / "photos" / "photo.jpg")
    if "clip.mp4" in SNIPPETS[n]:
        video = pytest.importorskip("tcnn.apps.video")
        writer = video.VideoWriter(folder / "clip.mp4", 25, (512, 512))
        for _ in range(5):
            writer.write(astronaut)
        writer.close()
    names: dict[str, object] = {"__name__": "readme"}
    exec(compile(SNIPPETS[n], f"README.md python block {n + 1}", "exec"), names)
    return names


@pytest.mark.parametrize("n", range(len(SNIPPETS)))
def test_readme_snippet_runs(
    n: int,
    astronaut: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    names = _run_snippet(n, astronaut, tmp_path)
    assert len(names) > 2 or capsys.readouterr().out.strip()  # it ran to its end


def test_the_alignment_snippet_aligns_a_detected_face(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tcnn.align import TEMPLATE

    (n,) = [i for i, code in enumerate(SNIPPETS) if "align_face(" in code]
    monkeypatch.chdir(tmp_path)
    names = _run_snippet(n, astronaut, tmp_path)
    faces, aligned = names["faces"], names["aligned"]
    assert isinstance(faces, list) and isinstance(aligned, np.ndarray)
    # The face it aligns is one the detector found, not a box typed into the snippet.
    assert any(face is names["largest"] for face in faces) and aligned.shape == (112, 112, 3)
    detector = names["detector"]
    again = detector.detect(aligned, boxes=[(0, 0, 112, 112)])[0].landmarks  # type: ignore[attr-defined]
    assert np.abs(again / 112 - TEMPLATE).max() < 0.06  # its eyes, nose, mouth on the template
