// Presigned POST straight to the bucket (with progress), then polling the job until it is done or failed.
import { api } from "./api.js";

/** POST the file with the presigned fields. No Authorization header: S3 checks the policy signature. */
export function uploadWithProgress(url, fields, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    Object.entries(fields).forEach(([k, v]) => form.append(k, v));
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(100 * e.loaded / e.total); };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300) ? resolve() :
      reject(new Error(xhr.status === 400 || xhr.status === 403 ?
        "The storage refused this file (too big, wrong type, or changed while it was sent)." : `Upload failed (${xhr.status}).`));
    xhr.onerror = () => reject(new Error("The upload could not reach the storage. Check your connection."));
    xhr.send(form);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const GIVE_UP_MS = 10 * 60 * 1000;

/** Poll GET /jobs/{id} (backing off to 2 s) until done/failed; onState gets "parsing… N s" (a video: "parsing…
 * frame N of M") and the job's status document. */
export async function pollJob(jobId, onState) {
  const started = Date.now();
  for (let i = 0; ; i++) {
    const job = await api(`/jobs/${encodeURIComponent(jobId)}`);
    if (job.status === "done" || job.status === "failed") return job;
    const secs = Math.round((Date.now() - started) / 1000);
    onState(job.frames_total ? `parsing… frame ${job.frames_done || 0} of ${job.frames_total}, ${secs} s` : `parsing… ${secs} s`, job);
    if (Date.now() - started > (job.kind === "video" ? 6 * GIVE_UP_MS : GIVE_UP_MS)) throw new Error("This is taking too long. Try again later.");
    await sleep(Math.min(2000, 400 + i * 150));
  }
}

/** SHA-256 of the file as hex, or null where Web Crypto is missing (a page served over plain http from
 * another machine is not a secure context). subtle.digest is not streaming: it takes the whole file at once,
 * which for the 15 MB upload limit is one 15 MB buffer and ~0.1 s — fine; bigger inputs would need slices. */
export async function sha256Hex(file) {
  if (!(globalThis.crypto && crypto.subtle)) return null;
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Create the upload, send the file, wait for the job: resolves to the job's final status document.
 * With the file's SHA-256 the server may answer from its cache: the job is done and nothing is uploaded. */
export async function submit(file, { onProgress, onState }) {
  onState("checking…");
  // photos only: videos are not cached, and hashing one would hold up to 200 MB in memory for nothing
  const sha256 = file.type.startsWith("video/") ? null : await sha256Hex(file);
  const up = await api("/uploads", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ content_type: file.type, filename: file.name, size: file.size,
                           ...(sha256 ? { sha256 } : {}) }) });
  if (up.cached) {
    onState("from cache", up.job_id);
    return pollJob(up.job_id, (t) => onState(t, up.job_id));
  }
  onState("uploading…", up.job_id);
  await uploadWithProgress(up.upload.url, up.upload.fields, file, onProgress);
  onProgress(100);
  onState("parsing…", up.job_id);
  return pollJob(up.job_id, (t, job) => onState(t, up.job_id, job));
}
