// The page: send a photo to /v1/landmarks, draw the answer on a canvas, offer it as JSON.
// Plain browser JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS_5 = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#bf5af2"];
// What the page shows, for people and for tests: the answer to the current photo and
// settings (null while asking, or after an error), its text, its faces, the error if any,
// whether a request is under way, and which request (1, 2, ...: one per photo or setting).
window.tcnnState = {
  answer: null,
  text: null,
  faces: 0,
  error: null,
  pending: false,
  request: 0,
};

let models = [];
let photo = null; // the last photo: a Blob, re-sent when points, model or detector change
let bitmap = null;
let downloadUrl = null;
let asked = 0; // requests sent; only the latest one's reply is shown

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

async function loadModels() {
  try {
    const reply = await fetch("/v1/models");
    models = await reply.json();
  } catch (err) {
    setStatus("Could not list the models: " + err, true);
  }
  fillModels();
}

async function loadDetectors() {
  let detectors = [];
  try {
    detectors = await (await fetch("/v1/detectors")).json();
  } catch (err) {
    setStatus("Could not list the face detectors: " + err, true);
  }
  for (const d of detectors) {
    const option = new Option(d.available ? d.name : d.name + " (cannot run here)", d.name);
    option.disabled = !d.available;
    if (d.why_not) option.title = d.why_not;
    $("detector").add(option);
  }
}

function fillModels() {
  const points = Number($("points").value);
  const select = $("model");
  select.innerHTML = "";
  for (const m of models.filter((m) => m.points === points)) {
    const option = new Option(m.name + (m.default ? " (default)" : ""), m.name);
    option.selected = m.default;
    select.add(option);
  }
}

function query() {
  const params = new URLSearchParams({ points: $("points").value });
  if ($("model").value) params.set("model", $("model").value);
  if ($("detector").value) params.set("detector", $("detector").value);
  return "/v1/landmarks?" + params;
}

// Forget the shown answer: the photo alone on the canvas (blank if the browser cannot show
// it), no JSON, nothing to download.
function clearAnswer(error, pending) {
  window.tcnnState = {
    answer: null,
    text: null,
    faces: 0,
    error: error,
    pending: pending,
    request: asked,
  };
  $("canvas").dataset.faces = "0";
  $("json").textContent = "";
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = null;
  $("download").removeAttribute("href");
  $("download").classList.add("disabled");
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  if (bitmap) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    ctx.drawImage(bitmap, 0, 0);
  } else {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
  }
}

function fail(message) {
  clearAnswer(message, false);
  setStatus(message, true);
}

async function send() {
  if (!photo) return;
  const ticket = ++asked;
  clearAnswer(null, true);
  setStatus("Finding faces…");
  const form = new FormData();
  form.append("image", photo, photo.name || "photo.png");
  let reply, text;
  try {
    reply = await fetch(query(), { method: "POST", body: form });
    text = await reply.text();
  } catch (err) {
    if (ticket === asked) fail("The server did not answer: " + err);
    return;
  }
  if (ticket !== asked) return; // a newer request is under way; its reply will be shown
  let answer;
  try {
    answer = JSON.parse(text);
  } catch (err) {
    fail(`HTTP ${reply.status}: not JSON`);
    return;
  }
  if (!reply.ok) {
    fail(`HTTP ${reply.status}: ${answer.error}`);
    return;
  }
  show(answer, text);
}

function show(answer, text) {
  draw(answer);
  window.tcnnState = {
    answer: answer,
    text: text,
    faces: answer.faces.length,
    error: null,
    pending: false,
    request: asked,
  };
  $("canvas").dataset.faces = String(answer.faces.length);
  $("json").textContent = JSON.stringify(answer, null, 1);
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  $("download").href = downloadUrl;
  $("download").classList.remove("disabled");
  const t = answer.timings_ms;
  const n = answer.faces.length;
  setStatus(
    `${n} face${n === 1 ? "" : "s"}, ${answer.points} points (${answer.model}, ` +
      `detector ${answer.detector}); ${answer.image.width}x${answer.image.height}; ` +
      `decode ${t.decode} ms, landmarks ${t.landmarks} ms`
  );
}

function draw(answer) {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  canvas.width = answer.image.width;
  canvas.height = answer.image.height;
  if (bitmap) ctx.drawImage(bitmap, 0, 0);
  for (const face of answer.faces) {
    // Canvas and answer share one coordinate system: pixel i covers [i, i + 1).
    const [l, t, r, b] = face.box;
    const size = Math.max(r - l, b - t);
    const radius = Math.max(1.5, size / 60);
    ctx.lineWidth = Math.max(1, Math.round(size / 120));
    ctx.strokeStyle = "#00e5ff";
    ctx.strokeRect(l, t, r - l, b - t);
    face.landmarks.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.fillStyle = face.landmarks.length === 5 ? COLOURS_5[i] : "#ff3b30";
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = "#000";
      ctx.stroke();
    });
  }
}

let chosen = 0; // photos chosen; a later choice wins over one still being read

async function usePhoto(blob) {
  const mine = ++chosen;
  let shown = null;
  try {
    shown = await createImageBitmap(blob);
  } catch (err) {
    shown = null; // the browser cannot show it; the server may still read it
  }
  if (mine !== chosen) return;
  photo = blob;
  bitmap = shown;
  await send();
}

async function startWebcam() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser offers no webcam here (it needs https or localhost).", true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    $("video").srcObject = stream;
    $("video").hidden = false;
    $("snap").hidden = false;
  } catch (err) {
    setStatus("No webcam: " + err.message, true);
  }
}

function snap() {
  const video = $("video");
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  grab.toBlob((blob) => usePhoto(blob), "image/png");
}

$("file").addEventListener("change", (e) => e.target.files[0] && usePhoto(e.target.files[0]));
$("points").addEventListener("change", () => {
  fillModels();
  send();
});
$("model").addEventListener("change", send);
$("detector").addEventListener("change", send);
$("webcam").addEventListener("click", startWebcam);
$("snap").addEventListener("click", snap);
const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) usePhoto(e.dataTransfer.files[0]);
});
loadModels();
loadDetectors();
