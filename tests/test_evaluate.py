"""The evaluation report in the API (what ``tcnn evaluate`` prints) and its up-front checks."""

from pathlib import Path

import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.train.evaluate import EvalResult, evaluate, format_300w, format_summary


def _result() -> EvalResult:
    zeros = np.zeros((2, 5, 2))
    errors = np.array([0.05, 0.12])
    return EvalResult("m", "mtfl-aflw", "eye-centres", "boxes from x", errors, zeros, zeros, 1, 0.5)


def test_report_is_the_summary_in_lines() -> None:
    result = _result()
    assert result.report() == format_summary(result.summary())
    assert result.report().splitlines() == [
        "m on mtfl-aflw (eye-centres normalisation: 0 to 1 of the labels)",
        "  faces evaluated  2   missed by the detector 1",
        "  mean error       8.50%   median 8.50%",
        "  failures > 8%    50.00%   > 10% 50.00%",
        f"  AUC at 10%       {result.summary()['auc_10']:.2f}",
        "  boxes            boxes from x",
    ]
    summary = {
        **result.summary(),
        "scoring": "visible points",
        "by_region": {"eyes": 4.0, "mouth": 6.5},
        "by_group": {"frontal": {"faces": 2, "mean": 8.5}},
        "ced_png": "ced.png",
    }
    assert format_summary(summary).splitlines()[-4:] == [
        "  scoring          visible points",
        "  by part          eyes 4.00%, mouth 6.50%",
        "  by group         frontal 8.50% (2)",
        "  CED curve        ced.png",
    ]


def test_300w_table() -> None:
    row = {"subset": "common", "normaliser": "inter-ocular", "faces": 554, "missed": 0}
    row |= {"mean": 3.5, "median": 3.125, "failure_8": 1.25, "failure_10": 0.5, "auc_10": 66.6}
    header, line = format_300w([row]).splitlines()
    assert header.split() == [
        "subset", "normaliser", "faces", "missed", "mean", "median", "fail>8%", "fail>10%",
        "AUC@10%",
    ]  # fmt: skip
    expected = ["common", "inter-ocular", "554", "0", "3.50%", "3.12%", "1.25%", "0.50%"]
    assert line.split() == [*expected, "66.60"]
    assert len(header) == len(line)  # the columns line up


@pytest.mark.parametrize(
    ("data", "normaliser", "known"),
    [("mtfl-aflw", "inter-pupil", "eye-centres"), ("aflw68", "eye-centres", "inter-ocular")],
)
def test_unknown_normaliser_fails_before_the_data_is_read(
    tmp_path: Path, data: str, normaliser: str, known: str
) -> None:
    # The folder is empty: reading the dataset would fail with another message.
    with pytest.raises(TcnnError, match=f"normaliser '{normaliser}': {data} .* has .*{known}"):
        evaluate(None, data, str(tmp_path), normaliser=normaliser)
    with pytest.raises(TcnnError, match="limit -1: must be 0"):
        evaluate(None, data, str(tmp_path), limit=-1)


def test_detector_is_the_deprecated_name_of_face_detector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The face detector's name reaches the dataset's boxes under either keyword; only the old
    one warns, and both at once with different names is an error."""
    import warnings

    import tcnn.train.evaluate as ev

    class Stop(Exception):
        pass

    seen: list[str] = []

    def boxes_from(data: str, root: object, face_detector: str, **kwargs: object) -> None:
        seen.append(face_detector)
        raise Stop

    monkeypatch.setattr(ev, "load_dataset", boxes_from)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name does not warn
        with pytest.raises(Stop):
            evaluate(None, "mtfl-aflw", face_detector="dlib-cnn")
    old = r"evaluate\(detector=\.\.\.\) is deprecated: use face_detector="
    with pytest.warns(DeprecationWarning, match=old), pytest.raises(Stop):
        evaluate(None, "mtfl-aflw", detector="dlib-cnn")
    with pytest.warns(DeprecationWarning, match=r"evaluate_300w\("), pytest.raises(Stop):
        ev.evaluate_300w(None, str(tmp_path), detector="dlib-cnn")
    assert seen == ["dlib-cnn"] * 3  # not the default model card's detector (retinaface)
    with pytest.warns(DeprecationWarning), pytest.raises(TcnnError, match="face_detector only"):
        evaluate(None, "mtfl-aflw", face_detector="dlib", detector="retinaface")
