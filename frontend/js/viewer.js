// The parsed image on a canvas: photo, colour map or overlay, with parts and people switched on and off,
// and hover/tap naming the part and person under the pointer. All buffers are typed arrays made once per
// result; a render allocates nothing.

/** Photo pixels at the label map's size (W×H): the canvas and the id maps share one grid, whatever the
 * photo's own size (indexing a bigger photo with the label map's width sheared it). */
async function photoPixels(file, W, H) {
  const bitmap = await createImageBitmap(file);  // no object URL to leak
  try {
    const c = document.createElement("canvas");
    c.width = W; c.height = H;
    const g = c.getContext("2d", { willReadFrequently: true });
    g.drawImage(bitmap, 0, 0, W, H);
    return g.getImageData(0, 0, W, H).data;
  } finally {
    bitmap.close();
  }
}

export class Viewer {
  /**
   * canvas: the view; labels/persons: decoded id maps {width, height, data: Uint8Array(W*H), palette:
   * Uint8Array(768)}; photo: Uint8ClampedArray(W*H*4) RGBA at the same size; names[id]: part names.
   */
  constructor(canvas, labels, persons, photo, names) {
    if (persons.width !== labels.width || persons.height !== labels.height) throw new Error("id maps differ in size");
    this.canvas = canvas; this.labels = labels; this.persons = persons; this.photo = photo; this.names = names;
    this.W = labels.width; this.H = labels.height;
    canvas.width = this.W; canvas.height = this.H;
    this.g = canvas.getContext("2d");
    this.out = this.g.createImageData(this.W, this.H);
    this.showLabel = new Uint8Array(256).fill(1);   // by CIHP id
    this.showPerson = new Uint8Array(256).fill(1);  // by person id (0 = nobody, always shown)
    this.view = "overlay";
    this.alpha = 0.6;
    this.pending = 0;
  }

  static async create(canvas, labels, persons, file, names) {
    const pixels = file ? await photoPixels(file, labels.width, labels.height)
      : new Uint8ClampedArray(labels.width * labels.height * 4).fill(255);  // no photo kept: white behind the parts
    return new Viewer(canvas, labels, persons, pixels, names);
  }

  setView(view) { this.view = view; this.schedule(); }
  setAlpha(a) { this.alpha = a; this.schedule(); }
  toggleLabel(id, on) { this.showLabel[id] = on ? 1 : 0; this.schedule(); }
  togglePerson(id, on) { this.showPerson[id] = on ? 1 : 0; this.schedule(); }

  /** Coalesce bursts (slider drags) into one render per frame. */
  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.render(); });
  }

  render() {
    const a = this.view === "color" ? 1 : this.view === "original" ? 0 : this.alpha, b = 1 - a;
    const base = this.view === "color" ? null : this.photo;
    const lab = this.labels.data, per = this.persons.data, pal = this.labels.palette;
    const showL = this.showLabel, showP = this.showPerson, dst = this.out.data;
    for (let i = 0, k = 0, n = lab.length; i < n; i++, k += 4) {
      const id = lab[i];
      const r = base ? base[k] : 0, g = base ? base[k + 1] : 0, bl = base ? base[k + 2] : 0;
      if (id !== 0 && a > 0 && showL[id] && showP[per[i]]) {
        const c = 3 * id;
        dst[k] = r * b + pal[c] * a; dst[k + 1] = g * b + pal[c + 1] * a; dst[k + 2] = bl * b + pal[c + 2] * a;
      } else {
        dst[k] = r; dst[k + 1] = g; dst[k + 2] = bl;
      }
      dst[k + 3] = 255;
    }
    this.g.putImageData(this.out, 0, 0);
  }

  /** What is under a client point: "Background" or "<part> — person <id>"; null outside the image. */
  describeAt(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    const x = Math.floor((clientX - r.left) * this.W / r.width), y = Math.floor((clientY - r.top) * this.H / r.height);
    if (x < 0 || y < 0 || x >= this.W || y >= this.H) return null;
    const i = y * this.W + x, id = this.labels.data[i], person = this.persons.data[i];
    if (id === 0) return "Background";
    const name = this.names[id] || `Part ${id}`;
    return person ? `${name} — person ${person}` : name;
  }
}
