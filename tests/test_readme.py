"""Every Python snippet of the README and the docs/ pages runs, as a new user would run it: beside
a photo.jpg (scikit-image's astronaut, one face), a photos/ folder holding it, and a short
clip.mp4 of it; and each does what its text says."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: (page, number on the page, code) of every ```python block.
SNIPPETS = [
    (page, i, code)
    for page in PAGES
    for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(), re.M | re.S))
]
FRAMES = 5


def _run_snippet(code: str, name: str, astronaut: np.ndarray, folder: Path) -> dict[str, object]:
    """Run a snippet in ``folder`` (the current folder) beside the files it reads."""
    Image.fromarray(astronaut).save(folder / "photo.jpg")
    (folder / "photos").mkdir()
    Image.fromarray(astronaut).save(folder / "photos" / "photo.jpg")
    if "clip.mp4" in code:
        video = pytest.importorskip("tcnn.apps.video")
        writer = video.VideoWriter(folder / "clip.mp4", 25, (512, 512))
        for _ in range(FRAMES):
            writer.write(astronaut)
        writer.close()
    names: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, name, "exec"), names)
    return names


def _one_face(faces: object) -> None:
    assert isinstance(faces, list) and len(faces) == 1  # the astronaut
    (points,) = [face.landmarks for face in faces]
    assert points.shape in ((5, 2), (68, 2)) and ((points > 0) & (points < 512)).all()


def _detect(names: dict[str, object], out: str) -> None:
    _one_face(names["faces"])
    _one_face(names["boxed"])
    assert len(out.splitlines()) >= 5  # the box, score and the [5, 2] landmarks of the one face


def _pipeline(names: dict[str, object], out: str) -> None:
    # One line per image, in order, each with its one face.
    assert out.splitlines() == ["photo.jpg 1", str(Path("photos", "photo.jpg")) + " 1"]


def _box(names: dict[str, object], out: str) -> None:
    """Each line ``EXPR  # ...: RESULT`` gives RESULT, as its comment says."""
    code = next(c for _, _, c in SNIPPETS if "Box.from_dlib" in c)
    claims = re.findall(r"^(\S.*?)\s+#.*: (Box\(.*\))$", code, re.M)
    assert len(claims) == 2
    for expr, said in claims:
        assert eval(expr, names) == eval(said, names)


def _tracker(names: dict[str, object], out: str) -> None:
    # One face a frame: its track id, whether the detector placed it, then its [5, 2] points.
    faces = re.findall(r"^(\d+) (True|False) \[\[", out, re.M)
    assert len(faces) == FRAMES and len(out.splitlines()) == 5 * FRAMES
    assert {track for track, _ in faces} == {faces[0][0]}  # one track, one id
    assert faces[0][1] == "True"  # the first frame is a detection


def _batch(names: dict[str, object], out: str) -> None:
    summary, rows = names["summary"], names["rows"]
    # photos/ holds the one photo: one file, one face, one row.
    assert (summary.files, summary.faces, summary.failed) == (1, 1, 0)  # type: ignore[attr-defined]
    assert list(rows["status"]) == ["face"]  # type: ignore[index]


#: What each snippet must do, by a call that only it makes.
CHECKS: dict[str, Callable[[dict[str, object], str], None]] = {
    "align_face(": _detect,
    "Pipeline()": _pipeline,
    "Box.from_dlib": _box,
    "tracker.update": _tracker,
    "from tcnn.apps.batch import": _batch,
}


def test_every_snippet_has_one_check() -> None:
    assert len(SNIPPETS) >= len(CHECKS)
    for page, i, code in SNIPPETS:
        found = [key for key in CHECKS if key in code]
        assert len(found) == 1, f"{page.name} python block {i + 1}: checks {found}"
        ast.parse(code)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"{p.name}-{i + 1}" for p, i, _ in SNIPPETS])
def test_snippet_does_what_it_says(
    snippet: tuple[Path, int, str],
    astronaut: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page, i, code = snippet
    monkeypatch.chdir(tmp_path)
    names = _run_snippet(code, f"{page.name} python block {i + 1}", astronaut, tmp_path)
    (check,) = [fn for key, fn in CHECKS.items() if key in code]
    check(names, capsys.readouterr().out)


def test_the_alignment_snippet_aligns_a_detected_face(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tcnn.align import TEMPLATE

    (code,) = [c for _, _, c in SNIPPETS if "align_face(" in c]
    monkeypatch.chdir(tmp_path)
    names = _run_snippet(code, "alignment", astronaut, tmp_path)
    faces, aligned = names["faces"], names["aligned"]
    assert isinstance(faces, list) and isinstance(aligned, np.ndarray)
    # The face it aligns is one the detector found, not a box typed into the snippet.
    assert any(face is names["largest"] for face in faces) and aligned.shape == (112, 112, 3)
    detector = names["detector"]
    again = detector.detect(aligned, boxes=[(0, 0, 112, 112)])[0].landmarks  # type: ignore[attr-defined]
    assert np.abs(again / 112 - TEMPLATE).max() < 0.06  # its eyes, nose, mouth on the template
