"""Run one benchmark script by name: ``python -m benchmarks NAME [ARGS]``.

Without a name (or with ``--help``) it lists every runnable script by folder, with its question
(the first line of its docstring) and how long it takes. Run it from the repository root, where
``benchmarks`` is importable; no ``PYTHONPATH`` is needed (tcnn is installed editable). The script
runs as if started by ``python benchmarks/DIR/NAME.py ARGS``: the same ``__main__``, the same
``sys.argv`` (so the results file records that command).
"""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The folders, in the order listed: headline measurements, the studies behind shipped
#: constants and decisions, helpers and profilers, figures.
FOLDERS = ("bench", "studies", "tools", "figures")

#: Wall time of one run on the project's 2-core machine, where measured: from the script's
#: docstring, the README or its results file (see benchmarks/README.md). Others: not measured.
TAKES = {
    "accuracy_slices": "about 10 s",
    "teacher_calibration": "about a minute",
    "teacher_consensus": "about 1.5 min",
    "student_fit": "about 1.5 min",
    "crop_views": "about 5 min",
    "staggered_views": "about 1 min",
    "bench_batch": "3-4 min (idle machine)",
    "bench_quantize": "about 10 min (busy machine)",
    "bench_serve": "about 7 min",
    "bench_video": "about 5 min (idle machine)",
    "install_sizes": "about 6 min (needs the package registry)",
    "tweak68": "21 min with --model runs/tcnn68/model.onnx (K 1, 4, 8, 16 x 3 seeds)",
    "retina_threshold": "about 1.5 min (80 s at load 6-7.6)",
    "retina_int8": "about 2 min (132 s at load 6.8)",
    "fuzz_serve": "about 5 min (302 s in results/serve_fuzz.json; --max-time 300)",
    "box_relation": "seconds once its detections are cached (first run not measured)",
}


def scripts() -> dict[str, Path]:
    """Every runnable script (one with a ``__main__`` block): ``{name: path}``, by folder."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((HERE / folder).glob("*.py")):
            if 'if __name__ == "__main__":' in path.read_text():
                found[path.stem] = path
    return found


def question(path: Path) -> str:
    """The first line of a script's docstring, read without importing it."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.splitlines()[0] if doc else ""


def listing() -> str:
    lines = ["usage: python -m benchmarks NAME [ARGS]   (make bench NAME=... ARGS='...')"]
    folder = None
    for name, path in scripts().items():
        if path.parent.name != folder:
            folder = path.parent.name
            lines += ["", f"{folder}/"]
        lines.append(f"  {name:22s} {question(path)}")
        lines.append(f"  {'':22s} takes: {TAKES.get(name, 'not measured')}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(listing())
        return 0
    name, args = argv[0], argv[1:]
    path = scripts().get(name.removesuffix(".py"))
    if path is None:
        print(f"no benchmark named {name!r}; python -m benchmarks lists them", file=sys.stderr)
        return 2
    sys.argv = [str(path), *args]  # run_module puts the script's path in argv[0]
    runpy.run_module(
        f"benchmarks.{path.parent.name}.{path.stem}", run_name="__main__", alter_sys=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
