// Show a finished job: fetch result.json and the two id maps, build the viewer and its panels.
import { $ } from "./dom.js";
import { downloadList, fetchJson, wireViewTabs } from "./card.js";
import { fetchIdMap } from "./png.js";
import { Viewer } from "./viewer.js";
import { fillDownloads, fillLegend, fillPeople } from "./panels.js";
import { wireTryon } from "./tryon.js";

/** names[id] for hover text: the server's full label list (config), else the result's own legend. */
function partNames(config, doc) {
  const names = [];
  for (const l of (config && config.labels) || doc.legend || []) if (Number.isInteger(l.id)) names[l.id] = String(l.name);
  return names;
}

function wireControls(node, viewer, showTryon) {
  wireViewTabs(node, viewer, (view) => {
    const tryon = view === "tryon";
    for (const sel of [".stage", ".hover"]) $(sel, node).hidden = tryon;
    $(".tryon", node).hidden = !tryon;
    if (tryon) showTryon(); else viewer.setView(view);
  });
}

function wireHover(node, viewer) {
  const canvas = viewer.canvas, tip = $(".tip", node), hover = $(".hover", node);
  const describe = (ev) => {
    const text = viewer.describeAt(ev.clientX, ev.clientY);
    if (text === null) return;
    const r = canvas.getBoundingClientRect();
    tip.textContent = text; tip.hidden = false;
    tip.style.left = `${ev.clientX - r.left + 12}px`; tip.style.top = `${ev.clientY - r.top + 12}px`;
    hover.textContent = text;
  };
  canvas.onmousemove = describe;
  canvas.onclick = describe;
  canvas.onmouseleave = () => { tip.hidden = true; };
}

/** Fill a job card's result area from a `done` job status (results = presigned URLs by file name). photo: the
 * File or Blob (null for a restored card whose photo the browser no longer holds: no Original view then). */
export async function showResult(node, photo, job, config, name) {
  const [doc, labels, persons] = await Promise.all([
    fetchJson(job.results["result.json"]), fetchIdMap(job.results["label.png"]), fetchIdMap(job.results["persons.png"])]);
  const canvas = $(".view", node);
  const viewer = await Viewer.create(canvas, labels, persons, photo, partNames(config, doc));
  $("button[data-view='original']", node).hidden = !photo;
  $("button[data-view='tryon']", node).hidden = false;
  const stem = name.replace(/\.[^.]+$/, "");
  wireControls(node, viewer, wireTryon(node, job.job_id, job.results, Array.isArray(doc.persons) ? doc.persons : [], stem));
  wireHover(node, viewer);
  fillLegend($(".legend", node), Array.isArray(doc.legend) ? doc.legend : [], labels.palette, (id, on) => viewer.toggleLabel(id, on));
  fillPeople($(".people", node), Array.isArray(doc.persons) ? doc.persons : [], persons.palette, (id, on) => viewer.togglePerson(id, on));
  fillDownloads($(".downloads", node), job.results, stem, downloadList(config, "photo", job.results));
  canvas.dataset.width = viewer.W; canvas.dataset.height = viewer.H;
  $(".result", node).hidden = false;
  viewer.render();
  node.viewer = viewer;  // for tests and the console
  node.dataset.ready = "1";
}
