// Entry point: wire the drop zone and the token field, read the server's /config, start jobs.
import { $ } from "./dom.js";
import { api, authRequired, getToken, setToken } from "./api.js";
import { addJob, restoreJobs } from "./job.js";

const state = { config: null };
const ctx = { config: () => state.config, needToken };

function needToken() {
  const auth = $("#auth");
  auth.hidden = false; auth.open = true;
  $("#token").focus();
}

function wireToken() {
  const input = $("#token");
  input.value = getToken();
  $("#auth").hidden = !authRequired() && !input.value;
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    $("#token-state").textContent = input.value.trim() ? "Token saved for this tab." : "Token cleared.";
    loadConfig().then(() => state.config && restoreJobs(ctx));
  });
}

function wireDrop() {
  const drop = $("#drop"), input = $("#file");
  const add = (files) => [...files].forEach((f) => addJob(f, ctx));
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { add(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => add(e.dataTransfer.files));
}

async function loadConfig() {
  const line = $("#model-line");
  if (authRequired() && !getToken()) {  // ask first: a request bound to be refused would only log a 401
    state.config = null; needToken(); line.textContent = "This deployment needs an access token."; return;
  }
  try {
    state.config = await api("/config");
  } catch (e) {
    state.config = null;
    if (e.code === "unauthorized") { needToken(); line.textContent = e.message; return; }
    line.textContent = "The server is not reachable right now — uploads will fail until it is back.";
    return;
  }
  $("#max-mb").textContent = Math.round(state.config.max_upload_bytes / 1048576);
  if (state.config.video_max_bytes) {
    $("#video-max-mb").textContent = Math.round(state.config.video_max_bytes / 1048576);
    $("#video-max-s").textContent = Math.round(state.config.video_max_seconds);
  }
  const kind = (state.config.model_kinds || {})[state.config.model];  // the server's model registry
  line.textContent = `Model: ${kind ? kind.title : state.config.model}`;
}

wireDrop();
wireToken();
loadConfig().then(() => state.config && restoreJobs(ctx));  // the cards of earlier visits (reload, Back, a reopened tab)
