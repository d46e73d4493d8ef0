// One job card: check the file, upload, wait, then show the result or a plain error with Retry.
import { $ } from "./dom.js";
import { jobFailure, plain } from "./api.js";
import { submit } from "./upload.js";
import { showResult } from "./result.js";
import { showVideoResult } from "./video.js";

const DEFAULT_TYPES = ["image/jpeg", "image/png", "image/webp", "video/mp4", "video/quicktime", "video/webm"];
const isVideo = (file) => file.type.startsWith("video/");

function setState(node, text, cls) {
  const s = $(".state", node);
  s.textContent = text;
  s.className = "state " + (cls || "");
}

/** Refuse before uploading what the server would refuse (type, size, empty). */
function precheck(file, config) {
  const max = isVideo(file) ? (config && config.video_max_bytes) || 200 * 1024 * 1024
    : config ? config.max_upload_bytes : 15 * 1024 * 1024;
  const types = config ? config.allowed_content_types : DEFAULT_TYPES;
  if (!types.includes(file.type)) throw new Error(plain.unsupported_type);
  if (file.size > max) throw new Error(`${plain.too_large} The limit is ${Math.round(max / 1048576)} MB.`);
  if (file.size === 0) throw new Error(plain.empty);
}

async function run(node, file, ctx) {
  const bar = $(".bar", node), err = $(".error", node), retry = $(".retry", node);
  err.hidden = true; retry.hidden = true; $(".result", node).hidden = true; delete node.dataset.ready;
  bar.hidden = false; bar.value = 0;
  try {
    precheck(file, ctx.config());
    setState(node, "uploading…");
    const job = await submit(file, {
      onProgress: (p) => { bar.value = p; },
      onState: (text, jobId, status) => {
        setState(node, text); if (jobId) node.dataset.jobId = jobId;
        if (status && status.frames_total) bar.value = 100 * (status.frames_done || 0) / status.frames_total;  // by frames
      },
    });
    if (job.status === "failed") throw new Error(jobFailure(job));
    if (job.cached) node.dataset.cached = "true"; else delete node.dataset.cached;
    setState(node, job.cached ? "done — from cache (this photo was parsed before)" :
      `done in ${job.elapsed_ms ? (job.elapsed_ms / 1000).toFixed(1) + " s" : "—"}`, "done");
    bar.hidden = true;
    if (job.kind === "video") await showVideoResult(node, file, job);
    else await showResult(node, file, job, ctx.config());
  } catch (e) {
    setState(node, "failed", "failed");
    err.textContent = e.message; err.hidden = false; retry.hidden = false;
    retry.onclick = () => run(node, file, ctx);
    if (e.code === "unauthorized") ctx.needToken();
  }
}

/** Add a card for `file` at the top of the list and start it. ctx: {config(), needToken()}. */
export function addJob(file, ctx) {
  const node = $("#job-tpl").content.firstElementChild.cloneNode(true);
  $(".name", node).textContent = file.name;
  $("#jobs").prepend(node);
  run(node, file, ctx);
}
