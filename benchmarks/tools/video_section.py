"""docs/video.md's video table, from ``results/video.json`` (written by ``bench_video.py``)."""

from __future__ import annotations

from typing import Any


def _clips(acc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for name, c in acc.items() if name.split("/")[0] == kind]


def _moving(acc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, c) for n, c in acc.items() if n.split("/")[0] not in ("still", "crossing")]


def _column(r: dict[str, Any]) -> dict[str, str]:
    acc, speed = r["accuracy"], r["throughput_640x480"]
    still = _clips(acc, "still")
    moving = _moving(acc)

    def mean(clips: list[dict[str, Any]], run: str, key: str) -> float:
        return sum(c[run][key] for c in clips) / len(clips)

    def runs(clips: list[dict[str, Any]], key: str) -> str:
        return " / ".join(f"{mean(clips, run, key):.2f}" for run in ("raw", "tracked", "smoothed"))

    def slip(c: dict[str, Any], key: str = "error_pct") -> float:
        return float(c["smoothed"][key] - c["raw"][key])

    jit = runs(still, "jitter_pct")
    cut = ", ".join(f"{c['raw']['jitter_pct'] / c['smoothed']['jitter_pct']:.1f}x" for c in still)
    err = runs([c for _, c in moving], "error_pct")
    cost = max(c["smoothed"]["error_pct"] - c["tracked"]["error_pct"] for _, c in moving)
    worst_name, worst = max(moving, key=lambda nc: slip(nc[1]))
    lag_s = max(c["smoothed"]["lag_frames"] for _, c in moving)
    lag_t = max(c["tracked"]["lag_frames"] for _, c in moving)
    ids = ", ".join(str(c["ids"]["id_switches"]) for c in _clips(acc, "crossing"))
    out = {}
    if all("error_common_pct" in c["raw"] for _, c in moving):  # results since the box relation

        def common(c: dict[str, Any]) -> float:
            return slip(c, "error_common_pct")

        name, c = max(moving, key=lambda nc: common(nc[1]))
        out["worst_common"] = f"{common(c):+.2f}% ({name})"
        crossing = _clips(acc, "crossing")
        out["crossing"] = ", ".join(f"{common(c):+.2f}%" for c in crossing)
    return out | {
        "jitter": f"{jit}%",
        "cut": cut,
        "error": f"{err}%",
        "cost": f"{cost:+.2f}%",
        "worst": f"{slip(worst):+.2f}% ({worst_name})",
        "lag": f"<= {lag_s:.2f} ({lag_t:.2f}) frames",
        "ids": ids,
        "fps": f"{speed['tracked']['fps']:.0f} ({speed['raw_pipeline']['fps']:.0f})",
        "fps_io": f"{speed['tracked_decode_draw']['fps']:.0f} "
        f"({speed['raw_pipeline_decode_draw']['fps']:.0f})",
    }


ROWS = [
    ("jitter, still face (raw / tracked / smoothed), mean of the faces", "jitter", ""),
    ("jitter cut by smoothing, vs raw, per face", "cut", ">= 3x"),
    ("mean error on the moving videos (raw / tracked / smoothed)", "error", ""),
    ("worst cost of smoothing (smoothed - tracked, one video)", "cost", ""),
    ("worst smoothed - raw (one video)", "worst", "<= 0.5%"),
    ("worst smoothed - raw, on the frames raw found the face", "worst_common", "<= 0.5%"),
    ("lag at speed, smoothed (tracked)", "lag", ""),
    ("smoothed - raw on the two crossing videos, frames raw found the face", "crossing", ""),
    ("id switches, two crossing videos", "ids", "0"),
    ("frames/s, tracked (raw pipeline), landmarks only", "fps", "150, 100"),
    ("frames/s with decoding and drawing", "fps_io", ""),
]


def video_section(result: dict[str, Any]) -> str:
    """The table comparing raw, tracked and smoothed landmarks for 5 and 68 points."""
    five, sixty_eight = _column(result["5pt"]), _column(result["68pt"])
    lines = ["| | 5 points | 68 points | target |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {label} | {five[k]} | {sixty_eight[k]} | {t} |"
        for label, k, t in ROWS
        if k in five and k in sixty_eight
    ]
    load = result.get("load_before", ["?"])[0]
    m = result.get("machine", {})
    lines += [
        "",
        f"{result.get('frames', '?')} frames a clip; errors in % of the eye distance. Measured "
        f"{m.get('date', '')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores), load average "
        f"{load} before the run, tcnn {m.get('tcnn_commit', '?')}.",
    ]
    return "\n".join(lines)
