from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcnn.errors import TcnnError
from tcnn.files import StreamFile, atomic_path, make_durable, save_figure, save_image, write_text


def test_atomic_path_renames_on_success_and_cleans_up_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        assert tmp.parent == tmp_path and tmp != target
        raise KeyboardInterrupt  # Ctrl-C mid-write
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers see the old file until the rename
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_stream_file_and_durable_write(tmp_path: Path) -> None:
    """A streamed file appears only on commit; abort leaves nothing; fsync writes the same."""
    target = tmp_path / "log.jsonl"
    out = StreamFile(target)
    out.write("a\n", flush=True)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == [out.tmp.name]
    assert out.tmp.read_text() == "a\n"  # flushed: a reader of the temp file sees it
    out.write("b\n")
    assert out.commit() == target and target.read_text() == "a\nb\n"
    dropped = StreamFile(tmp_path / "gone.bin", binary=True)
    dropped.write(b"x")
    dropped.abort()
    with atomic_path(tmp_path / "part.bin", fsync=True) as tmp:
        tmp.write_bytes(b"rows")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "part.bin"]
    assert (tmp_path / "part.bin").read_bytes() == b"rows"
    with pytest.raises(TcnnError, match=r"nowhere[/\\]x.txt: cannot write"):
        StreamFile(tmp_path / "nowhere" / "x.txt")


def test_write_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(TcnnError, match=r"missing[/\\]x.txt: cannot write") as info:
        write_text(tmp_path / "missing" / "x.txt", "a")
    assert "\n" not in str(info.value)


def test_image_and_figure_helpers(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    img = Image.fromarray(np.full((8, 8, 3), 200, np.uint8))
    assert Image.open(save_image(img, tmp_path / "a.jpg")).format == "JPEG"
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "f.png")
    assert Image.open(out).format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "f.png"]


@pytest.mark.slow
def test_library_sets_no_matplotlib_backend() -> None:
    """Drawing a plot in the library leaves pyplot's backend to the user."""
    import subprocess
    import sys

    code = (
        "import matplotlib; before = matplotlib.get_backend();"
        "from tcnn.train.evaluate import plot_ced; import numpy as np, tempfile, os;"
        "d = tempfile.mkdtemp(); plot_ced({'a': np.array([0.01, 0.05])}, os.path.join(d, 'c.png'));"
        "assert matplotlib.get_backend() == before, matplotlib.get_backend();"
        "assert 'matplotlib.pyplot' not in __import__('sys').modules"
    )
    env_path = str(Path(__file__).resolve().parent.parent / "src")
    import os

    env = {**os.environ, "PYTHONPATH": env_path, "MPLBACKEND": "svg"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_data_root_is_read_when_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tcnn.train.data.datasets import default_root, load_dataset

    monkeypatch.setenv("TCNN_DATA", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere"
    with pytest.raises(TcnnError, match=r"data folder .*elsewhere not found"):
        load_dataset("mtfl-train")


def test_make_durable_syncs_files_and_names_a_missing_one(tmp_path: Path) -> None:
    files = [write_text(tmp_path / f"{i}.txt", str(i)) for i in range(3)]
    make_durable(files)  # written files and their folder sync without error
    with pytest.raises(TcnnError, match=r"gone\.txt: cannot write"):
        make_durable([*files, tmp_path / "gone.txt"])
