// The console shell: sign-in, the layout (header, navigation), the hash router and
// role-shaped navigation. Views live in views/*.js; each exports `routes`:
//   { path: 'functions/:name', title, needs: 'read'|'invoke'|'deploy'|'manage'|'platform',
//     nav: {group, label, order} (optional), render: async (ctx) => Node }
// ctx: { params, query, onLeave(fn), navigate(hash), rerender() }.
// When a view has rendered, <html data-ready="{path}"> is set (tests and load timing
// wait for it); while loading it is removed.

import { api, session, can, isPlatformAdmin, ApiError, enc } from './api.js';
import { h, replace, errorBox, button, field, toast, errorText } from './dom.js';
import * as functions from './views/functions.js';
import * as models from './views/models.js';
import * as keys from './views/keys.js';
import * as events from './views/events.js';
import * as audit from './views/audit.js';
import * as usage from './views/usage.js';
import * as playground from './views/playground.js';
import * as admin from './views/admin.js';

const ROUTES = [functions, models, keys, events, audit, usage, playground, admin].flatMap((m) => m.routes || []);
const GROUPS = ['Tenant', 'Playground', 'Platform'];

const root = document.getElementById('app');
let leaving = [];
let renderSeq = 0;

function allowed(route) {
  if (route.needs === 'platform') return isPlatformAdmin();
  if (route.needs === 'tenant') return !!session.tenant;
  if (!session.tenant && route.needs !== 'none') return false;
  return can(route.needs || 'read');
}

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const r of ROUTES) {
    const rp = r.path.split('/').filter(Boolean);
    if (rp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < rp.length; i += 1) {
      if (rp[i].startsWith(':')) params[rp[i].slice(1)] = decodeURIComponent(parts[i]);
      else if (rp[i] !== parts[i]) { ok = false; break; }
    }
    if (ok) return { route: r, params };
  }
  return null;
}

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  return { path: path || '', query: Object.fromEntries(new URLSearchParams(qs || '')) };
}

export function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function defaultPath() {
  const first = ROUTES.filter((r) => r.nav && allowed(r))
    .sort((a, b) => GROUPS.indexOf(a.nav.group) - GROUPS.indexOf(b.nav.group) || a.nav.order - b.nav.order)[0];
  return first ? first.path : 'playground/chat';
}

// ---- sign-in ----

function loginPage(message) {
  const input = h('textarea', {
    id: 'credential', name: 'credential', rows: '3', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'hfk_... API key, a JWT, or the platform admin key',
  });
  const err = h('div', { class: 'login-error', role: 'alert' }, message || '');
  const submit = button('Sign in', null, { kind: 'primary', action: 'login' });
  const form = h('form', { class: 'login-card', 'data-view': 'login' },
    h('div', { class: 'brand big' }, h('img', { src: '/console/favicon.svg', alt: '' }), 'HelixFlow'),
    h('p', { class: 'muted' }, 'Sign in with an API key or a JWT. It is kept in this tab only (session storage) and sent to this node\'s API as a Bearer token.'),
    field('Credential', input), err, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = input.value.trim();
    if (!c) { err.textContent = 'Paste an API key or a JWT.'; return; }
    submit.disabled = true;
    session.credential = c;
    try {
      await signIn();
      if (!parseHash().path || parseHash().path === 'login') navigate(`#/${defaultPath()}`);
      else render();
    } catch (ex) {
      session.clear();
      err.textContent = ex instanceof ApiError && ex.status === 401
        ? `That credential was refused (${ex.code}).` : errorText(ex);
      submit.disabled = false;
    }
  });
  submit.addEventListener('click', () => form.requestSubmit());
  replace(root, h('div', { class: 'login' }, form));
  document.documentElement.dataset.ready = 'login';
  input.focus();
}

async function signIn() {
  // A 401 here is handled by the callers (the sign-in form, render), not by api.js.
  const who = await api.get('/api/v1/whoami', { signingIn: true });
  session.who = who;
  if (who.tenant) session.tenant = who.tenant;
  else if (!session.tenant) {
    const list = await tenantList();
    if (list.length) session.tenant = list[0];
  }
}

/** The platform admin's tenant names, fetched once per session (session.tenantsCache). */
async function tenantList() {
  if (!session.tenantsCache) session.tenantsCache = tenantNames(await api.get('/api/v1/tenants'));
  return session.tenantsCache;
}

export function tenantNames(resp) {
  const list = Array.isArray(resp) ? resp : (resp && resp.tenants) || [];
  return list.map((t) => (typeof t === 'string' ? t : t.name)).filter(Boolean).sort();
}

function signOut() {
  session.clear();
  window.location.hash = '';
  loginPage();
}

// ---- layout ----

async function tenantPicker() {
  if (!isPlatformAdmin()) {
    return h('span', { class: 'tenant', 'data-tenant': session.tenant }, session.tenant);
  }
  const sel = h('select', { id: 'tenant-picker', 'aria-label': 'Tenant' });
  try {
    const names = await tenantList();
    for (const n of names) sel.appendChild(h('option', { value: n }, n));
    sel.value = session.tenant || '';
  } catch (e) {
    sel.appendChild(h('option', { value: '' }, '(tenants unavailable)'));
  }
  sel.addEventListener('change', () => {
    session.tenant = sel.value;
    // A detail page (functions/:name, models/:name) names something of the old tenant:
    // go to its section's list in the new one instead.
    const m = match(parseHash().path);
    if (m && m.route.path.includes('/:')) navigate(`#/${m.route.path.split('/:')[0]}`);
    else render();
  });
  return sel;
}

function navFor(current) {
  const nav = h('nav', { class: 'side', 'aria-label': 'Main' });
  for (const g of GROUPS) {
    const items = ROUTES.filter((r) => r.nav && r.nav.group === g && allowed(r)).sort((a, b) => a.nav.order - b.nav.order);
    if (!items.length) continue;
    nav.appendChild(h('div', { class: 'nav-group' }, g));
    for (const r of items) {
      const active = current && (current.path === r.path || current.path.startsWith(`${r.path}/`));
      nav.appendChild(h('a', { href: `#/${r.path}`, class: ['nav-item', active && 'active'], 'data-nav': r.path }, r.nav.label));
    }
  }
  if (isPlatformAdmin()) {
    nav.appendChild(h('a', { class: 'nav-item', href: '#/admin/metrics', 'data-nav': 'metrics-link' }, '/metrics'));
  }
  return nav;
}

/** Lays out the page for `current`; null when render `seq` has been superseded meanwhile. */
async function shell(current, seq) {
  const who = session.who;
  const header = h('header', { class: 'top' },
    h('a', { class: 'brand', href: '#/' }, h('img', { src: '/console/favicon.svg', alt: '' }), 'HelixFlow'),
    h('div', { class: 'who' },
      h('span', { class: 'muted' }, 'tenant'), await tenantPicker(),
      h('span', { class: ['badge', 'role'], 'data-role': who.role, title: who.subject }, who.tenant ? who.role : 'platform admin'),
      h('span', { class: 'muted small subject' }, who.subject),
      button('Sign out', signOut, { kind: 'ghost small', action: 'logout' })));
  if (seq !== renderSeq) return null;
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(root, header, h('div', { class: 'body' }, navFor(current && current.route), main));
  return main;
}

// ---- routing ----

function leave() {
  const fs = leaving;
  leaving = [];
  for (const f of fs) { try { f(); } catch (_) { /* a view's cleanup */ } }
}

async function render() {
  const seq = ++renderSeq;
  leave();
  delete document.documentElement.dataset.ready;
  if (!session.credential) { loginPage(); return; }
  if (!session.who) {
    try { await signIn(); } catch (e) {
      session.clear();
      loginPage(e instanceof ApiError && e.status === 401 ? 'Your credential was refused; sign in again.' : errorText(e));
      return;
    }
  }
  const { path, query } = parseHash();
  if (!path) { navigate(`#/${defaultPath()}`); return; }
  const m = match(path);
  const main = await shell(m, seq);
  if (!main || seq !== renderSeq) return;
  if (!m) {
    replace(main, errorBox(new Error(`No page at #/${path}.`)));
    document.documentElement.dataset.ready = 'not-found';
    return;
  }
  if (!allowed(m.route)) {
    replace(main, h('div', { class: 'error-box', 'data-error-code': 'forbidden' },
      `Your role (${session.who.role}) cannot open ${m.route.title}.`));
    document.documentElement.dataset.ready = m.route.path;
    return;
  }
  document.title = `${m.route.title} · HelixFlow`;
  main.dataset.view = m.route.path;
  replace(main, h('div', { class: 'loading' }, 'Loading…'));
  const ctx = {
    params: m.params,
    query,
    // A superseded render's cleanups run at once (its page is already gone).
    onLeave: (f) => (seq === renderSeq ? leaving.push(f) : f()),
    navigate,
    rerender: render,
    isCurrent: () => seq === renderSeq,
  };
  try {
    const node = await m.route.render(ctx);
    if (seq !== renderSeq) return;
    replace(main, node);
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e instanceof ApiError && e.status === 401) { session.clear(); loginPage('Your credential expired or was revoked; sign in again.'); return; }
    replace(main, errorBox(e));
  }
  document.documentElement.dataset.ready = m.route.path;
}

window.addEventListener('hashchange', render);
// api.js: a request was answered 401 (the credential expired or was revoked).
window.addEventListener('helixflow:signed-out', () => {
  renderSeq += 1; // a render in progress must not draw over the sign-in page
  leave();
  loginPage('Your credential expired or was revoked; sign in again.');
});
window.addEventListener('unhandledrejection', (e) => {
  toast(errorText(e.reason), 'error');
});
render();


