// The HTTP API: base URL from config.js, an optional bearer token, errors turned into plain words.

const CONFIG = window.HUMANPARSE_CONFIG || {};
export const API = (CONFIG.apiBase || "/api").replace(/\/$/, "");
const TOKEN_KEY = "humanparse.token";

export const plain = {
  too_large: "This file is too big.",
  unsupported_type: "That file type is not accepted — use a JPEG, PNG or WebP photo, or an MP4, MOV or WebM video.",
  not_a_video: "This file is not a video we can read.",
  truncated_video: "The video is damaged or incomplete.",
  audio_only: "This file has sound but no picture.",
  unsupported_codec: "The video's codec is not supported — use H.264, H.265, VP8 or VP9.",
  no_frames: "The video holds no frames.",
  corrupt_video: "Too many of the video's frames are damaged.",
  video_too_long: "The video is too long.",
  video_too_large: "This video file is too big.",
  chunk_failed: "Part of the video could not be processed; try again later.",
  not_an_image: "This file is not an image we can read.",
  truncated: "The image is damaged or incomplete.",
  too_small: "The image is too small to parse.",
  empty: "The file is empty.",
  unsupported_format: "That image format is not accepted — use JPEG, PNG or WebP.",
  unauthorized: "This deployment needs an access token — enter it under “Access token”.",
};

/** Plain words first; the server's detail only where its numbers help (sizes, limits) or for codes we do not know. */
export function friendly(code, detail) {
  if (!plain[code]) return detail || "";
  return ["too_large", "too_small", "video_too_long", "video_too_large"].includes(code) && detail ? `${plain[code]} (${detail})` : plain[code];
}

/** A failed job's message: `detail` (current servers) or `reason` (results written by older versions). */
export function jobFailure(job) {
  const detail = typeof job.detail === "string" ? job.detail : typeof job.reason === "string" ? job.reason : "";
  return friendly(job.error, detail) || "Parsing failed.";
}

// Token: typed into the page (kept for this tab only, in sessionStorage) or written into config.js at deploy time.
export const getToken = () => sessionStorage.getItem(TOKEN_KEY) || CONFIG.token || "";
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}
export const authRequired = () => Boolean(CONFIG.auth);

export class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

/** fetch(API + path) with the bearer token; resolves to the JSON body or throws ApiError in plain words. */
export async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const token = getToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let res;
  try {
    res = await fetch(API + path, { ...opts, headers });
  } catch (e) {
    throw new ApiError("Cannot reach the server. Is it running?", 0, "unreachable");
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const code = res.status === 401 ? "unauthorized" : body && body.error;
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    throw new ApiError(friendly(code, detail) || `Server error (${res.status}).`, res.status, code);
  }
  return body;
}
