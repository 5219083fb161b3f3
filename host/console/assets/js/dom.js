// DOM helpers. Invariant: text is only ever put in the page as text nodes (no HTML
// parsing of strings anywhere in the console), so whatever a tenant or a function
// wrote (names, logs, model metadata) shows as text.

/**
 * h('div', {class: 'x', 'data-action': 'deploy', onclick: fn, disabled: true}, 'text', child, [more])
 * Attributes are set with setAttribute (never `style`, which the CSP refuses: use classes);
 * `on*` functions become listeners; strings and numbers become text nodes.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Like h(), in the SVG namespace (charts). */
export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  append(el, children);
  return el;
}

function apply(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' && 'checked' in el) {
      el.checked = !!v;
    } else if (k === 'style') {
      throw new Error('inline styles are refused by the console CSP: use a class');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * A table: columns [{label, value: row => text|Node, class?}], rows []. `empty` shows
 * when there are no rows. Rows get `data-row` = rowKey(row) when given.
 */
export function table(columns, rows, { empty = 'Nothing here yet.', rowKey, cls } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('table', { class: ['grid', cls] },
    h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class }, c.label)))),
    h('tbody', null, rows.map((r) => h('tr', { 'data-row': rowKey ? rowKey(r) : null },
      columns.map((c) => h('td', { class: c.class }, c.value(r)))))));
}

/** A titled section with optional actions at the right of its heading. */
export function section(title, actions, ...body) {
  return h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', null, title), h('div', { class: 'actions' }, actions || [])),
    body);
}

/** The page heading of a view. */
export function pageHead(title, subtitle, actions) {
  return h('div', { class: 'page-head' },
    h('div', null, h('h1', null, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    h('div', { class: 'actions' }, actions || []));
}

export function button(label, onclick, { action, kind = '', disabled, title } = {}) {
  return h('button', { type: 'button', class: ['btn', kind], 'data-action': action, onclick, disabled, title }, label);
}

/** Runs an async click handler with the button disabled; errors become a toast. */
export function busy(btn, fn) {
  return async (ev) => {
    btn.disabled = true;
    try { await fn(ev); } catch (e) { toast(errorText(e), 'error'); } finally { btn.disabled = false; }
  };
}

export function errorText(e) {
  if (!e) return 'unknown error';
  if (e.name === 'ApiError') return `${e.message} (${e.code}${e.status ? `, HTTP ${e.status}` : ''})`;
  return e.message || String(e);
}

/** An error box for a failed load. */
export function errorBox(e) {
  return h('div', { class: 'error-box', role: 'alert', 'data-error-code': e && e.code },
    h('strong', null, 'Error: '), errorText(e),
    e && e.requestId ? h('div', { class: 'muted small' }, `request id ${e.requestId}`) : null);
}

let toastHost = null;
/** A short message at the corner of the page. kind: '' | 'ok' | 'error'. */
export function toast(message, kind = '') {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', 'aria-live': 'polite' });
    document.body.appendChild(toastHost);
  }
  const t = h('div', { class: ['toast', kind], role: kind === 'error' ? 'alert' : 'status' }, message);
  toastHost.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * A modal dialog. Resolves with what an action's handler returns (or null when closed).
 * actions: [{label, kind, action, run: async () => value | undefined (keep open)}].
 */
export function modal(title, body, actions = []) {
  return new Promise((resolve) => {
    const close = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    const dlg = h('dialog', { class: 'modal', 'data-modal': title },
      h('h2', null, title),
      h('div', { class: 'modal-body' }, body),
      h('div', { class: 'modal-actions' },
        actions.map((a) => {
          const b = button(a.label, null, { kind: a.kind, action: a.action });
          b.addEventListener('click', busy(b, async () => {
            const v = a.run ? await a.run() : true;
            if (v !== undefined) close(v);
          }));
          return b;
        }),
        button('Close', () => close(null), { action: 'close' })));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); close(null); });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

/** Asks before a destructive action. */
export function confirmAction(title, text, label = 'Delete') {
  return modal(title, h('p', null, text), [{ label, kind: 'danger', action: 'confirm', run: async () => true }]);
}

/** Preformatted text with a copy button. */
export function codeBlock(text, { lang } = {}) {
  const pre = h('pre', { class: 'code', 'data-lang': lang }, h('code', null, text));
  const copy = button('Copy', async () => {
    await navigator.clipboard.writeText(text).then(() => toast('Copied', 'ok'), () => toast('Copy failed', 'error'));
  }, { kind: 'small ghost', action: 'copy' });
  return h('div', { class: 'code-wrap' }, copy, pre);
}

/** Tabs: [{label, render: () => Node}]; the first is shown. */
export function tabs(items, { name } = {}) {
  const body = h('div', { class: 'tab-body' });
  const bar = h('div', { class: 'tabs', role: 'tablist', 'data-tabs': name });
  const show = (i) => {
    [...bar.children].forEach((b, j) => b.setAttribute('aria-selected', String(i === j)));
    replace(body, items[i].render());
  };
  items.forEach((it, i) => bar.appendChild(h('button', { type: 'button', role: 'tab', class: 'tab', 'data-tab': it.label, onclick: () => show(i) }, it.label)));
  const root = h('div', { class: 'tabbed' }, bar, body);
  if (items.length) show(0);
  return root;
}

/** A labelled form field around an input. */
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
}

/** A progress bar; returns {el, set(fraction)}. */
export function progress() {
  const bar = h('progress', { max: '100', value: '0', class: 'progress' });
  return { el: bar, set: (f) => { bar.value = Math.max(0, Math.min(100, Math.round(f * 100))); } };
}

export const fmt = {
  /** Unix seconds, milliseconds or RFC 3339 -> local date and time. */
  time(t) {
    if (t === undefined || t === null || t === '') return '';
    let d;
    if (typeof t === 'number') d = new Date(t < 1e11 ? t * 1000 : t < 1e14 ? t : t / 1e6);
    else d = new Date(t);
    return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
  },
  ago(unixSecs) {
    const s = Math.max(0, Math.round(Date.now() / 1000 - unixSecs));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  },
  bytes(n) {
    if (n === undefined || n === null) return '';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i += 1; }
    return `${i ? v.toFixed(1) : v} ${u[i]}`;
  },
  ms(n) { return n === undefined || n === null ? '' : `${Number(n).toFixed(n < 10 ? 1 : 0)} ms`; },
  num(n, digits = 0) {
    if (n === undefined || n === null || Number.isNaN(Number(n))) return '';
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
  },
  money(n) { return n === undefined || n === null ? '' : `$${Number(n).toFixed(n < 1 ? 4 : 2)}`; },
  json(v) { return JSON.stringify(v, null, 2); },
};

/** A small pill: `badge('active', 'ok')`. */
export function badge(text, kind = '') {
  return h('span', { class: ['badge', kind] }, text);
}

/** Reads a File as an ArrayBuffer. */
export function readFile(file) {
  return file.arrayBuffer();
}
