// Read an indexed PNG (palette or grey, 1/2/4/8 bits, not interlaced) as its raw sample values, so the id maps
// (label.png: pixel = CIHP id, persons.png: pixel = person id) arrive as ids, not as colours to be guessed back.
// Decoding colours back to ids merged person 21 into person 1 (the person palette repeats after 20).

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

async function inflate(bytes) {
  // IDAT is a zlib stream, which is the Compression Streams "deflate" format.
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunks(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < 8; i++) if (bytes[i] !== SIGNATURE[i]) throw new Error("not a PNG");
  const out = { idat: [], plte: null, ihdr: null };
  for (let pos = 8; pos + 8 <= bytes.length;) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    if (data.length !== len) throw new Error("truncated PNG");
    if (type === "IHDR") out.ihdr = data;
    else if (type === "PLTE") out.plte = data;
    else if (type === "IDAT") out.idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  if (!out.ihdr || !out.idat.length) throw new Error("PNG without IHDR/IDAT");
  return out;
}

function paeth(a, b, c) {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undo the per-row filters: `raw` holds (1 filter byte + stride) bytes per row; returns stride × height bytes. */
function unfilter(raw, stride, height, bpp) {
  const rows = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride, up = dst - stride;
    if (f > 4) throw new Error(`bad PNG filter ${f}`);
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? rows[dst + x - bpp] : 0, b = y ? rows[up + x] : 0;
      const c = x >= bpp && y ? rows[up + x - bpp] : 0, v = raw[src + x];
      rows[dst + x] = f === 0 ? v : f === 1 ? v + a : f === 2 ? v + b : f === 3 ? v + ((a + b) >> 1)
        : v + paeth(a, b, c);
    }
  }
  return rows;
}

/**
 * Decode PNG bytes of colour type 3 (palette) or 0 (grey), bit depth ≤ 8.
 * Returns {width, height, data: Uint8Array(width*height) of sample values (ids), palette: Uint8Array(256*3) RGB}.
 */
export async function decodeIndexedPng(bytes) {
  const { ihdr, plte, idat } = chunks(bytes);
  const v = new DataView(ihdr.buffer, ihdr.byteOffset, ihdr.byteLength);
  const width = v.getUint32(0), height = v.getUint32(4), depth = ihdr[8], colorType = ihdr[9], interlace = ihdr[12];
  if ((colorType !== 3 && colorType !== 0) || depth > 8 || interlace !== 0)
    throw new Error(`not an id map (colour type ${colorType}, ${depth} bits, interlace ${interlace})`);
  const stride = Math.ceil(width * depth / 8);
  const joined = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  idat.reduce((off, d) => { joined.set(d, off); return off + d.length; }, 0);
  const raw = await inflate(joined);
  if (raw.length < (stride + 1) * height) throw new Error("truncated PNG data");
  const rows = unfilter(raw, stride, height, 1);
  const data = new Uint8Array(width * height);
  const perByte = 8 / depth, mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    const row = y * stride, out = y * width;
    if (depth === 8) { data.set(rows.subarray(row, row + width), out); continue; }
    for (let x = 0; x < width; x++) {
      const shift = 8 - depth * (1 + (x % perByte));
      data[out + x] = (rows[row + Math.floor(x / perByte)] >> shift) & mask;
    }
  }
  const palette = new Uint8Array(256 * 3);
  if (plte) palette.set(plte.subarray(0, Math.min(plte.length, palette.length)));
  else for (let i = 0; i < 256; i++) palette.fill(Math.round(i * 255 / mask), 3 * i, 3 * i + 3);  // grey
  return { width, height, data, palette };
}

/** Fetch and decode an id map (no credentials: results are presigned URLs). */
export async function fetchIdMap(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`Could not load a result map (${res.status}).`);
  return decodeIndexedPng(new Uint8Array(await res.arrayBuffer()));
}
