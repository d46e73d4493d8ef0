// humanparse page: upload (presigned POST straight to the bucket, with progress), wait, explore the parse.
"use strict";
(() => {
  const API = ((window.HUMANPARSE_CONFIG || {}).apiBase || "/api").replace(/\/$/, "");
  const $ = (sel, el = document) => el.querySelector(sel);
  const state = { config: null };

  const plain = {
    too_large: "This file is too big.",
    unsupported_type: "That file type is not accepted — use a JPEG, PNG or WebP photo.",
    not_an_image: "This file is not an image we can read.",
    truncated: "The image is damaged or incomplete.",
    too_small: "The image is too small to parse.",
    empty: "The file is empty.",
    unsupported_format: "That image format is not accepted — use JPEG, PNG or WebP.",
  };

  // Plain words first; the server's reason only where its numbers help (sizes, limits).
  function friendly(code, detail) {
    if (!plain[code]) return detail || "";
    return (code === "too_large" || code === "too_small") && detail ? `${plain[code]} (${detail})` : plain[code];
  }

  async function api(path, opts = {}) {
    let res;
    try {
      res = await fetch(API + path, opts);
    } catch (e) {
      throw new Error("Cannot reach the server. Is it running?");
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const code = body && body.error;
      const detail = body && typeof body.detail === "string" ? body.detail : "";
      throw new Error(friendly(code, detail) || `Server error (${res.status}).`);
    }
    return body;
  }

  async function loadConfig() {
    try { state.config = await api("/config"); } catch (e) { state.config = null; }
  }

  // ---------------------------------------------------------------------------------------- uploading
  function uploadWithProgress(url, fields, file, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      Object.entries(fields).forEach(([k, v]) => form.append(k, v));
      form.append("file", file);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(100 * e.loaded / e.total); };
      xhr.onload = () => (xhr.status >= 200 && xhr.status < 300) ? resolve() :
        reject(new Error(xhr.status === 400 || xhr.status === 403 ?
          "The storage refused this file (too big or wrong type)." : `Upload failed (${xhr.status}).`));
      xhr.onerror = () => reject(new Error("The upload could not reach the storage. Check your connection."));
      xhr.send(form);
    });
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function pollJob(jobId, onState) {
    const started = Date.now();
    for (let i = 0; ; i++) {
      const job = await api(`/jobs/${jobId}`);
      if (job.status === "done" || job.status === "failed") return job;
      onState(`parsing… ${Math.round((Date.now() - started) / 1000)} s`);
      if (Date.now() - started > 10 * 60 * 1000) throw new Error("This is taking too long. Try again later.");
      await sleep(Math.min(2000, 400 + i * 150));
    }
  }

  function addJob(file) {
    const node = $("#job-tpl").content.firstElementChild.cloneNode(true);
    $(".name", node).textContent = file.name;
    $("#jobs").prepend(node);
    run(node, file);
  }

  function setState(node, text, cls) {
    const s = $(".state", node);
    s.textContent = text;
    s.className = "state " + (cls || "");
  }

  async function run(node, file) {
    const bar = $(".bar", node), err = $(".error", node), retry = $(".retry", node);
    err.hidden = true; retry.hidden = true; $(".result", node).hidden = true;
    bar.hidden = false; bar.value = 0;
    try {
      const max = state.config ? state.config.max_upload_bytes : 15 * 1024 * 1024;
      const types = state.config ? state.config.allowed_content_types : ["image/jpeg", "image/png", "image/webp"];
      if (!types.includes(file.type)) throw new Error(plain.unsupported_type);
      if (file.size > max) throw new Error(`${plain.too_large} The limit is ${Math.round(max / 1048576)} MB.`);
      if (file.size === 0) throw new Error(plain.empty);
      setState(node, "uploading…");
      const up = await api("/uploads", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ content_type: file.type, filename: file.name, size: file.size }) });
      await uploadWithProgress(up.upload.url, up.upload.fields, file, (p) => { bar.value = p; });
      bar.value = 100;
      setState(node, "parsing…");
      node.dataset.jobId = up.job_id;
      const job = await pollJob(up.job_id, (t) => setState(node, t));
      if (job.status === "failed") throw new Error(friendly(job.error, job.reason) || "Parsing failed.");
      setState(node, `done in ${job.elapsed_ms ? (job.elapsed_ms / 1000).toFixed(1) + " s" : "—"}`, "done");
      bar.hidden = true;
      await showResult(node, file, job);
    } catch (e) {
      setState(node, "failed", "failed");
      err.textContent = e.message; err.hidden = false; retry.hidden = false;
      retry.onclick = () => run(node, file);
    }
  }

  // --------------------------------------------------------------------------------------------- result
  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const im = new Image();
      im.crossOrigin = "anonymous";  // results come from the bucket's origin; pixels are read for hover
      im.onload = () => resolve(im);
      im.onerror = () => reject(new Error("Could not load a result image."));
      im.src = src;
    });
  }

  function pixels(img) {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    return g.getImageData(0, 0, c.width, c.height);
  }

  const hex = (rgb) => "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
  const parseHex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

  async function showResult(node, file, job) {
    const doc = await (await fetch(job.results["result.json"])).json();
    const [photo, label, persons] = await Promise.all([
      loadImage(URL.createObjectURL(file)), loadImage(job.results["label.png"]), loadImage(job.results["persons.png"])]);
    const W = label.naturalWidth, H = label.naturalHeight;
    const labPx = pixels(label).data, perPx = pixels(persons).data, photoPx = pixels(photo);
    // colour → id maps (label.png / persons.png are palette PNGs; the browser hands us their colours)
    const allLabels = (state.config && state.config.labels) || doc.legend.map((l) => ({ id: l.id, name: l.name, color: l.color }));
    const byColor = new Map(allLabels.map((l) => [l.color, l]));
    byColor.set("#000000", { id: 0, name: "Background", color: "#000000" });
    const labelIds = new Uint8Array(W * H), personIds = new Uint8Array(W * H);
    // persons.png: person k has person_colors[(k-1) % n] (the server's palette), so ids match the JSON
    const pcolors = (state.config && state.config.person_colors) || [];
    const personByColor = new Map();
    doc.persons.forEach((p) => { if (pcolors.length) personByColor.set(parseInt(pcolors[(p.id - 1) % pcolors.length].slice(1), 16), p.id); });
    for (let i = 0; i < W * H; i++) {
      const k = i * 4;
      const l = byColor.get(hex([labPx[k], labPx[k + 1], labPx[k + 2]]));
      labelIds[i] = l ? l.id : 0;
      const pc = (perPx[k] << 16) | (perPx[k + 1] << 8) | perPx[k + 2];
      if (pc !== 0) {
        if (!personByColor.has(pc)) personByColor.set(pc, personByColor.size + 1);
        personIds[i] = personByColor.get(pc);
      }
    }
    const hidden = { labels: new Set(), persons: new Set() };
    const canvas = $(".view", node), g = canvas.getContext("2d");
    canvas.width = W; canvas.height = H;
    const out = g.createImageData(W, H);
    let view = "overlay";
    const slider = $(".opacity input", node);
    const palette = new Map(allLabels.map((l) => [l.id, parseHex(l.color)]));

    function render() {
      const a = view === "color" ? 1 : view === "original" ? 0 : slider.value / 100;
      const src = photoPx.data, dst = out.data;
      for (let i = 0; i < W * H; i++) {
        const k = i * 4, id = labelIds[i];
        const show = id !== 0 && !hidden.labels.has(id) && !hidden.persons.has(personIds[i]);
        const base = view === "color" ? [0, 0, 0] : [src[k], src[k + 1], src[k + 2]];
        if (show && a > 0) {
          const c = palette.get(id);
          dst[k] = base[0] * (1 - a) + c[0] * a; dst[k + 1] = base[1] * (1 - a) + c[1] * a; dst[k + 2] = base[2] * (1 - a) + c[2] * a;
        } else { dst[k] = base[0]; dst[k + 1] = base[1]; dst[k + 2] = base[2]; }
        dst[k + 3] = 255;
      }
      g.putImageData(out, 0, 0);
    }

    node.querySelectorAll(".tabs button").forEach((b) => {
      b.onclick = () => {
        view = b.dataset.view;
        node.querySelectorAll(".tabs button").forEach((x) => x.setAttribute("aria-selected", String(x === b)));
        $(".opacity", node).hidden = view !== "overlay";
        render();
      };
    });
    slider.oninput = render;

    // legend with toggles
    const legend = $(".legend", node); legend.innerHTML = "";
    doc.legend.forEach((l) => {
      const li = document.createElement("li");
      li.innerHTML = `<label><input type="checkbox" checked data-label="${l.id}"><span class="sw" style="background:${l.color}"></span>` +
        `<span>${l.name}</span><span class="share">${(100 * l.share).toFixed(1)}%</span></label>`;
      $("input", li).onchange = (e) => { e.target.checked ? hidden.labels.delete(l.id) : hidden.labels.add(l.id); render(); };
      legend.appendChild(li);
    });
    const people = $(".people", node); people.innerHTML = "";
    if (!doc.persons.length) people.innerHTML = "<li class='muted'>No person found.</li>";
    [...personByColor.entries()].forEach(([pc, localId]) => {
      const li = document.createElement("li");
      const color = "#" + pc.toString(16).padStart(6, "0");
      li.innerHTML = `<label><input type="checkbox" checked data-person="${localId}"><span class="sw" style="background:${color}"></span>` +
        `<span>Person ${localId}</span></label>`;
      $("input", li).onchange = (e) => { e.target.checked ? hidden.persons.delete(localId) : hidden.persons.add(localId); render(); };
      people.appendChild(li);
    });

    // hover / tap to name a part
    const tip = $(".tip", node), hover = $(".hover", node);
    function describe(ev) {
      const r = canvas.getBoundingClientRect();
      const x = Math.floor((ev.clientX - r.left) * W / r.width), y = Math.floor((ev.clientY - r.top) * H / r.height);
      if (x < 0 || y < 0 || x >= W || y >= H) return;
      const i = y * W + x, id = labelIds[i];
      const name = (allLabels.find((l) => l.id === id) || { name: "Background" }).name;
      const text = id === 0 ? "Background" : `${name}${personIds[i] ? " — person " + personIds[i] : ""}`;
      tip.textContent = text; tip.hidden = false;
      tip.style.left = `${ev.clientX - r.left + 12}px`; tip.style.top = `${ev.clientY - r.top + 12}px`;
      hover.textContent = text;
    }
    canvas.onmousemove = describe;
    canvas.onclick = describe;
    canvas.onmouseleave = () => { tip.hidden = true; };

    const dl = $(".downloads", node);
    const stem = file.name.replace(/\.[^.]+$/, "");
    dl.innerHTML = "";
    [["color.png", "Colour map"], ["label.png", "Label map"], ["result.json", "JSON"], ["overlay.png", "Overlay"]].forEach(([f, t]) => {
      const a = document.createElement("a");
      a.href = job.results[f]; a.textContent = t; a.download = `${stem}.${f}`;
      dl.appendChild(a);
    });
    canvas.dataset.width = W; canvas.dataset.height = H;
    $(".result", node).hidden = false;
    render();
    node.dataset.ready = "1";
  }

  // ------------------------------------------------------------------------------------------- wiring
  function wire() {
    const drop = $("#drop"), input = $("#file");
    drop.addEventListener("click", () => input.click());
    drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
    input.addEventListener("change", () => { [...input.files].forEach(addJob); input.value = ""; });
    ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
    ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
    drop.addEventListener("drop", (e) => [...e.dataTransfer.files].forEach(addJob));
  }

  async function init() {
    wire();
    await loadConfig();
    const line = $("#model-line");
    if (state.config) {
      $("#max-mb").textContent = Math.round(state.config.max_upload_bytes / 1048576);
      line.textContent = state.config.model === "m2fp" ? "Model: M2FP (ResNet-101)" : "Model: lite (BodyPix + PAN)";
    } else {
      line.textContent = "The server is not reachable right now — uploads will fail until it is back.";
    }
  }
  init();
})();
