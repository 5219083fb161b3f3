// SVG charts (usage). Drawn with svg() from dom.js: no library, no inline styles (the
// series colours are the classes s0..s5 of console.css).

import { h, svg } from './dom.js';

const W = 560;
const H = 220;
const PAD = { left: 56, right: 14, top: 22, bottom: 26 };
const SERIES_CLASSES = 6;

/** 1, 2 or 5 times a power of ten, about `span / count`. */
function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function pad2(n) { return String(n).padStart(2, '0'); }

/** A time tick label: dates for spans of days, hours:minutes below. */
function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs > 2 * 86400e3) return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

function defaultFormat(v) {
  return Number(v).toLocaleString(undefined, { maximumFractionDigits: 2 });
}

/**
 * A line chart over time.
 * series: [{label, points: [{t (ms or Date), v (number, or null for no data)}]}];
 * opts: {yLabel, format (value -> text, for ticks and point titles), empty}.
 * Returns a <figure>: the SVG (axes, ticks, one <path> per series with class sN, a
 * <circle> with a <title> per point) and a legend. A null value breaks the line.
 */
export function lineChart(series, { yLabel = '', format = defaultFormat, empty = 'No data in this range.' } = {}) {
  const pts = series.flatMap((s) => s.points.filter((p) => p.v !== null && p.v !== undefined));
  const times = series.flatMap((s) => s.points.map((p) => +p.t));
  if (!pts.length || !times.length) {
    return h('figure', { class: 'chart-box', 'data-chart': yLabel }, h('p', { class: 'empty' }, empty));
  }
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const vmax = Math.max(0, ...pts.map((p) => p.v));
  const vmin = Math.min(0, ...pts.map((p) => p.v));
  // Counts (every value whole) get whole ticks: no "1, 1, 2, 2" from rounded halves.
  const whole = pts.every((p) => Number.isInteger(p.v));
  const ystep = whole ? Math.max(1, niceStep((vmax - vmin) || 1, 4)) : niceStep((vmax - vmin) || 1, 4);
  const ylo = Math.floor(vmin / ystep) * ystep;
  const yhi = Math.max(ylo + ystep, Math.ceil(vmax / ystep) * ystep);
  // The left margin fits the longest tick label (about 6 px per character at 10 px).
  const labels = [];
  for (let v = ylo; v <= yhi + ystep / 2; v += ystep) labels.push(format(v));
  const left = Math.max(PAD.left, 12 + 6 * Math.max(...labels.map((l) => String(l).length)));
  const x = (t) => left + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (W - left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - ylo) / (yhi - ylo)) * (H - PAD.top - PAD.bottom);

  const grid = [];
  labels.forEach((label, i) => {
    const v = ylo + i * ystep;
    grid.push(svg('line', { class: 'grid-line', x1: left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    grid.push(svg('text', { x: left - 6, y: y(v) + 3, 'text-anchor': 'end' }, label));
  });
  const xticks = [];
  // Up to five ticks, on points' own times (whole minutes, hours or days).
  const uniq = [...new Set(times)].sort((a, b) => a - b);
  const n = Math.min(5, uniq.length);
  for (let i = 0; i < n; i += 1) {
    const t = n === 1 ? t0 : uniq[Math.round((i * (uniq.length - 1)) / (n - 1))];
    const anchor = n === 1 ? 'middle' : i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
    xticks.push(svg('line', { class: 'axis', x1: x(t), x2: x(t), y1: H - PAD.bottom, y2: H - PAD.bottom + 4 }));
    xticks.push(svg('text', { x: x(t), y: H - PAD.bottom + 15, 'text-anchor': anchor }, timeLabel(t, t1 - t0)));
  }

  const lines = series.map((s, i) => {
    const cls = `s${i % SERIES_CLASSES}`;
    let d = '';
    let pen = false;
    const dots = [];
    for (const p of s.points) {
      if (p.v === null || p.v === undefined) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${x(+p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
      // Every point has a dot carrying its <title> (hover, screen readers); zeros stay
      // invisible so a mostly idle series reads as a line.
      dots.push(svg('circle', { class: ['pt', cls, p.v === 0 && 'zero'], cx: x(+p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5 },
        svg('title', null, `${s.label} · ${new Date(+p.t).toLocaleString()}: ${format(p.v)}`)));
    }
    return svg('g', { class: 'series', 'data-series': s.label },
      d ? svg('path', { class: ['line', cls], d }) : null, dots);
  });

  const chart = svg('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `${yLabel} over time: ${series.map((s) => s.label).join(', ')}`,
  },
  grid,
  svg('line', { class: 'axis', x1: left, x2: left, y1: PAD.top, y2: H - PAD.bottom }),
  svg('line', { class: 'axis', x1: left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }),
  xticks,
  yLabel ? svg('text', { class: 'y-label', x: 4, y: 11 }, yLabel) : null,
  lines);

  const legend = h('figcaption', { class: 'legend' }, series.map((s, i) => h('span', { class: 'legend-item' },
    h('span', { class: ['swatch', `s${i % SERIES_CLASSES}`] }), s.label)));
  return h('figure', { class: 'chart-box', 'data-chart': yLabel }, chart, legend);
}
