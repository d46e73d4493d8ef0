// The try-on tab of a result card: one person's inpainting mask and agnostic image for a garment category
// (docs/tryon.md), drawn on canvases and saved as named files. The images are the job's own files when the
// deployment stores them (job_tryon_masks), else GET /jobs/{id}/tryon: the server draws them from the job's stored
// parse and photo, so nothing is parsed or sent again (a 12 MP phone photo is over POST /parse's body cap). An image
// over the API's response cap comes as a signed link (large=url), fetched straight from the results bucket.
// Elements and textContent only.
import { $, $$, el } from "./dom.js";
import { API, friendly, getToken } from "./api.js";
import { saveBlob } from "./panels.js";

const CATEGORIES = [["upper_body", "Upper body"], ["lower_body", "Lower body"], ["dresses", "Dress"],
  ["full_body", "Full body"]];
const IMAGES = ["mask", "agnostic"];

const fileName = (category, person, image) => `tryon.${category}.p${person}.${image}.png`;

async function failure(res) {
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  const code = body && body.error, detail = body && typeof body.detail === "string" ? body.detail : "";
  return new Error(friendly(code, detail) || `The try-on image could not be made (${res.status}).`);
}

/** One try-on PNG as a Blob: the job's stored file, else drawn by the server from the job's stored parse. */
async function fetchImage(jobId, results, category, person, image) {
  const stored = results[fileName(category, person, image)];
  let res;
  if (stored) {
    res = await fetch(stored);
  } else {
    const headers = new Headers();
    const token = getToken();
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const query = new URLSearchParams({ category, person: String(person), image, large: "url" });
    res = await fetch(`${API}/jobs/${encodeURIComponent(jobId)}/tryon?${query}`, { headers });
    if (res.ok && (res.headers.get("Content-Type") || "").startsWith("application/json")) {
      const link = await res.json();  // over the response cap: a signed GET of the file the server stored
      res = await fetch(link.url);
    }
  }
  if (!res.ok) throw await failure(res);
  return res.blob();
}

async function draw(canvas, blob) {
  const bmp = await createImageBitmap(blob);
  canvas.width = bmp.width; canvas.height = bmp.height;
  canvas.getContext("2d").drawImage(bmp, 0, 0);
  bmp.close();
}

/** Wire the try-on panel of a result card. jobId: the job's id; results: its signed result URLs by name;
 * persons: result.json's persons; stem: the photo's name without its extension (downloads are
 * `<stem>.tryon.<category>.p<k>.<image>.png`). Returns `show()` for the tab. */
export function wireTryon(node, jobId, results, persons, stem) {
  const box = $(".tryon", node), note = $(".tryon-note", box);
  const personSel = $(".tryon-person", box), categorySel = $(".tryon-category", box);
  const ids = persons.map((p) => p.id).filter((id) => Number.isInteger(id) && id > 0 && id < 256);
  personSel.replaceChildren(...ids.map((id) => el("option", { value: String(id), text: `Person ${id}` })));
  categorySel.replaceChildren(...CATEGORIES.map(([v, t]) => el("option", { value: v, text: t })));
  const blobs = {};
  let asked = 0, loaded = false;
  const say = (text, bad = false) => { note.textContent = text; note.classList.toggle("error", bad); };

  async function load() {
    const mine = ++asked, category = categorySel.value, person = Number(personSel.value);
    delete box.dataset.ready;
    $$(".tryon-save", box).forEach((b) => { b.disabled = true; });
    if (!ids.length) { say("No person was found in this photo, so there is nothing to mask.", true); return; }
    say("Making the mask…");
    try {
      for (const image of IMAGES) {
        const blob = await fetchImage(jobId, results, category, person, image);
        if (mine !== asked) return;  // another person or category was picked meanwhile
        await draw($(`.tryon-${image}`, box), blob);
        blobs[image] = { blob, name: `${stem}.${fileName(category, person, image)}` };
      }
    } catch (e) {
      if (mine === asked) say(e.message || "The try-on image could not be made.", true);
      return;
    }
    say("White is the region a try-on model repaints; the agnostic image is the photo with it grey.");
    $$(".tryon-save", box).forEach((b) => { b.disabled = false; });
    box.dataset.ready = `${category}.p${person}`;
  }

  personSel.onchange = load;
  categorySel.onchange = load;
  $$(".tryon-save", box).forEach((b) => {
    b.onclick = () => { const got = blobs[b.dataset.image]; if (got) saveBlob(got.blob, got.name); };
  });
  return () => { if (!loaded) { loaded = true; load(); } };
}
