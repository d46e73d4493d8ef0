// The page's memory across a reload, Back or a closed tab: the recent job ids (localStorage) and each photo
// (IndexedDB, as the File itself), so a result card can be shown again with its Original view. Results stay on
// the server; a job id whose results expired says so. Everything fails soft: private windows and full
// storage only mean nothing is remembered.

const KEY = "humanparse.jobs.keys";
const MAX = 12;  // cards brought back; older ones are forgotten (their photos deleted)
const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** [{jobId, name, type}] newest first, only well-formed entries (the storage is the user's to edit). */
export function savedJobs() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list.filter((e) => e && JOB_ID.test(e.jobId) && typeof e.name === "string") : [];
  } catch (e) {
    return [];
  }
}

function write(list) {
  try { localStorage.setItem(KEY, JSON.stringify(list)); } catch (e) { /* storage full or disabled */ }
}

/** Remember a job (and its photo, if given) at the top of the list. */
export function remember(entry, photo) {
  const list = savedJobs().filter((e) => e.jobId !== entry.jobId);
  list.unshift({ jobId: entry.jobId, name: entry.name, type: entry.type || "" });
  list.slice(MAX).forEach((e) => photos("delete", e.jobId));
  write(list.slice(0, MAX));
  if (photo) photos("put", entry.jobId, photo);
}

export function forget(jobId) {
  write(savedJobs().filter((e) => e.jobId !== jobId));
  photos("delete", jobId);
}

export const savedPhoto = (jobId) => photos("get", jobId);

let db = null;
function openDb() {
  if (!db) db = new Promise((resolve) => {
    try {
      const req = indexedDB.open("humanparse", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("photos");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(null);
    } catch (e) { resolve(null); }
  });
  return db;
}

/** One IndexedDB call on the photo store; resolves to its result, or null when storage is not there. */
async function photos(op, key, value) {
  const store = await openDb();
  if (!store) return null;
  return new Promise((resolve) => {
    try {
      const tx = store.transaction("photos", op === "get" ? "readonly" : "readwrite").objectStore("photos");
      const req = op === "put" ? tx.put(value, key) : tx[op](key);
      req.onsuccess = () => resolve(req.result || null);
      req.onerror = () => resolve(null);
    } catch (e) { resolve(null); }
  });
}
