// Interactive 3D skeleton viewer, inlined by common/video/viewer.py into one self-contained HTML page.
// Plain 2D canvas drawing with an orbit camera; reads its data from <script id="viewer-data" type="application/json">.
// window.viewerState exposes what is drawn (frame, view, projected joints) for tests and scripting.
(() => {
  "use strict";
  const DATA = JSON.parse(document.getElementById("viewer-data").textContent);
  const T = DATA.numFrames;
  const J = DATA.numJoints;
  const DISTANCE = 3 * DATA.radius; // eye distance from the view centre, metres
  const GRID = 0.5; // ground grid spacing, metres

  function decode(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  const view = { azimuth: DATA.azimuth, elevation: DATA.elevation, zoom: 1 };
  const state = { frame: 0, playing: false, speed: 1, position: 0, last: null };
  const dpr = window.devicePixelRatio || 1;
  const container = document.getElementById("panels");

  function makeCanvas(label) {
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(DATA.panelPx * dpr);
    canvas.height = Math.round(DATA.panelPx * dpr);
    canvas.style.width = canvas.style.height = DATA.panelPx + "px";
    canvas.setAttribute("aria-label", label);
    container.appendChild(canvas);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { canvas, ctx };
  }

  const image = DATA.keypoints2d ? Object.assign(makeCanvas("2D keypoints"), {
    keypoints: decode(DATA.keypoints2d.data), num: DATA.keypoints2d.numJoints, joints: [], thumbnail: -1,
  }) : null;
  const panels = DATA.panels.map((p) => Object.assign(makeCanvas(p.name), {
    name: p.name, poses: decode(p.poses), joints: [],
  }));
  const thumbnails = [];
  let thumbnailsLoaded = 0;
  if (DATA.thumbnails) {
    DATA.thumbnails.images.forEach((text, index) => {
      const img = new Image();
      img.onload = () => {
        thumbnailsLoaded += 1;
        if (image && index === Math.min(Math.floor(state.frame / DATA.thumbnails.stride), thumbnails.length - 1)) render();
        if (window.viewerState) window.viewerState.thumbnailsLoaded = thumbnailsLoaded;
      };
      img.src = "data:image/jpeg;base64," + text;
      thumbnails.push(img);
    });
  }

  // Orbit camera: the eye looks at `center` from azimuth/elevation (degrees, z up), perspective at DISTANCE.
  function basis() {
    const az = view.azimuth * Math.PI / 180;
    const el = view.elevation * Math.PI / 180;
    return {
      eye: [Math.cos(el) * Math.cos(az), Math.cos(el) * Math.sin(az), Math.sin(el)],
      right: [-Math.sin(az), Math.cos(az), 0],
      up: [-Math.sin(el) * Math.cos(az), -Math.sin(el) * Math.sin(az), Math.cos(el)],
    };
  }

  function project(p, center, b, size) {
    const q = [p[0] - center[0], p[1] - center[1], p[2] - center[2]];
    const dot = (a) => a[0] * q[0] + a[1] * q[1] + a[2] * q[2];
    const depth = dot(b.eye);
    const scale = view.zoom * size / (DATA.radius * 1.25) * DISTANCE / Math.max(DISTANCE - depth, 0.1);
    return [size / 2 + dot(b.right) * scale, size / 2 - dot(b.up) * scale, depth];
  }

  function line(ctx, a, b, color, width) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
  }

  function label(ctx, text, dark) {
    ctx.font = "14px sans-serif";
    ctx.fillStyle = dark ? "rgba(0,0,0,0.5)" : "rgba(255,255,255,0.8)";
    ctx.fillRect(6, 6, ctx.measureText(text).width + 10, 22);
    ctx.fillStyle = dark ? "#fff" : "#000";
    ctx.fillText(text, 11, 22);
  }

  function drawGround(ctx, center, b, size) {
    const half = DATA.radius / 2;
    const [x0, x1, y0, y1] = [center[0] - half, center[0] + half, center[1] - half, center[1] + half];
    const corners = [[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]].map((p) => project(p, center, b, size));
    ctx.fillStyle = "rgba(176,176,176,0.35)";
    ctx.beginPath();
    corners.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
    ctx.closePath();
    ctx.fill();
    for (let g = Math.ceil(x0 / GRID) * GRID; g <= x1; g += GRID) {
      line(ctx, project([g, y0, 0], center, b, size), project([g, y1, 0], center, b, size), "rgba(0,0,0,0.12)", 1);
    }
    for (let g = Math.ceil(y0 / GRID) * GRID; g <= y1; g += GRID) {
      line(ctx, project([x0, g, 0], center, b, size), project([x1, g, 0], center, b, size), "rgba(0,0,0,0.12)", 1);
    }
  }

  function drawPanel(panel, b) {
    const { ctx } = panel;
    const size = DATA.panelPx;
    const base = state.frame * J * 3;
    const P = panel.poses;
    const center = [P[base], P[base + 1], DATA.radius / 2]; // the view follows the root horizontally
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    drawGround(ctx, center, b, size);
    const points = [];
    for (let j = 0; j < J; j++) points.push(project([P[base + 3 * j], P[base + 3 * j + 1], P[base + 3 * j + 2]], center, b, size));
    const order = DATA.bones.map((_, i) => i);
    const depth = (i) => points[DATA.bones[i][0]][2] + points[DATA.bones[i][1]][2];
    order.sort((i, k) => depth(i) - depth(k)); // farthest first
    ctx.lineCap = "round";
    for (const i of order) line(ctx, points[DATA.bones[i][0]], points[DATA.bones[i][1]], DATA.boneColors[i], 4);
    label(ctx, panel.name, false);
    panel.joints = points.map((p) => [p[0], p[1]]);
  }

  function drawImage() {
    const { ctx } = image;
    const size = DATA.panelPx;
    const [x0, y0, x1, y1] = DATA.keypoints2d.extent;
    const scale = Math.min(size / (x1 - x0), size / (y1 - y0));
    const ox = (size - scale * (x1 - x0)) / 2;
    const oy = (size - scale * (y1 - y0)) / 2;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, size, size);
    image.thumbnail = -1;
    if (thumbnails.length) {
      const index = Math.min(Math.floor(state.frame / DATA.thumbnails.stride), thumbnails.length - 1);
      if (thumbnails[index].complete && thumbnails[index].naturalWidth) {
        ctx.drawImage(thumbnails[index], ox, oy, scale * (x1 - x0), scale * (y1 - y0));
        image.thumbnail = index;
      }
    }
    const base = state.frame * image.num * 2;
    const K = image.keypoints;
    const points = [];
    for (let j = 0; j < image.num; j++) points.push([ox + (K[base + 2 * j] - x0) * scale, oy + (K[base + 2 * j + 1] - y0) * scale]);
    ctx.lineCap = "round";
    DATA.keypoints2d.bones.forEach((bone, i) => line(ctx, points[bone[0]], points[bone[1]], DATA.keypoints2d.boneColors[i], 3));
    ctx.fillStyle = "#ffd000";
    for (const p of points) {
      ctx.beginPath();
      ctx.arc(p[0], p[1], 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    label(ctx, "Input", true);
    image.joints = points;
  }

  const slider = document.getElementById("frame");
  const frameLabel = document.getElementById("frame-label");
  const playButton = document.getElementById("play");

  function render() {
    const b = basis();
    panels.forEach((panel) => drawPanel(panel, b));
    if (image) drawImage();
    slider.value = String(state.frame);
    frameLabel.textContent = `frame ${state.frame + 1} / ${T}  (${(state.frame / DATA.fps).toFixed(2)} s)`;
    playButton.textContent = state.playing ? "Pause" : "Play";
    window.viewerState = {
      ready: true, frame: state.frame, numFrames: T, fps: DATA.fps, playing: state.playing, speed: state.speed,
      azimuth: view.azimuth, elevation: view.elevation, zoom: view.zoom, panelPx: DATA.panelPx,
      panels: panels.map((p) => ({ name: p.name, joints: p.joints })),
      image: image ? { joints: image.joints, thumbnail: image.thumbnail } : null,
      thumbnails: thumbnails.length, thumbnailsLoaded,
    };
  }

  function setFrame(frame) {
    state.frame = Math.max(0, Math.min(T - 1, frame));
    state.position = state.frame;
    render();
  }

  function tick(now) {
    if (!state.playing) return;
    if (state.last !== null) state.position = (state.position + (now - state.last) / 1000 * DATA.fps * state.speed) % T;
    state.last = now;
    const frame = Math.floor(state.position);
    if (frame !== state.frame) {
      state.frame = frame;
      render();
    }
    requestAnimationFrame(tick);
  }

  function togglePlay() {
    state.playing = !state.playing;
    state.last = null;
    render();
    if (state.playing) requestAnimationFrame(tick);
  }

  slider.max = String(T - 1);
  slider.addEventListener("input", () => setFrame(parseInt(slider.value, 10)));
  playButton.addEventListener("click", togglePlay);
  document.getElementById("speed").addEventListener("change", (e) => {
    state.speed = parseFloat(e.target.value);
    render();
  });
  document.getElementById("reset-view").addEventListener("click", () => {
    Object.assign(view, { azimuth: DATA.azimuth, elevation: DATA.elevation, zoom: 1 });
    render();
  });
  document.addEventListener("keydown", (e) => {
    if (e.target === slider || e.target.tagName === "SELECT") return;
    if (e.key === " ") { e.preventDefault(); togglePlay(); }
    if (e.key === "ArrowRight") setFrame(state.frame + 1);
    if (e.key === "ArrowLeft") setFrame(state.frame - 1);
  });

  let drag = null;
  for (const panel of panels) {
    panel.canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY };
      panel.canvas.setPointerCapture(e.pointerId);
    });
    panel.canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      view.azimuth -= (e.clientX - drag.x) * 0.5;
      view.elevation = Math.max(-89, Math.min(89, view.elevation + (e.clientY - drag.y) * 0.5));
      drag = { x: e.clientX, y: e.clientY };
      render();
    });
    panel.canvas.addEventListener("pointerup", () => { drag = null; });
    panel.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      view.zoom = Math.max(0.2, Math.min(8, view.zoom * Math.exp(-e.deltaY * 0.0015)));
      render();
    }, { passive: false });
  }
  render();
})();
