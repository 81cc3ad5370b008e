"""Measure each shipped model's ``box_from_landmarks`` on its training faces; write its card.

The relation is the median ``(dx, dy, size)`` of the card's detector's boxes to the landmarks
(:func:`tcnn.train.data.samples.box_relation`) over the faces of the model's TRAINING set that the
detector finds (never test faces), with the dataset's detector settings. Only the card changes
(the ONNX metadata and the ``.json`` beside it); the graph and weights stay as they are.

Run: ``python benchmarks/studies/box_relation.py`` (``--dry-run`` prints without writing). The
detections are cached (``$TCNN_CACHE``), so a second run takes seconds.
"""

from __future__ import annotations

import argparse

from tcnn.card import ModelCard, read_card, update_card
from tcnn.registry import WEIGHTS
from tcnn.train.data.datasets import DATASETS, load_dataset
from tcnn.train.data.samples import box_relation


def current_format(card: ModelCard) -> dict[str, object]:
    """Card fields renamed since the shipped cards were written (``act`` -> ``activation``)."""
    arch = {("activation" if k == "act" else k): v for k, v in card.architecture.items()}
    return {"architecture": arch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="data folder (default $TCNN_DATA or ../shared/data)")
    parser.add_argument("--dry-run", action="store_true", help="print, write nothing")
    args = parser.parse_args()
    relations: dict[tuple[str, str], tuple[float, float, float]] = {}
    for path in sorted(WEIGHTS.glob("*.onnx")):
        card = read_card(path)
        data = card.training["data"]
        key = (data, card.detector)
        if key not in relations:
            samples = load_dataset(data, args.root, card.detector)
            relations[key] = box_relation(samples)
            found = sum(s.box is not None for s in samples)
            print(
                f"{data} ({card.detector}, upsample {DATASETS[data].upsample}): "
                f"{found} of {len(samples)} training faces found"
            )
        print(f"{path.name}: box_from_landmarks = {relations[key]}")
        if not args.dry_run:
            update_card(path, box_from_landmarks=relations[key], **current_format(card))


if __name__ == "__main__":
    main()
