// The page: send a photo to /v1/landmarks, draw the answer on a canvas, offer it as JSON.
// Plain browser JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS_5 = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#bf5af2"];
// What the page did last, for people and for tests: {answer, text, faces}.
window.tcnnState = { answer: null, text: null, faces: 0 };

let models = [];
let photo = null; // the last photo: a Blob, re-sent when points or model change
let bitmap = null;
let downloadUrl = null;

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
  return "/v1/landmarks?" + params;
}

async function send() {
  if (!photo) return;
  setStatus("Finding faces…");
  const form = new FormData();
  form.append("image", photo, photo.name || "photo.png");
  let reply, text;
  try {
    reply = await fetch(query(), { method: "POST", body: form });
    text = await reply.text();
  } catch (err) {
    setStatus("The server did not answer: " + err, true);
    return;
  }
  let answer;
  try {
    answer = JSON.parse(text);
  } catch (err) {
    setStatus(`HTTP ${reply.status}: not JSON`, true);
    return;
  }
  if (!reply.ok) {
    setStatus(`HTTP ${reply.status}: ${answer.error}`, true);
    return;
  }
  show(answer, text);
}

function show(answer, text) {
  draw(answer);
  window.tcnnState = { answer: answer, text: text, faces: answer.faces.length };
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

async function usePhoto(blob) {
  photo = blob;
  try {
    bitmap = await createImageBitmap(blob);
  } catch (err) {
    bitmap = null; // the browser cannot show it; the server may still read it
  }
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
