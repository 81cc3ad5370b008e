"""Quantized models against their float originals: accuracy and speed in the same run.

For each ``FLOAT=INT8`` pair (a shipped name or ``.onnx`` path each; the int8 model made by
``tcnn quantize``), or a ``FLOAT`` alone (quantized here by
:func:`tcnn.train.quantize.quantize_model` with its defaults into a temporary folder, for
measuring only):

- accuracy, every face scored for both models with the same boxes: 5 points on MTFL AFLW test
  under both protocols of ``bench_protocols.py`` ((a) RetinaFace boxes, (b) dlib HOG boxes,
  upsample 2); 68 points on aflw68's held-out part (``aflw68-test``, HOG and RetinaFace boxes,
  ``bench_aflw68.score``: inter-pupil, located points only) and on ytf68 test (HOG boxes,
  inter-ocular).
- speed, the two models alternating round by round so that both see the same machine load:
  the network alone (ONNX Runtime on ready ``[N, 3, S, S]`` input, the session
  ``LandmarkDetector`` uses, all cores) and the landmark stage (``landmarks_batch``: cropping,
  network, mapping back) at batch 256 and 1, the median over rounds; and the network alone on
  one thread in CPU seconds (``time.process_time``), which other processes' load disturbs
  less, and the landmark stage the same way (``LandmarkDetector(threads=1)``). The 1-minute
  load average is recorded before and after.

With ``--update-cards`` (alone: from the committed result) the shipped int8 models' cards get
their measured metrics (``metrics``: both protocols' rows, the speed ratios, a headline).

Run: ``python benchmarks/bench/bench_quantize.py --pairs vanilla5=vanilla5-int8 tcnn68``
(writes benchmarks/results/quantize.json; ``--out NAME`` for another name; about 10 minutes on
a busy 2-core machine). README section ``bench:quantize`` (:func:`quantize_section`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bench.bench_aflw68 import score as score68
from benchmarks.tools.common import (
    RESULTS,
    landmark_detector,
    load_images,
    machine,
    pct,
    predict_all,
    write_result,
)
from tcnn.detect import box_map
from tcnn.metrics import nme, normalising_distance, summarise
from tcnn.registry import _session
from tcnn.schemes import FIVE, SIXTY_EIGHT
from tcnn.train.data.datasets import load_dataset
from tcnn.train.quantize import quantize_model
from tcnn.types import Box

ROUNDS = 7


def faces(name: str, detector: str) -> tuple[list[np.ndarray], list[Box], list[Any]]:
    """Images, boxes and samples of the faces ``detector`` finds in dataset ``name``."""
    found = [s for s in load_dataset(name, face_detector=detector) if s.box is not None]
    return load_images(found), [s.box for s in found if s.box is not None], found


def accuracy(spec: str, points: int) -> dict[str, Any]:
    """The accuracy rows of one model on its scheme's test sets."""
    lm, label = landmark_detector(spec, points=points)
    out: dict[str, Any] = {"method": label, "file_kb": round(lm.model.path.stat().st_size / 1024)}
    if points == 5:
        for key, detector in (
            ("mtfl_aflw_a_retinaface", "retinaface"),
            ("mtfl_aflw_b_hog", "dlib"),
        ):
            images, boxes, found = faces("mtfl-aflw", detector)
            gt = np.stack([s.landmarks for s in found])
            pred = predict_all(lm, images, boxes, detector)
            out[key] = {
                "faces": len(found),
                **summarise(nme(pred, gt, normalising_distance(gt, FIVE))),
            }
        return out
    for key, detector in (("aflw68_test_hog", "dlib"), ("aflw68_test_retinaface", "retinaface")):
        images, boxes, found = faces("aflw68-test", detector)
        gt = np.stack([s.landmarks for s in found])
        flags = np.stack([s.flags for s in found])
        groups = np.array([s.group for s in found])
        _, row = score68(predict_all(lm, images, boxes, detector), gt, flags, groups)
        out[key] = {k: v for k, v in row.items() if not isinstance(v, dict)}
    images, boxes, found = faces("ytf68-test", "dlib")
    gt = np.stack([s.landmarks for s in found])
    pred = predict_all(lm, images, boxes, "dlib")
    out["ytf68_test_hog"] = {
        "faces": len(found),
        **summarise(nme(pred, gt, normalising_distance(gt, SIXTY_EIGHT, "inter-ocular"))),
    }
    return out


def timed(fn: Callable[[], int], seconds: float, clock: Callable[[], float]) -> float:
    """Items per second of ``fn`` (returns its item count) run for about ``seconds``."""
    n, t0 = 0, clock()
    while clock() - t0 < seconds:
        n += fn()
    return n / (clock() - t0)


def speeds(specs: list[str], points: int) -> dict[str, dict[str, float]]:
    """Faces/s of each model, alternating round by round (see the module)."""
    detector = "retinaface"
    images, boxes, _ = faces("mtfl-aflw" if points == 5 else "aflw68-test", detector)
    images, boxes = images[:256], boxes[:256]
    runners: dict[str, dict[str, Callable[[], int]]] = {}
    for spec in specs:
        lm, label = landmark_detector(spec, points=points)
        single, _ = landmark_detector(spec, points=points, threads=1)
        mapping = box_map(detector, lm.model.card.detector)
        pairs = [(im, mapping(b) if mapping else b) for im, b in zip(images, boxes)]
        m = lm.model
        x = _crops(lm, pairs)
        one = _session(m.path, 1)
        name = m.session.get_inputs()[0].name
        runners[label] = {
            "network_batch256": lambda s=m.session, x=x, n=name: len(s.run(None, {n: x})[0]),
            "network_batch1": lambda s=m.session, x=x[:1], n=name: len(s.run(None, {n: x})[0]),
            "stage_batch256": lambda lm=lm, p=pairs: len(lm.landmarks_batch(p)),
            "stage_batch1": lambda lm=lm, p=pairs[:1]: len(lm.landmarks_batch(p)),
            "network_1thread_cpu_batch256": lambda s=one, x=x, n=name: len(s.run(None, {n: x})[0]),
            "stage_1thread_cpu_batch256": lambda lm=single, p=pairs: len(lm.landmarks_batch(p)),
        }
        for fn in runners[label].values():
            fn()  # warm up
    samples: dict[str, dict[str, list[float]]] = {k: {} for k in runners}
    for _ in range(ROUNDS):
        for label, fns in runners.items():
            for key, fn in fns.items():
                clock = time.process_time if "cpu" in key else time.perf_counter
                samples[label].setdefault(key, []).append(timed(fn, 0.4, clock))
    return {
        label: {k: round(statistics.median(v), 1) for k, v in rows.items()}
        for label, rows in samples.items()
    }


def _crops(lm: Any, pairs: list[tuple[np.ndarray, Box]]) -> np.ndarray:
    """The network input of ``(image, box)`` pairs, as ``LandmarkDetector`` cuts it."""
    m = lm.model
    rule = m.card.crop
    crops = lm._crops([(im, rule.region(b, im.shape)) for im, b in pairs])
    return np.asarray(m.network_input(crops))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", help="FLOAT=INT8 model pairs")
    ap.add_argument("--out", default="quantize", help="result name under benchmarks/results")
    ap.add_argument("--update-cards", action="store_true", help="write shipped int8 cards")
    args = ap.parse_args()
    if not args.pairs:
        if not args.update_cards:
            ap.error("give --pairs, or --update-cards")
        update_cards(json.loads((RESULTS / f"{args.out}.json").read_text()))
        return
    result: dict[str, Any] = {"pairs": []}
    tmp = tempfile.TemporaryDirectory()
    for pair in args.pairs:
        float_spec, _, int8_spec = pair.partition("=")
        if not int8_spec:
            int8_spec = str(Path(tmp.name) / f"{Path(float_spec).stem}-int8.onnx")
            quantize_model(float_spec, int8_spec, progress=False)
        lm, _ = landmark_detector(float_spec)
        points = lm.model.points
        made_here = int8_spec.startswith(tmp.name)
        row: dict[str, Any] = {
            "float": float_spec,
            "int8": "tcnn quantize (defaults), here" if made_here else int8_spec,
            "points": points,
        }
        row["loadavg_before"] = os.getloadavg()[0]
        row["speed"] = speeds([float_spec, int8_spec], points)
        row["loadavg_after"] = os.getloadavg()[0]
        f, q = row["speed"].values()
        row["int8_over_float"] = {k: round(q[k] / f[k], 3) for k in f}
        print(row["speed"], row["int8_over_float"])
        row["accuracy"] = [accuracy(float_spec, points), accuracy(int8_spec, points)]
        for key, v in row["accuracy"][1].items():
            if isinstance(v, dict):
                base = row["accuracy"][0][key]["mean"]
                print(f"  {key}: float {pct(base)} int8 {pct(v['mean'])}")
        result["pairs"].append(row)
    result["machine"] = machine()
    print(write_result(args.out, result))
    tmp.cleanup()
    if args.update_cards:
        update_cards(result)


def update_cards(result: dict[str, Any]) -> None:
    """Write each shipped int8 model's measured rows into its card's ``metrics``."""
    from tcnn.card import update_card
    from tcnn.registry import WEIGHTS

    for pair in result["pairs"]:
        path = WEIGHTS / f"{pair['int8']}.onnx"
        if not path.exists():
            continue
        ours, base = pair["accuracy"][1], pair["accuracy"][0]
        rows = {k: v for k, v in ours.items() if isinstance(v, dict)}
        first = next(iter(rows))
        gain = pair["int8_over_float"]["network_1thread_cpu_batch256"]
        headline = (
            f"{100 * rows[first]['mean']:.2f}% mean error ({WORDS[first]}; {base['method']} "
            f"{100 * base[first]['mean']:.2f}%), network {gain:.2f}x {base['method']}'s faces "
            "per CPU second (batch 256)"
        )
        rounded = {
            k: {m: round(x, 5) if isinstance(x, float) else x for m, x in v.items()}
            for k, v in rows.items()
        }
        card = update_card(
            path,
            metrics={
                "benchmark": "benchmarks/bench/bench_quantize.py (results/quantize.json)",
                "headline": headline,
                **rounded,
                "int8_over_float": pair["int8_over_float"],
                "file_kb": ours["file_kb"],
            },
        )
        print(f"{path}: {card.metrics['headline']}")


#: The accuracy columns of the README table: result key, heading.
COLUMNS = {
    5: (("mtfl_aflw_a_retinaface", "MTFL AFLW (a) RetinaFace"), ("mtfl_aflw_b_hog", "(b) HOG")),
    68: (
        ("aflw68_test_hog", "aflw68-test HOG"),
        ("aflw68_test_retinaface", "aflw68-test RetinaFace"),
        ("ytf68_test_hog", "ytf68 test HOG"),
    ),
}


#: Each accuracy key in words, for card headlines.
WORDS = {
    "mtfl_aflw_a_retinaface": "MTFL AFLW test, RetinaFace boxes",
    "mtfl_aflw_b_hog": "MTFL AFLW test, HOG boxes",
    "aflw68_test_hog": "aflw68-test, HOG boxes",
    "aflw68_test_retinaface": "aflw68-test, RetinaFace boxes",
    "ytf68_test_hog": "ytf68 test, HOG boxes",
}


def quantize_section(result: dict[str, Any]) -> str:
    """The README's ``bench:quantize`` section: one table per pair, float row then int8 row."""
    from benchmarks.tools.render_docs import measured

    out = []
    speed_cols = (
        ("network_batch256", "network b256"),
        ("stage_batch256", "stage b256"),
        ("network_batch1", "network b1"),
        ("stage_batch1", "stage b1"),
        ("network_1thread_cpu_batch256", "network, 1 thread, faces per CPU s"),
        ("stage_1thread_cpu_batch256", "stage, 1 thread, faces per CPU s"),
    )
    for pair in result["pairs"]:
        cols = COLUMNS[pair["points"]]
        head = ["model", *(h for _, h in cols), *(h for _, h in speed_cols), "file"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for acc, speed in zip(pair["accuracy"], pair["speed"].values()):
            cells = [acc["method"], *(f"{100 * acc[k]['mean']:.2f}%" for k, _ in cols)]
            cells += [f"{speed[k]:,.0f}" for k, _ in speed_cols]
            lines.append("| " + " | ".join([*cells, f"{acc['file_kb']} KB"]) + " |")
        ratio = pair["int8_over_float"]
        cells = ["int8 / float", *("" for _ in cols)]
        cells += [f"{ratio[k]:.2f}x" for k, _ in speed_cols]
        lines.append("| " + " | ".join([*cells, ""]) + " |")
        lines.append("")
        lines.append(
            f"{pair['float']} against {pair['int8']}: mean error (faces/s for speed), same "
            f"faces, same boxes, same run; 1-minute load average {pair['loadavg_before']:.1f} "
            f"before the speed rounds and {pair['loadavg_after']:.1f} after."
        )
        out.append("\n".join(lines))
    out.append(measured(result["machine"]))
    return "\n\n".join(out)


if __name__ == "__main__":
    main()
