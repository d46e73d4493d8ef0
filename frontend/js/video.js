// A finished video job: two stacked <video>s kept in step by currentTime — the original clip underneath (the
// local file's object URL, else the upload's presigned URL) and the colour map on top, whose CSS opacity is the
// slider (Overlay), 1 (Colour map) or 0 (Original). One set of controls drives both. The people list comes from
// tracks.json; a person switched on gets their box drawn over the video for the current frame.
import { $, el } from "./dom.js";
import { downloadList, fetchJson, isWebUrl, wireViewTabs } from "./card.js";
import { fillDownloads } from "./panels.js";

const fmt = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

/** The player: base (original) + top (colour map) + a canvas for person boxes, all the same size. */
class VideoPlayer {
  constructor(stage, { original, color, fallback, width, height }) {
    this.base = el("video", { className: "vid base", muted: true, playsInline: true, preload: "auto", loop: true });
    this.top = el("video", { className: "vid top", muted: true, playsInline: true, preload: "auto", loop: true });
    this.boxes = el("canvas", { className: "vid boxes", width, height });
    this.frame = el("div", { className: "vframe" }, this.base, this.top, this.boxes);
    this.frame.style.aspectRatio = `${width} / ${height}`;
    stage.append(this.frame);
    this.fallback = fallback;
    this.base.addEventListener("error", () => this.useFallback(), { once: true });
    this.base.src = original || fallback;
    this.top.crossOrigin = "anonymous";  // a CORS-clean frame: drawable to a canvas (tests, snapshots)
    this.top.src = color;
    this.alpha = 0.6; this.view = "overlay"; this.onTime = () => {};
    const sync = () => {
      if (Math.abs(this.top.currentTime - this.base.currentTime) > 0.05) this.top.currentTime = this.base.currentTime;
      this.onTime(this.base.currentTime);
    };
    ["seeked", "timeupdate"].forEach((t) => this.base.addEventListener(t, sync));
    this.base.addEventListener("play", () => { this.top.currentTime = this.base.currentTime; this.top.play().catch(() => {}); });
    this.base.addEventListener("pause", () => { this.top.pause(); sync(); });
  }

  /** The original cannot be decoded here (e.g. H.265 in this browser): the server's overlay video instead. */
  useFallback() {
    this.originalUnplayable = true;
    this.base.src = this.fallback;
    this.apply();
  }

  setView(view) { this.view = view; this.apply(); }
  setAlpha(a) { this.alpha = a; this.apply(); }
  apply() {
    const a = this.view === "color" ? 1 : this.view === "original" ? 0 : this.alpha;
    this.top.style.opacity = String(this.originalUnplayable && this.view === "overlay" ? 0 : a);
  }
  toggle() { return this.base.paused ? this.base.play() : Promise.resolve(this.base.pause()); }
  seek(t) { this.base.currentTime = t; this.top.currentTime = t; }
}

function wireControls(node, player, duration) {
  wireViewTabs(node, player, (view) => player.setView(view));
  const play = el("button", { type: "button", className: "play", text: "Play" });
  const seek = el("input", { type: "range", min: 0, max: 1000, value: 0, className: "seek" });
  seek.setAttribute("aria-label", "Position in the video");
  const time = el("span", { className: "time muted", text: `0:00 / ${fmt(duration)}` });
  play.onclick = () => player.toggle();
  player.base.addEventListener("play", () => { play.textContent = "Pause"; });
  player.base.addEventListener("pause", () => { play.textContent = "Play"; });
  seek.oninput = () => player.seek(duration * seek.value / 1000);
  const prev = player.onTime;
  player.onTime = (t) => { prev(t); seek.value = String(Math.round(1000 * t / Math.max(duration, 1e-3))); time.textContent = `${fmt(t)} / ${fmt(duration)}`; };
  $(".stage", node).after(el("div", { className: "vcontrols" }, play, seek, time));
}

/** Nearest processed frame index for time t (frame_times ascending, seconds). */
function frameAt(times, t) {
  let lo = 0, hi = times.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t + 1e-3) lo = mid; else hi = mid - 1; }
  return lo;
}

function wirePeople(list, tracks, player, frameTimes) {
  const shown = new Set();
  const byFrame = new Map(tracks.map((t) => [t.id, new Map((t.per_frame || []).map((f) => [f.frame, f.bbox]))]));
  const colour = new Map(tracks.map((t) => [t.id, /^#[0-9a-f]{6}$/i.test(t.color) ? t.color : "#ffffff"]));
  const draw = (t) => {
    const g = player.boxes.getContext("2d");
    g.clearRect(0, 0, player.boxes.width, player.boxes.height);
    if (!frameTimes.length) return;
    const f = frameAt(frameTimes, t);
    g.lineWidth = Math.max(2, player.boxes.width / 200);
    for (const id of shown) {
      const b = byFrame.get(id).get(f);
      if (!b) continue;
      g.strokeStyle = colour.get(id);
      g.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    }
  };
  const prev = player.onTime;
  player.onTime = (t) => { prev(t); draw(t); };
  if (!tracks.length) { list.replaceChildren(el("li", { className: "muted", text: "No person found." })); return; }
  list.replaceChildren(...tracks.filter((t) => Number.isInteger(t.id)).map((t) => {
    const box = el("input", { type: "checkbox", checked: false });
    box.setAttribute("aria-label", `Show person ${t.id}'s box`);
    box.addEventListener("change", () => { if (box.checked) shown.add(t.id); else shown.delete(t.id); draw(player.base.currentTime); });
    const when = el("button", { type: "button", className: "link", text: `${(t.frames || []).length} fr. @${fmt(Number(t.first) || 0)}`, title: "Go to this person's first frame" });
    when.onclick = () => player.seek(Number(t.first) || 0);
    return el("li", { dataset: { person: String(t.id) } },
      el("label", {}, box, el("span", { className: "sw", style: { background: colour.get(t.id) } }), el("span", { text: `Person ${t.id}` })),
      el("span", { className: "share" }, when));
  }));
}

/** Fill a job card's result area from a `done` video job (results = presigned URLs by file name); config: the
 * server's /config (its download list), or null. */
export async function showVideoResult(node, file, job, config, name) {
  const [doc, tracksDoc] = await Promise.all([fetchJson(job.results["result.json"]), fetchJson(job.results["tracks.json"])]);
  const stage = $(".stage", node);
  $(".view", node).hidden = true;
  $(".hover", node).hidden = true;
  const legendHead = $(".legend", node).previousElementSibling;
  $(".legend", node).hidden = true; if (legendHead) legendHead.hidden = true;
  const objectUrl = file ? URL.createObjectURL(file) : null;
  const player = new VideoPlayer(stage, {
    original: objectUrl || (isWebUrl(job.original, true) ? job.original : null), color: job.results["color.webm"],
    fallback: job.results["overlay.webm"], width: Number(doc.width) || 640, height: Number(doc.height) || 360,
  });
  const duration = Number((doc.video && doc.video.duration_s) || 0);
  wireControls(node, player, duration);
  const frameTimes = Array.isArray(doc.frame_times) ? doc.frame_times.map(Number) : [];
  wirePeople($(".people", node), Array.isArray(tracksDoc.tracks) ? tracksDoc.tracks : [], player, frameTimes);
  const stem = (name || (file && file.name) || "video").replace(/\.[^.]+$/, "");
  fillDownloads($(".downloads", node), job.results, stem, downloadList(config, "video", job.results), true);
  $(".result", node).hidden = false;
  node.player = player;  // for tests and the console
  node.dataset.ready = "1";
}
