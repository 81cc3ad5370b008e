"""The web service: answers, every limit and bad input of issue 11, metrics, the schema."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from serve_live import live_server
from tcnn.apps.serve import COORDINATES, ServeConfig, create_app
from tcnn.apps.serve.engine import Slot
from tcnn.predictor import LandmarkDetector
from tcnn.registry import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
LIMITS = ServeConfig(max_upload_mb=1.0, max_pixels=4_000_000, threads=2, queue=2)


def _png(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width x height`` black pixels: tiny on disk, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\0" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    block = row * 256
    idat = b"".join(z.compress(block) for _ in range(height // 256)) + z.compress(
        row * (height % 256)
    )
    idat += z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(LIMITS)) as c:
        yield c


@pytest.fixture(scope="module")
def photo(astronaut: np.ndarray) -> bytes:
    return _png(astronaut)


def post(client: TestClient, data: bytes, query: str = "", path: str = "/v1/landmarks"):  # type: ignore[no-untyped-def]
    return client.post(f"{path}?{query}", files={"image": ("photo.png", data, "image/png")})


def same(a: dict, b: dict) -> bool:  # type: ignore[type-arg]
    """Two answers equal but for their timings."""
    return {**a, "timings_ms": None} == {**b, "timings_ms": None}


@pytest.mark.slow
def test_landmarks_match_the_library(
    client: TestClient, photo: bytes, astronaut: np.ndarray
) -> None:
    r = post(client, photo)
    assert r.status_code == 200, r.text
    answer = r.json()
    expected = [f.to_dict() for f in LandmarkDetector().detect(astronaut)]
    assert [{k: v for k, v in f.items() if k != "face"} for f in answer["faces"]] == expected
    assert len(expected) == 1 and answer["faces"][0]["face"] == 0
    assert answer["image"] == {"width": 512, "height": 512}
    assert answer["coordinates"] == COORDINATES and "[i, i+1)" in COORDINATES
    assert (answer["model"], answer["points"]) == (DEFAULTS[5], 5)
    assert answer["detector"] == "retinaface-int8"  # the default model's card names it
    assert set(answer["timings_ms"]) == {"decode", "landmarks"}


def test_json_base64_body_gives_the_same_answer(client: TestClient, photo: bytes) -> None:
    a = post(client, photo).json()
    b64 = base64.b64encode(photo).decode()
    b = client.post("/v1/landmarks", json={"image": b64}).json()
    c = client.post("/v1/landmarks", json={"image": f"data:image/png;base64,{b64}"}).json()
    assert same(a, b) and same(a, c)


def test_68_points_other_model_and_formats(client: TestClient, astronaut: np.ndarray) -> None:
    a = post(client, _png(astronaut), "points=68").json()
    assert (
        a["points"] == 68 and a["model"] == DEFAULTS[68] and len(a["faces"][0]["landmarks"]) == 68
    )
    for fmt in ("JPEG", "WEBP", "BMP", "TIFF"):
        r = post(client, _png(astronaut, fmt), "model=vanilla5-fast")
        assert r.status_code == 200 and len(r.json()["faces"]) == 1, (fmt, r.text)


def test_given_boxes_skip_detection(client: TestClient, photo: bytes) -> None:
    r = post(client, photo, "boxes=[[150, 40, 290, 180], [0, 0, 100, 100]]")
    faces = r.json()["faces"]
    assert r.json()["detector"] is None
    assert [f["box"] for f in faces] == [[150, 40, 290, 180], [0, 0, 100, 100]]
    assert all(f["score"] is None for f in faces)


def test_draw_returns_the_annotated_png(
    client: TestClient, photo: bytes, astronaut: np.ndarray
) -> None:
    r = post(client, photo, "draw=true")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert drawn.shape == astronaut.shape and (drawn != astronaut).any()


def test_align_zip_and_json(client: TestClient, photo: bytes) -> None:
    r = post(client, photo, "size=96", "/v1/align")
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert sorted(z.namelist()) == ["face_00.png", "landmarks.json"]
        assert Image.open(io.BytesIO(z.read("face_00.png"))).size == (96, 96)
        assert json.loads(z.read("landmarks.json"))["size"] == 96
    j = post(client, photo, "format=json&margin=0.1", "/v1/align").json()
    crop = Image.open(io.BytesIO(base64.b64decode(j["faces"][0]["png"])))
    assert crop.size == (112, 112) and j["margin"] == 0.1 and len(j["template"]) == 5


def test_models_health_and_metrics(client: TestClient, photo: bytes) -> None:
    models = client.get("/v1/models").json()
    assert {m["name"] for m in models} >= {"vanilla5", "vanilla68"}
    assert all(m["card"]["points"] == m["points"] for m in models)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and f"{DEFAULTS[5]}/retinaface-int8" in health["loaded"]

    def faces_total() -> float:
        text = client.get("/metrics").text
        return float(
            next(ln.split()[1] for ln in text.splitlines() if ln.startswith("tcnn_faces_total"))
        )

    before = faces_total()
    post(client, photo)
    text = client.get("/metrics").text
    assert faces_total() == before + 1
    assert 'tcnn_http_requests_total{route="/v1/landmarks",method="POST",status="200"}' in text
    assert 'tcnn_http_request_duration_seconds_bucket{route="/v1/landmarks",le="+Inf"}' in text
    assert "# TYPE tcnn_http_request_duration_seconds histogram" in text


@pytest.mark.parametrize(
    ("query", "status", "cause"),
    [
        ("points=7", 422, "points"),
        ("points=68&model=vanilla5", 422, "vanilla5 has 5 points"),
        ("model=../../etc/passwd", 422, "unknown"),
        ("detector=haar", 422, "detector: unknown face detector 'haar'"),
        ("boxes=[1,2,3,4]", 422, "boxes"),
        ("boxes=[[1,2,3]]", 422, "not 4 numbers"),
        ("boxes=[[1,2,3,%22a%22]]", 422, "not 4 numbers"),
        ("boxes=nope", 422, "not valid JSON"),
        ("boxes=[[5000,5000,5100,5100]]", 422, "outside the 512x512 image"),
        ("boxes=[[10,10,5,5]]", 422, "zero size"),
        ("size=5", 422, "size"),
    ],
)
def test_bad_parameters(
    client: TestClient, photo: bytes, query: str, status: int, cause: str
) -> None:
    path = "/v1/align" if query.startswith("size") else "/v1/landmarks"
    r = post(client, photo, query, path)
    assert r.status_code == status, r.text
    assert cause in r.json()["error"]


@pytest.mark.slow
def test_bad_uploads(client: TestClient, photo: bytes, astronaut: np.ndarray) -> None:
    cases = [
        (post(client, b"not an image at all"), 400, "not an image"),
        (post(client, b""), 400, "empty"),
        (post(client, photo[: len(photo) // 2]), 400, "truncated"),
        (post(client, _png(astronaut, "GIF")), 415, "GIF"),
        (
            client.post("/v1/landmarks", content=b"x", headers={"content-type": "text/plain"}),
            415,
            "text/plain",
        ),
        (client.post("/v1/landmarks", files={"photo": ("a.png", photo)}), 422, "'image'"),
        (client.post("/v1/landmarks", data={"image": "text"}, files={"x": b"1"}), 422, "'image'"),
        (client.post("/v1/landmarks", data={"image": "text"}), 415, "x-www-form-urlencoded"),
        (client.post("/v1/landmarks", json={"image": "%%%"}), 400, "base64"),
        (client.post("/v1/landmarks", json={"picture": "AAAA"}), 422, "JSON body"),
        (client.post("/v1/landmarks", json={"image": 5}), 422, "base64 string"),
        (
            client.post(
                "/v1/landmarks", content=b"{", headers={"content-type": "application/json"}
            ),
            400,
            "JSON",
        ),
    ]
    for r, status, cause in cases:
        assert r.status_code == status, (cause, r.text)
        assert cause in r.json()["error"], r.text


def test_oversize_upload_413_names_the_limit_in_the_options_units(client: TestClient) -> None:
    big = b"\0" * (LIMITS.max_body_bytes + 1)
    r = post(client, big)
    assert r.status_code == 413
    assert r.json() == {
        "error": "request body: 1.399 MB is over the 1.3989 MB that --max-upload-mb 1 allows "
        "(room for base64 in JSON)"
    }
    # A body under the body limit but an image over the upload limit (base64 allows 4/3).
    r = client.post("/v1/landmarks", json={"image": base64.b64encode(b"\0" * 1_040_000).decode()})
    assert r.status_code == 413
    assert r.json() == {"error": "image: 1.04 MB is over the limit of --max-upload-mb 1"}
    # Just over: enough digits to tell the size from the limit.
    r = client.post("/v1/landmarks", json={"image": base64.b64encode(b"\0" * 1_000_001).decode()})
    assert r.json() == {"error": "image: 1.000001 MB is over the limit of --max-upload-mb 1"}


@pytest.mark.slow
def test_decompression_bombs_413_with_bounded_memory(tmp_path: Path) -> None:
    """In a fresh process, so that its peak memory measures these requests alone."""
    (tmp_path / "huge.png").write_bytes(png_bomb(30000, 30000))  # PIL's own bomb limit
    (tmp_path / "big.png").write_bytes(png_bomb(3000, 3000))  # over max_pixels only
    assert (tmp_path / "huge.png").stat().st_size < 200_000
    code = f"""
import json, resource, sys
from pathlib import Path
from fastapi.testclient import TestClient
from tcnn.apps.serve import ServeConfig, create_app
with TestClient(create_app(ServeConfig(max_pixels=4_000_000, threads=1, preload=False))) as c:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = []
    for name in ("huge.png", "big.png"):
        r = c.post("/v1/landmarks", files={{"image": Path({str(tmp_path)!r}, name).read_bytes()}})
        out.append([r.status_code, r.json()["error"]])
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({{"answers": out, "grew_kb": grew}}))
"""
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    (s1, e1), (s2, e2) = report["answers"]
    assert s1 == 413 and e1 == "image: 900000000 pixels, over the limit of --max-pixels 4000000"
    assert s2 == 413
    assert e2 == "image: 3000x3000 is 9000000 pixels, over the limit of --max-pixels 4000000"
    assert report["grew_kb"] < 50_000  # decoding either would take over 100 MB


def test_the_readme_quotes_the_limit_messages() -> None:
    from tcnn.apps.serve.engine import ApiError, decode_image

    readme = " ".join((ROOT / "docs" / "serve.md").read_text().split())
    with pytest.raises(ApiError) as refused:
        decode_image(png_bomb(9000, 6000), 40_000_000)
    assert refused.value.status == 413 and f"`{refused.value.message}`" in readme
    cfg = ServeConfig(max_upload_mb=10, threads=1, preload=False)
    with TestClient(create_app(cfg)) as c:
        r = post(c, b"\0" * 12_500_000)
    assert r.status_code == 413 and f"`{r.json()['error']}`" in readme


def _fill(c: TestClient, places: int) -> list[Slot]:
    """Take ``places`` places in the pool, as requests still uploading hold them."""
    engine = c.app.state.engine  # type: ignore[attr-defined]
    slots = [engine.admit() for _ in range(places)]
    assert engine.busy == places
    return slots


def test_saturated_pool_answers_503_with_retry_after(photo: bytes) -> None:
    cfg = ServeConfig(threads=1, queue=1, preload=False)
    with TestClient(create_app(cfg)) as c:
        slots = _fill(c, 2)  # one for the thread, one waiting: the queue is full
        r = post(c, photo)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json() == {
            "error": "busy: 1 requests waiting for 1 inference threads, the limit of --queue 1; "
            "retry after 1 s"
        }
        for slot in slots:
            slot.release()
        assert c.app.state.engine.busy == 0  # type: ignore[attr-defined]
        assert post(c, photo).status_code == 200
        assert "tcnn_rejected_total 1" in c.get("/metrics").text


def test_default_queue_is_16_a_core(photo: bytes) -> None:
    """The default lets 16 requests per core wait in each worker, then refuses."""
    queue = 16 * (os.cpu_count() or 1)
    with TestClient(create_app(ServeConfig(threads=2, preload=False))) as c:
        health = c.get("/healthz").json()
        assert (health["threads"], health["queue"], health["queue_limit"]) == (2, queue, queue)
        assert health["max_wait_ms"] == 0
        slots = _fill(c, 2 + queue)
        r = post(c, photo)
        assert r.status_code == 503
        assert f"{queue} requests waiting for 2 inference threads" in r.json()["error"]
        slots.pop().release()
        assert post(c, photo).status_code == 200  # a place came free
        for slot in slots:
            slot.release()


def test_queue_bound_can_come_from_a_wait_limit(photo: bytes) -> None:
    cfg = ServeConfig(threads=2, queue=32, max_wait_ms=150, preload=False)
    with TestClient(create_app(cfg)) as c:
        engine = c.app.state.engine  # type: ignore[attr-defined]
        assert engine.queue_limit == 32  # nothing timed yet: only --queue bounds it
        engine._times.extend([0.1] * 10)  # 100 ms a job: 2 threads finish 3 in 150 ms
        health = c.get("/healthz").json()
        assert (health["queue_limit"], health["service_ms"], health["max_wait_ms"]) == (3, 100, 150)
        assert "tcnn_queue_limit 3" in c.get("/metrics").text
        slots = _fill(c, 5)  # 2 for the threads, 3 waiting
        r = post(c, photo)
        assert r.status_code == 503
        assert "the limit of --max-wait-ms 150 at 100 ms a request (3 waiting" in r.json()["error"]
        assert r.headers["retry-after"] == "1"  # 3 jobs x 100 ms / 2 threads: under 1 s
        for slot in slots:
            slot.release()


def test_a_request_that_waited_too_long_is_refused_not_run() -> None:
    from tcnn.apps.serve.engine import ApiError, Engine

    engine = Engine(threads=1, max_wait_ms=50)
    ran = []
    engine.busy = 3  # this job and two more behind it on one thread
    with pytest.raises(ApiError) as refused:
        engine._timed(time.perf_counter() - 0.2, ran.append, 1)  # queued 200 ms ago
    assert refused.value.status == 503 and "waited 200 ms" in refused.value.message
    assert refused.value.headers["Retry-After"] == "1" and ran == [] and engine.rejected == 1
    engine.busy = 1  # nothing waits behind it: a late job still runs (a slow machine, not a queue)
    assert engine._timed(time.perf_counter() - 0.2, ran.append, 2) is None and ran == [2]
    assert engine._timed(time.perf_counter(), ran.append, 3) is None and ran == [2, 3]
    assert engine.rejected == 1
    assert engine.service_ms is not None  # the job that ran was timed
    engine.close()


@pytest.mark.slow
def test_eight_naive_clients_at_once_all_get_200(photo: bytes) -> None:
    """Out of the box (2 threads here), 8 clients sending at the same moment with no retry
    logic all get answers, however slow the machine: they wait, they are not refused."""
    import httpx

    app = create_app(ServeConfig(threads=2))
    engine = app.state.engine
    start = threading.Barrier(8)

    def client(_: int) -> list[int]:
        with httpx.Client(base_url=url, timeout=300) as http:
            start.wait(timeout=300)
            return [
                http.post("/v1/landmarks", files={"image": photo}).status_code for _ in range(3)
            ]

    with live_server(app) as url, ThreadPoolExecutor(8) as clients:
        codes = [code for codes in clients.map(client, range(8)) for code in codes]
        assert codes == [200] * 24
        assert engine.wait_idle(timeout=60) and engine.rejected == 0
        assert "tcnn_rejected_total 0" in httpx.get(f"{url}/metrics").text
        assert httpx.get(f"{url}/healthz").json()["service_ms"] > 0


def test_a_full_queue_refuses_before_reading_the_upload() -> None:
    """Memory stays bounded under any load: beyond threads + queue, a request gets 503 (with
    Retry-After, as JSON) although not one byte of its body was sent."""
    app = create_app(ServeConfig(threads=1, queue=1, preload=False))
    engine = app.state.engine
    with live_server(app) as url:
        slots = [engine.admit() for _ in range(2)]
        s = _raw(
            url,
            b"POST /v1/landmarks HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"multipart/form-data; boundary=b\r\nContent-Length: 900000\r\n\r\n",
        )
        head, _, body = _reply(s)
        s.close()
        assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
        assert json.loads(body)["error"].startswith("busy: 1 requests waiting")
        for slot in slots:
            slot.release()


def test_internal_errors_reach_no_client_as_tracebacks(
    photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(ServeConfig(threads=1, preload=False))

    def broken(choice: object) -> None:
        raise RuntimeError("secret internals")

    app.state.engine.detector = broken
    with TestClient(app, raise_server_exceptions=False) as c:
        r = post(c, photo)
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (the server log has the details)"}
    assert "RuntimeError: secret internals" in caplog.text  # the log says what happened
    with TestClient(app) as c:
        post(c, b"plain text")
    assert "400 POST /v1/landmarks: image: not an image file" in caplog.text


@pytest.mark.slow
def test_a_thousand_bad_requests_then_a_good_one(client: TestClient, photo: bytes) -> None:
    bad = [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", photo[:100]]
    codes = {post(client, bad[i % 4]).status_code for i in range(1000)}
    assert codes == {400}
    assert post(client, photo).status_code == 200
    assert client.get("/healthz").json()["busy"] == 0


def _raw(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=120)
    s.sendall(head + body)
    return s


def _reply(s: socket.socket) -> tuple[bytes, bytes, bytes]:
    """One HTTP reply read from ``s``: its head, the separator and its body (by its length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            ln.split(b":")[1]
            for ln in head.lower().split(b"\r\n")
            if ln.startswith(b"content-length:")
        )
    )
    while len(body) < length:
        chunk = s.recv(4096)
        assert chunk, body
        body += chunk
    return head, sep, body


@pytest.mark.slow
def test_live_server_refuses_early_and_survives_hang_ups(photo: bytes) -> None:
    app = create_app(LIMITS)
    metrics, observed, statuses = app.state.metrics, threading.Condition(), []
    record = metrics.observe

    def observe(route: str, method: str, status: int, seconds: float) -> None:
        record(route, method, status, seconds)
        with observed:
            statuses.append(status)
            observed.notify_all()

    metrics.observe = observe  # every answer the server ends
    with live_server(app) as url:
        # Content-Length over the limit: 413 comes back although no body byte was sent.
        s = _raw(
            url,
            b"POST /v1/landmarks HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\r\n",
        )
        assert _reply(s)[0].startswith(b"HTTP/1.1 413")
        s.close()
        # Chunked, no length: 413 once the streamed bytes pass the limit, the rest never sent.
        s = _raw(
            url,
            b"POST /v1/landmarks HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        piece = b"A" * 65536
        for _ in range(LIMITS.max_body_bytes // len(piece) + 2):
            s.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
        assert _reply(s)[0].startswith(b"HTTP/1.1 413")
        s.close()
        # Clients that hang up mid-upload: each ends as 499 (or 503 while the others hold
        # every place); the server has ended them all before the next request.
        for _ in range(20):
            s = _raw(
                url,
                b"POST /v1/landmarks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: 900000\r\n\r\n",
                b'{"image": "AAAA',
            )
            s.close()
        with observed:
            assert observed.wait_for(lambda: len(statuses) == 22, timeout=300), statuses
        assert statuses.count(413) == 2 and set(statuses) <= {413, 499, 503}, statuses
        import httpx

        r = httpx.post(f"{url}/v1/landmarks", files={"image": photo}, timeout=300)
        assert r.status_code == 200 and len(r.json()["faces"]) == 1
        assert httpx.get(f"{url}/healthz").json()["busy"] == 0


@pytest.mark.slow
def test_detectors_say_which_run_here(photo: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's detector choice lists every detector; one that cannot run (dlib missing,
    here made so) is listed with the reason, and asking for it gets 422 naming it."""
    from tcnn.detect import DETECTORS

    with TestClient(create_app(ServeConfig(threads=1, preload=False))) as c:
        listed = c.get("/v1/detectors").json()
        assert [d["name"] for d in listed] == list(DETECTORS)
        assert listed[0] == {"name": "retinaface", "available": True, "why_not": None}
        r = post(c, photo, "detector=retinaface&model=vanilla5")
        assert r.status_code == 200 and r.json()["detector"] == "retinaface"
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now fails
    with TestClient(create_app(ServeConfig(threads=1, preload=False))) as c:
        listed = {d["name"]: d for d in c.get("/v1/detectors").json()}
        assert not listed["dlib"]["available"] and "dlib-bin" in listed["dlib"]["why_not"]
        assert listed["retinaface"]["available"]
        r = post(c, photo, "detector=dlib")
        assert r.status_code == 422
        assert r.json()["error"].startswith("detector: dlib cannot run on this server (")
        assert "dlib-bin" in r.json()["error"]


def test_every_error_has_one_json_format(client: TestClient) -> None:
    """Whatever refuses it (route, method, middleware, validation, the handler), an error is
    ``{"error": "<one line>"}`` as application/json, in one serialisation."""
    answers = [
        (client.get("/nope"), 404, "GET /nope: no such route"),
        (client.get("/static/nope.js"), 404, "GET /static/nope.js: no such route or file"),
        (client.get("/v1/landmarks"), 405, "GET /v1/landmarks: method not allowed (allowed: POST)"),
        (client.post("/v1/align?size=abc", json={}), 422, "size: Input should be a valid integer"),
        (client.post("/v1/landmarks", content=b"x" * 2_000_000), 413, "--max-upload-mb 1"),
        (
            client.post("/v1/landmarks", content=b"{}", headers={"content-length": "zz"}),
            400,
            "Content-Length 'zz' is not a number",
        ),
        (post(client, b"GIF89a"), 400, "not an image"),
    ]
    for r, status, cause in answers:
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json", r.headers
        error = r.json()["error"]
        assert list(r.json()) == ["error"] and cause in error and "\n" not in error, r.text
        assert r.content == json.dumps(r.json(), separators=(",", ":")).encode()


def test_openapi_schema_is_committed() -> None:
    committed = json.loads((ROOT / "src/tcnn/apps/serve/openapi.json").read_text())
    app = create_app(ServeConfig(preload=False))
    assert app.openapi() == committed, (
        "the API changed: tcnn serve --openapi > src/tcnn/apps/serve/openapi.json"
    )
    with TestClient(app) as c:
        assert c.get("/openapi.json").json() == committed


def test_page_is_served_with_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    for text in (
        page.text,
        client.get("/static/app.js").text,
        client.get("/static/style.css").text,
    ):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_cli_serve_defaults_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from tcnn.apps.cli import build_parser, main

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers, args.max_upload_mb, args.max_pixels) == (
        "127.0.0.1",
        8000,
        1,
        10.0,
        40e6,
    )
    assert (args.threads, args.queue, args.max_wait_ms) == (None, None, 0.0)
    assert ServeConfig().queue is None and ServeConfig().max_wait_ms == 0  # 16 a core, no wait
    assert main(["serve", "--openapi"]) == 0
    assert json.loads(capsys.readouterr().out)["paths"].keys() >= {"/v1/landmarks", "/v1/align"}


@pytest.mark.parametrize(
    ("argv", "cause"),
    [
        (["--workers", "0"], "--workers 0"),
        (["--max-upload-mb", "0"], "must be positive"),
        (["--queue", "-1"], "queue -1"),
        (["--max-wait-ms", "-1"], "max wait -1"),
    ],
)
def test_cli_serve_bad_settings(
    argv: list[str], cause: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcnn.apps.cli import main

    assert main(["serve", *argv, "--openapi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tcnn: error: ") and cause in err and "Traceback" not in err
