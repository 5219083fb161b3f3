// Image -> EfficientNet-Lite0 input, in JavaScript, the same way functions/classify-image
// does it in Rust with the `image` crate: decode to 8-bit RGB, resize the shorter side to
// 256 with the triangle (bilinear, antialiased) filter, centre-crop 224x224, scale with
// (x - 127) / 128, NCHW float32.
//
// The resize is a line-by-line port of image 0.25's `imageops::resize` (a vertical pass
// into f32 RGBA, then a horizontal pass rounded to u8), with f32 arithmetic
// (`Math.fround`), so from the same decoded pixels it gives the same bytes. PNG decoding
// is lossless (fast-png); baseline and progressive JPEG decode with jpeg-js, whose IDCT
// and chroma upsampling differ slightly from zune-jpeg's (the Rust function's decoder).

import { decode as decodePng, convertIndexedToRgb } from 'fast-png';
import jpeg from 'jpeg-js';

export const SIZE = 224;
/** Largest accepted image, pixels (decoding cost and memory stay bounded). */
export const MAX_PIXELS = 40_000_000;

/** A bad image: the function answers 400 with this message. */
export class ImageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ImageError';
  }
}

const f = Math.fround;

function isPng(b) {
  return b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
}
function isJpeg(b) {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function checkSize(w, h) {
  if (w === 0 || h === 0 || w * h > MAX_PIXELS) {
    throw new ImageError(`image of ${w}x${h} pixels is empty or larger than ${MAX_PIXELS} pixels`);
  }
}

/** PNG -> {width, height, rgb: Uint8Array} (alpha dropped, 16-bit scaled, gray expanded). */
function pngToRgb(bytes) {
  if (bytes.length < 24) throw new ImageError('unreadable image: truncated PNG header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  checkSize(dv.getUint32(16), dv.getUint32(20));
  let png;
  try {
    png = decodePng(bytes);
  } catch (e) {
    throw new ImageError(`cannot decode image: ${e.message}`);
  }
  const { width, height } = png;
  let data = png.data;
  let channels = png.channels;
  if (png.palette) {
    data = convertIndexedToRgb(png);
    channels = png.palette[0].length;
  } else if (png.depth === 16) {
    const d8 = new Uint8Array(data.length);
    // image's u16 -> u8: round(v / 257)
    for (let i = 0; i < data.length; i++) d8[i] = Math.round(data[i] / 257);
    data = d8;
  } else if (png.depth !== 8) {
    throw new ImageError(`unsupported PNG: ${png.depth}-bit grayscale`);
  }
  const rgb = new Uint8Array(width * height * 3);
  const n = width * height;
  if (channels === 3) {
    rgb.set(data.subarray(0, n * 3));
  } else if (channels === 4) {
    for (let i = 0; i < n; i++) {
      rgb[i * 3] = data[i * 4];
      rgb[i * 3 + 1] = data[i * 4 + 1];
      rgb[i * 3 + 2] = data[i * 4 + 2];
    }
  } else if (channels === 1 || channels === 2) {
    for (let i = 0; i < n; i++) {
      const v = data[i * channels];
      rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = v;
    }
  } else {
    throw new ImageError(`unsupported PNG: ${channels} channels`);
  }
  return { width, height, rgb };
}

function jpegToRgb(bytes) {
  let img;
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: MAX_PIXELS / 1e6,
      maxMemoryUsageInMB: 1024,
    });
  } catch (e) {
    const msg = String(e?.message ?? e);
    if (/maxResolutionInMP|resolution/i.test(msg)) throw new ImageError(`image larger than ${MAX_PIXELS} pixels`);
    throw new ImageError(`cannot decode image: ${msg}`);
  }
  checkSize(img.width, img.height);
  return { width: img.width, height: img.height, rgb: img.data };
}

/** Decodes a JPEG or PNG to 8-bit RGB. */
export function decodeImage(bytes) {
  if (isPng(bytes)) return pngToRgb(bytes);
  if (isJpeg(bytes)) return jpegToRgb(bytes);
  throw new ImageError('not a JPEG or PNG image');
}

function triangle(x) {
  const a = Math.abs(x);
  return a < 1 ? f(1 - a) : 0;
}

/** image's filter weights for one output coordinate: [left, normalised f32 weights]. */
function weights(out, ratio, sratio, support, size) {
  const center = f(f(out + 0.5) * ratio);
  const left = Math.min(Math.max(Math.floor(f(center - support)), 0), size - 1);
  const right = Math.min(Math.max(Math.ceil(f(center + support)), left + 1), size);
  const c = f(center - 0.5);
  const ws = [];
  let sum = 0;
  for (let i = left; i < right; i++) {
    const w = triangle(f(f(i - c) / sratio));
    ws.push(w);
    sum = f(sum + w);
  }
  return [left, ws.map((w) => f(w / sum))];
}

/** image::imageops::resize(rgb, nw, nh, FilterType::Triangle) for 8-bit RGB. */
export function resizeTriangle({ width, height, rgb }, nw, nh) {
  if (nw === width && nh === height) return rgb;
  // Vertical pass: width x nh, f32 (image keeps 4 channels; RGB's 4th is unused).
  const tmp = new Float32Array(width * nh * 3);
  let ratio = f(height / nh);
  let sratio = ratio < 1 ? 1 : ratio;
  let support = f(1 * sratio);
  for (let y = 0; y < nh; y++) {
    const [top, ws] = weights(y, ratio, sratio, support, height);
    for (let x = 0; x < width; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let i = 0; i < ws.length; i++) {
        const p = ((top + i) * width + x) * 3;
        const w = ws[i];
        r = f(r + f(rgb[p] * w));
        g = f(g + f(rgb[p + 1] * w));
        b = f(b + f(rgb[p + 2] * w));
      }
      const o = (y * width + x) * 3;
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
    }
  }
  // Horizontal pass: nw x nh, rounded (half away from zero) and clamped to u8.
  const out = new Uint8Array(nw * nh * 3);
  ratio = f(width / nw);
  sratio = ratio < 1 ? 1 : ratio;
  support = f(1 * sratio);
  const round = (v) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v + 0.5));
  for (let x = 0; x < nw; x++) {
    const [left, ws] = weights(x, ratio, sratio, support, width);
    for (let y = 0; y < nh; y++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let i = 0; i < ws.length; i++) {
        const p = (y * width + left + i) * 3;
        const w = ws[i];
        r = f(r + f(tmp[p] * w));
        g = f(g + f(tmp[p + 1] * w));
        b = f(b + f(tmp[p + 2] * w));
      }
      const o = (y * nw + x) * 3;
      out[o] = round(r);
      out[o + 1] = round(g);
      out[o + 2] = round(b);
    }
  }
  return out;
}

/** JPEG/PNG bytes -> NCHW float32 [1, 3, 224, 224] for EfficientNet-Lite0. */
export function preprocess(bytes) {
  const img = decodeImage(bytes);
  const { width: w, height: h } = img;
  const scale = 256 / Math.min(w, h);
  const nw = Math.max(Math.round(w * scale), SIZE);
  const nh = Math.max(Math.round(h * scale), SIZE);
  const resized = resizeTriangle(img, nw, nh);
  const x0 = (nw - SIZE) >> 1;
  const y0 = (nh - SIZE) >> 1;
  const plane = SIZE * SIZE;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const p = ((y0 + y) * nw + x0 + x) * 3;
      for (let c = 0; c < 3; c++) out[c * plane + y * SIZE + x] = (resized[p + c] - 127) / 128;
    }
  }
  return out;
}
