// One job card: check the file, upload, wait, then show the result or a plain error with Retry. Every job is
// remembered (saved.js), so a reload, Back or a reopened tab brings its card back (restoreJobs).
import { $ } from "./dom.js";
import { api, jobFailure, plain } from "./api.js";
import { pollJob, submit } from "./upload.js";
import { showResult } from "./result.js";
import { showVideoResult } from "./video.js";
import { forget, remember, savedJobs, savedPhoto } from "./saved.js";

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

/** Reset a card to "working" and run `work`; a failure shows its message and a Retry that runs `again`. */
async function attempt(node, ctx, work, again) {
  const bar = $(".bar", node), err = $(".error", node), retry = $(".retry", node);
  err.hidden = true; retry.hidden = true; $(".result", node).hidden = true; delete node.dataset.ready;
  bar.hidden = false; bar.value = 0;
  try {
    await work(bar);
  } catch (e) {
    setState(node, "failed", "failed");
    err.textContent = e.message; err.hidden = false; retry.hidden = false;
    retry.onclick = again;
    if (e.code === "unauthorized") ctx.needToken();
  }
}

/** A finished job into its card: the result, or its failure thrown as an error. photo: the File/Blob or null. */
async function finish(node, job, photo, name, ctx) {
  if (job.status === "failed") throw new Error(jobFailure(job));
  if (job.cached) node.dataset.cached = "true"; else delete node.dataset.cached;
  setState(node, job.cached ? "done — from cache (this photo was parsed before)" :
    `done in ${job.elapsed_ms ? (job.elapsed_ms / 1000).toFixed(1) + " s" : "—"}`, "done");
  $(".bar", node).hidden = true;
  if (job.kind === "video") await showVideoResult(node, photo, job, ctx.config(), name);
  else await showResult(node, photo, job, ctx.config(), name);
}

function run(node, file, ctx) {
  return attempt(node, ctx, async (bar) => {
    precheck(file, ctx.config());
    setState(node, "uploading…");
    const job = await submit(file, {
      onProgress: (p) => { bar.value = p; },
      onState: (text, jobId, status) => {
        setState(node, text);
        if (jobId && node.dataset.jobId !== jobId) {
          if (node.dataset.jobId) forget(node.dataset.jobId);  // a retry's new job replaces the failed one
          node.dataset.jobId = jobId;
          // videos are not kept in the browser (up to 200 MB): a restored one plays the stored upload
          remember({ jobId, name: file.name, type: file.type }, isVideo(file) ? null : file);
        }
        if (status && status.frames_total) bar.value = 100 * (status.frames_done || 0) / status.frames_total;  // by frames
      },
    });
    await finish(node, job, file, file.name, ctx);
  }, () => run(node, file, ctx));
}

function newCard(name, place) {
  const node = $("#job-tpl").content.firstElementChild.cloneNode(true);
  $(".name", node).textContent = name;
  $(".forget", node).onclick = () => { if (node.dataset.jobId) forget(node.dataset.jobId); node.remove(); };
  if (place === "top") $("#jobs").prepend(node); else $("#jobs").append(node);
  return node;
}

/** Add a card for `file` at the top of the list and start it. ctx: {config(), needToken()}. */
export function addJob(file, ctx) {
  run(newCard(file.name, "top"), file, ctx);
}

/** Show a remembered job again: fetch its status (waiting if it is still running) and its result files. */
function restore(node, entry, ctx) {
  return attempt(node, ctx, async () => {
    setState(node, "loading…");
    let job;
    try {
      job = await api(`/jobs/${encodeURIComponent(entry.jobId)}`);
    } catch (e) {
      if (e.status !== 404) throw e;
      setState(node, "expired", "expired");
      $(".bar", node).hidden = true;
      node.dataset.expired = "true";
      const err = $(".error", node);
      err.textContent = "This result is no longer stored on the server (results are kept for a limited time). Upload the photo again to parse it.";
      err.hidden = false;
      return;
    }
    if (job.status !== "done" && job.status !== "failed") job = await pollJob(entry.jobId, (t) => setState(node, t));
    await finish(node, job, await savedPhoto(entry.jobId), entry.name, ctx);
  }, () => restore(node, entry, ctx));
}

/** Cards for the jobs this browser remembers, newest first, each fetched again from the server. */
export function restoreJobs(ctx) {
  for (const entry of savedJobs()) {
    if (document.querySelector(`.job[data-job-id="${entry.jobId}"]`)) continue;  // already on the page
    const node = newCard(entry.name, "bottom");
    node.dataset.jobId = entry.jobId;
    node.dataset.restored = "true";
    restore(node, entry, ctx);
  }
}
