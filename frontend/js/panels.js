// The side panels of a result: parts legend, people, downloads. Built from elements and textContent only.
import { el } from "./dom.js";
import { isWebUrl } from "./card.js";

const hexOf = (pal, i) => "#" + [0, 1, 2].map((c) => pal[3 * i + c].toString(16).padStart(2, "0")).join("");

function toggleRow(colour, label, extra, onChange) {
  const box = el("input", { type: "checkbox", checked: true });
  box.addEventListener("change", () => onChange(box.checked));
  const row = el("label", {}, box, el("span", { className: "sw", style: { background: colour } }), el("span", { text: label }));
  if (extra) row.append(el("span", { className: "share", text: extra }));
  return el("li", {}, row);
}

/** Legend rows from result.json's legend (id, name, share); the swatch colour is the label map's own palette. */
export function fillLegend(list, legend, palette, onToggle) {
  list.replaceChildren(...legend.filter((l) => Number.isInteger(l.id) && l.id > 0 && l.id < 256).map((l) =>
    toggleRow(hexOf(palette, l.id), l.name, `${(100 * Number(l.share || 0)).toFixed(1)}%`, (on) => onToggle(l.id, on))));
}

/** One row per person id of result.json, coloured as persons.png draws that id. */
export function fillPeople(list, persons, palette, onToggle) {
  const ids = persons.map((p) => p.id).filter((id) => Number.isInteger(id) && id > 0 && id < 256);
  if (!ids.length) { list.replaceChildren(el("li", { className: "muted", text: "No person found." })); return; }
  list.replaceChildren(...ids.map((id) => toggleRow(hexOf(palette, id), `Person ${id}`, "", (on) => onToggle(id, on))));
}

/** Save `url` as a file named `filename` and stay on the page. The link's `download` attribute is ignored for
 * another origin (the bucket), where a click used to open the raw file in place of the page: fetch it (the
 * results bucket allows the page's origin) and save the blob. */
async function save(url, filename) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(res.status === 403 || res.status === 404
    ? "This file is no longer stored on the server." : `The download failed (${res.status}).`);
  saveBlob(await res.blob(), filename);
}

/** Save bytes the page already holds (a try-on image) as a file named `filename`. */
export function saveBlob(blob, filename) {
  const blobUrl = URL.createObjectURL(blob);
  const a = el("a", { href: blobUrl, download: filename, hidden: true });
  document.body.append(a);
  try {
    a.click();
  } finally {
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 1000);  // after the browser has taken the file
  }
}

/** A download link: a plain link to `url` (copy / open in a new tab still work), a click saves `filename`. */
export function downloadLink(url, text, filename, title = "") {
  const a = el("a", { href: url, text, title, download: filename });
  a.addEventListener("click", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;  // a new tab or window: the browser's
    ev.preventDefault();
    const note = a.closest(".side") && a.closest(".side").querySelector(".download-note");
    if (note) note.hidden = true;
    save(url, filename).catch((e) => {
      if (note) { note.textContent = e.message || "The download failed."; note.hidden = false; }
    });
  });
  return a;
}

/** One link per entry [file, text, title] (card.js downloadList) that the job has, saving `<stem>.<file>`. A job
 * stored before the JPEG overlay has overlay.png in place of overlay.jpg: whichever is there is offered. */
export function fillDownloads(box, results, stem, entries, allowBlob = false) {
  box.replaceChildren(...entries.filter(([f]) => isWebUrl(results[f], allowBlob)).map(([f, t, title]) =>
    downloadLink(results[f], t, `${stem}.${f}`, title)));
}
