// Pieces every result card shares, photo or video: reading a result file, telling a usable link from a missing
// one, the view tabs with the opacity slider, and the download list the server's /config describes.
import { $, $$ } from "./dom.js";

/** The JSON body of a result file (a presigned URL of the results bucket); an Error in plain words otherwise. */
export async function fetchJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`Could not load the result (${res.status}).`);
  return res.json();
}

/** True for an http(s) URL (and, with allowBlob, a blob: URL of this page). A missing file (undefined) must not
 * count: new URL(undefined, base) resolves to ".../undefined". */
export function isWebUrl(u, allowBlob = false) {
  if (typeof u !== "string") return false;
  try {
    const scheme = new URL(u, location.href).protocol;
    return /^https?:$/.test(scheme) || (allowBlob && scheme === "blob:");
  } catch (e) {
    return false;
  }
}

/** The view tabs and the opacity slider of a card: a tab marks itself selected, shows the slider only for
 * Overlay and calls onView(view); the slider sets target.setAlpha(0..1). */
export function wireViewTabs(node, target, onView) {
  const tabs = $$(".tabs button", node), slider = $(".opacity input", node);
  tabs.forEach((b) => { b.onclick = () => {
    tabs.forEach((x) => x.setAttribute("aria-selected", String(x === b)));
    $(".opacity", node).hidden = b.dataset.view !== "overlay";
    onView(b.dataset.view);
  }; });
  target.setAlpha(slider.value / 100);
  slider.oninput = () => target.setAlpha(slider.value / 100);
}

/** The download list of a `kind` of job ("photo", "video"): the server's output table (config.downloads), in its
 * order; without a config (the server was not reachable at load) every result file, by its name. */
export function downloadList(config, kind, results) {
  const listed = config && config.downloads && config.downloads[kind];
  if (Array.isArray(listed)) return listed.map((d) => [String(d.name), String(d.title), String(d.hint || "")]);
  return Object.keys(results || {}).sort().map((name) => [name, name, ""]);
}
