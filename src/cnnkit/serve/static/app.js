// cnnkit demo page: draw or upload an image, show the run's top-k classes and Grad-CAM.
// Plain JavaScript, no libraries and nothing fetched from elsewhere: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let busy = false;
let pending = null; // the latest image waiting while a prediction is in flight

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function percent(p) {
  return (p * 100).toFixed(1) + "%";
}

// -- the run -------------------------------------------------------------------------------

async function loadInfo() {
  const response = await fetch("/api/info");
  if (!response.ok) throw new Error("cannot read /api/info (" + response.status + ")");
  info = await response.json();
  const input = info.input;
  $("run-title").textContent = info.run;
  const facts = [
    info.model,
    info.classes.length + " classes",
    input.height + "×" + input.width + (input.channels === 1 ? " grey" : " RGB"),
  ];
  if (info.accuracy) {
    facts.push(info.accuracy.split + " accuracy " + (info.accuracy.value * 100).toFixed(2) + "%");
  }
  $("run-facts").textContent = facts.filter(Boolean).join(" · ");
  document.title = "cnnkit · " + info.run;
  $("limits").textContent =
    "PNG, JPEG, GIF, BMP, TIFF or WebP, up to " + (info.max_upload_bytes / 1048576).toFixed(1) + " MB";
  $("footer").textContent =
    "Images are decoded as the run's training data were (" + input.channels + " channel" +
    (input.channels === 1 ? "" : "s") + ", " + input.height + "×" + input.width + ", fit " + input.fit +
    "), in memory; nothing is stored. Served on this computer only.";
  if (info.canvas.enabled) {
    $("tabs").hidden = false;
    showTab("draw");
    setupPad(info.canvas.ink);
  } else {
    showTab("upload");
  }
}

function showTab(which) {
  const draw = which === "draw";
  $("draw-panel").hidden = !draw;
  $("upload-panel").hidden = draw;
  $("tab-draw").setAttribute("aria-selected", String(draw));
  $("tab-upload").setAttribute("aria-selected", String(!draw));
}

// -- drawing -------------------------------------------------------------------------------

let background = "#000";
let ink = "#fff";

function setupPad(inkKind) {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  background = inkKind === "light" ? "#000" : "#fff";
  ink = inkKind === "light" ? "#fff" : "#000";
  clearPad();
  let drawing = false;
  let last = null;
  const point = (event) => {
    const box = pad.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * pad.width) / box.width,
      ((event.clientY - box.top) * pad.height) / box.height,
    ];
  };
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    last = point(event);
    pad.setPointerCapture(event.pointerId);
    ctx.fillStyle = ink;
    ctx.beginPath();
    ctx.arc(last[0], last[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const next = point(event);
    ctx.strokeStyle = ink;
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(next[0], next[1]);
    ctx.stroke();
    last = next;
  });
  const finish = () => {
    if (!drawing) return;
    drawing = false;
    predictDrawing();
  };
  pad.addEventListener("pointerup", finish);
  pad.addEventListener("pointercancel", finish);
  $("clear").addEventListener("click", clearPad);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") clearPad();
  });
}

function clearPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.lineWidth = Math.round(pad.width / 12);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  showResult(null);
  setStatus("Draw a digit.");
}

// MNIST's digits are scaled to fit a 20×20 box and centred by their centre of mass in a
// 28×28 picture; the drawing is brought to the same framing before it is sent, so the
// server decodes it by the run's one rule, like any other image.
function framedDrawing() {
  const pad = $("pad");
  const { width, height } = pad;
  const pixels = pad.getContext("2d").getImageData(0, 0, width, height).data;
  const bg = background === "#000" ? 0 : 255;
  let left = width, right = -1, top = height, bottom = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (Math.abs(pixels[(y * width + x) * 4] - bg) > 32) {
        if (x < left) left = x;
        if (x > right) right = x;
        if (y < top) top = y;
        if (y > bottom) bottom = y;
      }
    }
  }
  if (right < 0) return null;
  const boxW = right - left + 1, boxH = bottom - top + 1;
  const scale = (width * 20) / 28 / Math.max(boxW, boxH);
  const digit = document.createElement("canvas");
  digit.width = Math.max(1, Math.round(boxW * scale));
  digit.height = Math.max(1, Math.round(boxH * scale));
  const dctx = digit.getContext("2d");
  dctx.imageSmoothingQuality = "high";
  dctx.drawImage(pad, left, top, boxW, boxH, 0, 0, digit.width, digit.height);
  const scaled = dctx.getImageData(0, 0, digit.width, digit.height).data;
  let mass = 0, sumX = 0, sumY = 0;
  for (let y = 0; y < digit.height; y++) {
    for (let x = 0; x < digit.width; x++) {
      const m = Math.abs(scaled[(y * digit.width + x) * 4] - bg);
      mass += m;
      sumX += m * (x + 0.5);
      sumY += m * (y + 0.5);
    }
  }
  const framed = document.createElement("canvas");
  framed.width = width;
  framed.height = height;
  const fctx = framed.getContext("2d");
  fctx.fillStyle = background;
  fctx.fillRect(0, 0, width, height);
  const cx = mass ? sumX / mass : digit.width / 2;
  const cy = mass ? sumY / mass : digit.height / 2;
  fctx.drawImage(digit, Math.round(width / 2 - cx), Math.round(height / 2 - cy));
  return framed;
}

function predictDrawing() {
  const framed = framedDrawing();
  if (!framed) {
    setStatus("The pad is empty: draw a digit.");
    return;
  }
  framed.toBlob((blob) => predict(blob), "image/png");
}

// -- uploading -----------------------------------------------------------------------------

function setupUpload() {
  const input = $("file");
  const drop = $("drop");
  input.addEventListener("change", () => {
    if (input.files.length) uploadFile(input.files[0]);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) uploadFile(event.dataTransfer.files[0]);
  });
  $("tab-draw").addEventListener("click", () => showTab("draw"));
  $("tab-upload").addEventListener("click", () => showTab("upload"));
}

function uploadFile(file) {
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  if (info && file.size > info.max_upload_bytes) {
    preview.hidden = true;
    showResult(null);
    setStatus(file.name + " is larger than the upload limit (" +
      (info.max_upload_bytes / 1048576).toFixed(1) + " MB).", true);
    return;
  }
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  predict(file);
}

// -- predicting ----------------------------------------------------------------------------

async function predict(blob) {
  if (busy) {
    pending = blob;
    return;
  }
  busy = true;
  setStatus("Predicting…");
  try {
    const k = info ? info.top_k : 5;
    const response = await fetch("/api/predict?top_k=" + k + "&gradcam=" + (info && info.gradcam ? 1 : 0), {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: blob,
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      answer = { error: "the server answered " + response.status };
    }
    if (!response.ok) {
      showResult(null);
      setStatus(answer.error || "the server answered " + response.status, true);
    } else {
      showResult(answer);
      setStatus("Predicted in " + answer.milliseconds + " ms.");
    }
  } catch (error) {
    showResult(null);
    setStatus("Cannot reach the server: " + error.message, true);
  } finally {
    busy = false;
    if (pending) {
      const next = pending;
      pending = null;
      predict(next);
    }
  }
}

function showResult(answer) {
  const bars = $("bars");
  bars.replaceChildren();
  $("verdict").hidden = !answer;
  $("pictures").hidden = !answer;
  $("inverted").hidden = !(answer && answer.inverted);
  if (!answer) return;
  if (answer.inverted) {
    const training = info.canvas.ink === "light" ? "light digits on a dark" : "dark digits on a light";
    $("inverted").textContent =
      "Your picture has a " + (info.canvas.ink === "light" ? "light" : "dark") +
      " background; the model was trained on " + training +
      " background, so it was inverted first (see what the model saw).";
  }
  $("verdict-class").textContent = answer.predicted.class;
  $("verdict-prob").textContent = percent(answer.predicted.probability);
  for (const score of answer.top) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = score.class;
    name.title = score.class;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = (score.probability * 100).toFixed(2) + "%";
    track.appendChild(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(score.probability);
    item.append(name, track, pct);
    bars.appendChild(item);
  }
  $("seen").src = answer.input;
  const input = info.input;
  $("seen-size").textContent = input.height + "×" + input.width + (input.channels === 1 ? " grey" : " RGB");
  const cam = answer.gradcam;
  $("cam-figure").hidden = !cam;
  if (cam) {
    $("cam").src = cam.overlay;
    const layer = cam.layer.replace(/\./g, ".\u200b"); // long module paths wrap at the dots
    $("cam-caption").textContent = cam.blank
      ? "Grad-CAM at " + layer + ": no positive evidence (blank map)"
      : "Grad-CAM at " + layer + ": red is where it saw “" + cam.class + "”";
  }
}

window.addEventListener("DOMContentLoaded", () => {
  setupUpload();
  loadInfo().catch((error) => setStatus(error.message, true));
});
