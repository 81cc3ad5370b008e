"""CI: tcnn installed the way people install it, from its wheel, runs its default pipeline.

Builds the wheel from the working tree (tracked and untracked files git does not ignore,
copied to a temporary folder, so that no build/ folder is left in the tree), makes a fresh
virtual environment, removes the build tools a venv comes with (setuptools), installs the wheel
from binary wheels only and checks that neither torch nor setuptools is there. Then:

1. ``tcnn detect`` on a shared photo finds its faces (default model and detector);
2. with ``[serve]`` added, ``tcnn serve`` on a free loopback port answers ``/healthz`` (polled,
   with an overall deadline) and ``POST /v1/landmarks`` with the photo: 200 and its faces;
3. with ``[video]`` added, ``tcnn video`` on a 5-frame clip of the photo finds them in each;
4. with ``[batch]`` added, ``tcnn batch`` on the photo's folder exits 0 with faces found.

Needs the network only for the package registry (the wheels tcnn depends on). Standard
library only: it runs under any Python 3.10+.

    python3 .ci/wheel_check.py [--photo PATH] [--faces N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "multi_face.jpg"
FACES = 5  # multi_face.jpg: 5 faces (shared/data/photos/README.md)
DEADLINE_S = 300.0  # for the server to answer /healthz, on a loaded 2-core machine


def log(message: str) -> None:
    print(f"wheel-check: {message}", flush=True)


def sh(cmd: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure print the end of its output and stop."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:] + proc.stderr[-6000:])
        raise SystemExit(f"wheel-check: failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    return proc


def copy_tree(dest: Path) -> None:
    """The files git would commit (tracked, or untracked and not ignored) into ``dest``."""
    listed = sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    for name in filter(None, listed.stdout.split("\0")):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def build_wheel(work: Path) -> Path:
    tree, dist = work / "tree", work / "dist"
    copy_tree(tree)
    # -v: pip shows the build backend's output (its warnings) only when verbose.
    built = sh([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", dist, tree])
    noisy = [
        line
        for line in (built.stdout + built.stderr).splitlines()
        if "DeprecationWarning" in line or "BuildBackendWarning" in line
    ]
    if noisy:
        raise SystemExit("wheel-check: the build warns: " + " | ".join(noisy))
    (wheel,) = dist.glob("tcnn-*.whl")
    log(f"built {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB), no build warning")
    return wheel


def fresh_venv(work: Path) -> Path:
    venv = work / "venv"
    sh([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    # A venv of Python < 3.12 comes with setuptools: a user's install has no build tools.
    sh([python, "-m", "pip", "uninstall", "-y", "-q", "setuptools", "wheel"])
    return python


def pip_install(python: Path, requirement: str) -> None:
    start = time.monotonic()
    sh([python, "-m", "pip", "install", "-q", "--only-binary=:all:", requirement])
    log(f"pip install {Path(requirement).name} ({time.monotonic() - start:.0f} s)")


def check_environment(python: Path) -> None:
    probe = (
        "import importlib.util as u, json, tcnn; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "('torch', 'setuptools', 'cv2', 'retinaface')} | {'tcnn': tcnn.__file__}))"
    )
    found = json.loads(sh([python, "-c", probe], cwd=python.parent).stdout)
    if found["torch"] or found["setuptools"]:
        raise SystemExit(f"wheel-check: the fresh venv has torch or setuptools: {found}")
    if not found["tcnn"].startswith(str(python.parent.parent)):
        raise SystemExit(f"wheel-check: tcnn imported from {found['tcnn']}, not the venv")
    log(f"fresh venv: no torch, no setuptools; tcnn from the wheel ({found})")


def check_detect(tcnn: Path, photo: Path, faces: int, work: Path) -> None:
    out = work / "detect-out"
    sh([tcnn, "detect", photo, "-o", out, "-q"], cwd=work)
    data = json.loads((out / "landmarks.json").read_text())
    got = len(data["faces"])
    if got != faces or data["detector"] != "retinaface-int8" or data["failed"]:
        raise SystemExit(
            f"wheel-check: tcnn detect found {got} face(s) with {data['detector']}, want {faces} "
            f"with retinaface-int8 (the default models' detector): {data}"
        )
    log(f"tcnn detect {photo.name}: {got} faces, detector {data['detector']}")


def check_video(python: Path, photo: Path, faces: int, work: Path) -> None:
    """``tcnn video`` on a short clip of the photo (made with tcnn's own writer)."""
    clip, jsonl = work / "clip.mp4", work / "clip.jsonl"
    make = (
        "import sys, numpy as np; from PIL import Image; from tcnn.apps.video import VideoWriter\n"
        "rgb = np.asarray(Image.open(sys.argv[1]).convert('RGB'))\n"
        "w = VideoWriter(sys.argv[2], 10, (rgb.shape[1], rgb.shape[0]))\n"
        "for _ in range(5): w.write(rgb)\n"
        "w.close()\n"
    )
    sh([python, "-c", make, photo, clip], cwd=work)
    sh([python.parent / "tcnn", "video", clip, "--jsonl", jsonl, "-q"], cwd=work)
    frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
    counts = [len(f["faces"]) for f in frames]
    if len(frames) != 5 or counts != [faces] * 5:
        raise SystemExit(f"wheel-check: tcnn video: faces per frame {counts}, want 5 x {faces}")
    log(f"tcnn video: 5 frames, {faces} faces in each")


def check_batch(tcnn: Path, photos: Path, work: Path) -> None:
    """``tcnn batch`` on the shared photos folder: exit 0 (no input failed), faces found."""
    out = work / "batch-out"
    done = sh([tcnn, "batch", photos, "-o", out, "-q", "--workers", "1"], cwd=work)
    line = done.stdout.strip().splitlines()[-1]
    if ", 0 failed" not in line or ", 0 face(s)" in line:
        raise SystemExit(f"wheel-check: tcnn batch: {line}")
    log(f"tcnn batch {photos.name}/: {line}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(url: str, server: subprocess.Popen[bytes], log_file: Path) -> float:
    """Poll ``url`` until it answers 200, the server dies, or the deadline passes."""
    start = time.monotonic()
    while True:
        if server.poll() is not None:
            raise SystemExit(f"wheel-check: tcnn serve exited {server.returncode}: "
                             + log_file.read_text()[-4000:])  # fmt: skip
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        if time.monotonic() - start > DEADLINE_S:
            raise SystemExit(f"wheel-check: {url} not ready in {DEADLINE_S:.0f} s")
        time.sleep(0.2)


def post_photo(url: str, photo: Path) -> tuple[int, dict[str, object]]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{photo.name}"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {"error": exc.read().decode(errors="replace")}


def check_serve(tcnn: Path, photo: Path, faces: int, work: Path) -> None:
    port = free_port()
    log_file = work / "serve.log"
    with open(log_file, "wb") as sink:
        server = subprocess.Popen(
            [str(tcnn), "serve", "--port", str(port), "--workers", "1"],
            cwd=work,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        took = wait_until_ready(f"{base}/healthz", server, log_file)
        log(f"tcnn serve answered /healthz after {took:.1f} s")
        status, answer = post_photo(f"{base}/v1/landmarks", photo)
        got = len(answer.get("faces", []))  # type: ignore[arg-type]
        if status != 200 or got != faces:
            raise SystemExit(f"wheel-check: POST /v1/landmarks: {status}, {got} face(s): {answer}")
        log(f"POST /v1/landmarks {photo.name}: 200, {got} faces")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO, help="a photo with faces")
    parser.add_argument("--faces", type=int, default=FACES, help="the faces it has")
    args = parser.parse_args()
    if not args.photo.is_file():
        raise SystemExit(f"wheel-check: {args.photo}: no such photo (../shared beside the clone)")
    with tempfile.TemporaryDirectory(prefix="tcnn-wheel-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        python = fresh_venv(work)
        pip_install(python, str(wheel))
        check_environment(python)
        tcnn = python.parent / "tcnn"
        photo = args.photo.resolve()
        check_detect(tcnn, photo, args.faces, work)
        for extra in ("serve", "video", "batch"):  # each added to the same venv
            pip_install(python, f"{wheel}[{extra}]")
            check_environment(python)
            if extra == "serve":
                check_serve(tcnn, photo, args.faces, work)
            elif extra == "video":
                check_video(python, photo, args.faces, work)
            else:
                check_batch(tcnn, photo.parent, work)
    log("passed")


if __name__ == "__main__":
    main()
