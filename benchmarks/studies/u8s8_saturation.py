"""Would the int8 landmark models saturate on x86 CPUs without VNNI? An emulation.

ONNX Runtime multiplies uint8 activations by int8 weights. On x86 CPUs with AVX2 but without
VNNI its kernels add each pair of neighbouring products in 16 bits with saturation (the
``vpmaddubsw`` instruction) before widening them to 32 bits, so a pair whose true sum lies
beyond -32,768..32,767 is clipped and the convolution's answer silently changes. With weights
within -64..64 no pair can exceed 2 x 255 x 64 = 32,640; with the full range (-127..127) two
large activations on two large weights of one sign can. VNNI CPUs (this host) add in 32 bits,
so the effect cannot be measured here: this study emulates it instead.

For each model, quantized here by :func:`tcnn.train.quantize.quantize_model` with full-range
weights (``weight_bits=8``) and with the default (``weight_bits=7``), into a temporary folder:
the uint8 input of every int8 convolution is read by running the model on real test crops
(the first 128 faces of the named dataset with the card's detector's boxes), and every output
value's products are summed in pairs of neighbouring input channels at the same kernel tap (the
order a channels-last im2col gives; ONNX Runtime's packing may pair other products, so this
measures how exposed a layer is, not an exact replica). Reported per convolution: the share of
pair sums beyond 16 bits, the share of output values with at least one such pair, and the
largest change of an output value that the clipping makes, over the mean absolute output value.

Run: ``python benchmarks/studies/u8s8_saturation.py`` (writes
benchmarks/results/u8s8_saturation.json; needs ``onnx`` and ``../shared/data``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a file (python benchmarks/.../x.py): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tools.common import machine, write_result

#: (float model, test dataset whose faces feed it).
MODELS = (("vanilla5", "mtfl-aflw"), ("tcnn68h", "aflw68-test"))
#: Faces run through each model.
FACES = 128
#: Output positions sampled per convolution (every output channel of each).
POSITIONS = 20000
INT16 = 32767


def conv_inputs(path: Path, data: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, uint8 input [N, C, H, W] padded, int8 weights [O, C, kh, kw])`` of every int8
    convolution of the QDQ model at ``path``, on the crops of ``data``'s first faces."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from tcnn.imaging import crop_batch, load_image
    from tcnn.registry import load_model
    from tcnn.train.data.datasets import load_dataset

    model = onnx.load(str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x, w = node.input[0], node.input[1]
        if made_by.get(x) is None or w not in made_by:
            continue
        if made_by[x].op_type != "DequantizeLinear":
            continue  # a float convolution
        pads = [list(a.ints) for a in node.attribute if a.name == "pads"]
        convs.append((node.name, made_by[x].input[0], weights[made_by[w].input[0]], pads))
    for _, tensor, _, _ in convs:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.UINT8, None)
        )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    loaded = load_model(str(path))
    card = loaded.card
    samples = load_dataset(data, face_detector=card.detector, progress=False)
    pairs = []
    for s in [s for s in samples if s.box is not None][:FACES]:
        image = load_image(s.path)
        pairs.append((image, card.crop.region(s.box, image.shape)))  # type: ignore[arg-type]
    x = loaded.network_input(crop_batch(pairs, card.input_size, card.crop.antialias))
    inputs = session.run([t for _, t, _, _ in convs], {session.get_inputs()[0].name: x})
    out = []
    for (name, _, w, pads), a in zip(convs, inputs):
        if pads and any(pads[0]):
            top, left, bottom, right = pads[0]
            a = np.pad(a, ((0, 0), (0, 0), (top, bottom), (left, right)))
        out.append((name, a, w))
    return out


def exposure(a: np.ndarray, w: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """Pair sums of one convolution (no stride, no dilation: tcnn's trunks) on sampled outputs."""
    n, _, height, width = a.shape
    out_c, _, kh, kw = w.shape
    oh, ow = height - kh + 1, width - kw + 1
    picks = rng.integers(0, [n, oh, ow], size=(min(POSITIONS, n * oh * ow), 3))
    # patches [P, kh, kw, C]: channels last, neighbouring channels paired at one tap
    patches = np.stack(
        [a[i, :, y : y + kh, x : x + kw].transpose(1, 2, 0) for i, y, x in picks]
    ).reshape(len(picks), -1)
    taps = w.transpose(0, 2, 3, 1).reshape(out_c, -1).astype(np.int64)
    if patches.shape[1] % 2:
        patches = np.pad(patches, ((0, 0), (0, 1)))
        taps = np.pad(taps, ((0, 0), (0, 1)))
    products = patches.astype(np.int64)[:, None, :] * taps[None]
    pairs = products[..., 0::2] + products[..., 1::2]
    over = np.abs(pairs) > INT16
    exact = products.sum(-1)
    clipped = np.clip(pairs, -INT16 - 1, INT16).sum(-1)
    return {
        "weights": [int(w.min()), int(w.max())],
        "activation_max": int(a.max()),
        "pairs_over": float(over.mean()),
        "outputs_touched": float(over.any(-1).mean()),
        "max_change": float(np.abs(clipped - exact).max() / (np.abs(exact).mean() + 1e-9)),
    }


def main() -> None:
    from tcnn.train.quantize import quantize_model

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, data in MODELS:
            for bits in (8, 7):
                path = Path(tmp) / f"{model}-w{bits}.onnx"
                quantize_model(model, path, progress=False, weight_bits=bits)
                for name, a, w in conv_inputs(path, data):
                    row = {"model": model, "data": data, "weight_bits": bits, "conv": name}
                    rows.append({**row, **exposure(a, w, rng)})
                    print(rows[-1])
    print(write_result("u8s8_saturation", {"faces": FACES, "rows": rows, "machine": machine()}))


def u8s8_saturation_section(result: dict[str, Any]) -> str:
    """The ``bench:u8s8_saturation`` section: one row per model, weight range and convolution."""
    from benchmarks.tools.render_docs import measured

    lines = [
        "| model | weights | convolution | pair sums beyond 16 bits | outputs touched "
        "| largest change / mean output |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        low, high = r["weights"]
        lines.append(
            f"| {r['model']} | {low}..{high} | `{r['conv']}` | {100 * r['pairs_over']:.4f}% "
            f"| {100 * r['outputs_touched']:.3f}% | {r['max_change']:.2f} |"
        )
    lines += [
        "",
        f"The first {result['faces']} test faces of each model's dataset (vanilla5: MTFL AFLW, "
        "tcnn68h: aflw68's held-out part) with its card's detector's boxes; pairs of "
        f"neighbouring input channels at one kernel tap. {measured(result['machine'])}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
