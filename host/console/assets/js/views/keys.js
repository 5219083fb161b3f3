// Keys: the tenant's API keys and SigV4 access keys (tenant admins only). A new key's
// secret is shown once, in this page's memory only: it is gone on reload (the API keeps
// only its hash).

import { api, tenantPath, enc, session } from '../api.js';
import {
  h, replace, section, pageHead, table, button, busy, toast, confirmAction, field, fmt, badge,
} from '../dom.js';

const ROLES = ['admin', 'developer', 'invoker', 'viewer'];
const EXPIRY = [
  ['', 'never'], [String(86400), '1 day'], [String(7 * 86400), '7 days'],
  [String(30 * 86400), '30 days'], [String(90 * 86400), '90 days'], [String(365 * 86400), '1 year'],
];

function roleSelect(id, selected) {
  const s = h('select', { id, name: id }, ROLES.map((r) => h('option', { value: r }, r)));
  s.value = selected;
  return s;
}

function expirySelect(id) {
  return h('select', { id, name: id }, EXPIRY.map(([v, l]) => h('option', { value: v }, l)));
}

function status(k) {
  if (k.revoked) return badge('revoked', 'error');
  if (k.expires_at && k.expires_at * 1000 <= Date.now()) return badge('expired', 'warn');
  return badge('active', 'ok');
}

function expires(k) {
  return k.expires_at ? fmt.time(k.expires_at) : 'never';
}

/** The box that shows a new secret once, with a copy button. */
function secretBox(id, title, lines, secret) {
  const copy = button('Copy', async () => {
    try { await navigator.clipboard.writeText(secret); toast('Copied', 'ok'); } catch (_) { toast('Copy failed: select the text and copy it', 'error'); }
  }, { kind: 'small', action: 'copy-secret' });
  const box = h('div', { class: 'secret-once', id, role: 'status' },
    h('div', { class: 'secret-head' }, h('strong', null, title), copy),
    lines,
    h('p', { class: 'small muted' }, 'Copy it now: it is shown only once and is gone when you leave or reload this page.'));
  box.appendChild(button('Done', () => box.remove(), { kind: 'small ghost', action: 'dismiss-secret' }));
  return box;
}

/**
 * One kind of credential: a create form, a slot for the new secret, and the list.
 * kind: {title, path, idKey, listKey, createAction, revokeAction, secretId, defaultRole, prefix, note, columns, secret(resp)}
 */
function credentialSection(kind, initial, ctx) {
  const name = h('input', { id: `${kind.prefix}-name`, name: `${kind.prefix}-name`, placeholder: 'ci deploys', autocomplete: 'off', maxlength: '100' });
  const role = roleSelect(`${kind.prefix}-role`, kind.defaultRole);
  const expiry = expirySelect(`${kind.prefix}-expiry`);
  const secretSlot = h('div', { class: 'secret-slot' });
  const listHost = h('div', { 'data-list': kind.listKey });
  const me = session.who && session.who.subject;

  const reload = async () => {
    const r = await api.get(tenantPath(kind.path));
    showList(r[kind.listKey] || []);
  };

  function showList(keys) {
    const rows = [...keys].sort((a, b) => (a.revoked - b.revoked) || String(b.created_at).localeCompare(String(a.created_at)));
    replace(listHost, table([
      ...kind.columns,
      { label: 'Name', value: (k) => k.name },
      { label: 'Role', value: (k) => badge(k.role) },
      { label: 'Created', value: (k) => fmt.time(k.created_at) },
      { label: 'Expires', value: expires },
      { label: 'Status', value: status },
      { label: '', class: 'num', value: (k) => (k.revoked ? null : revokeButton(k)) },
    ], rows, { rowKey: (k) => k[kind.idKey], empty: `No ${kind.title.toLowerCase()} yet.` }));
  }

  function revokeButton(k) {
    const id = k[kind.idKey];
    const b = button('Revoke', null, { kind: 'small danger', action: kind.revokeAction });
    b.addEventListener('click', busy(b, async () => {
      const self = me && kind.self && kind.self(k) === me;
      const ok = await confirmAction(`Revoke ${id}?`,
        `${k.name} (${k.role}) stops working at once on this node, within the credential cache's lifetime elsewhere.${self ? ' This is the key you are signed in with: you will be signed out.' : ''}`,
        'Revoke');
      if (!ok) return;
      await api.del(tenantPath(`${kind.path}/${enc(id)}`));
      toast(`Revoked ${id}.`, 'ok');
      if (self) { session.clear(); ctx.rerender(); return; }
      await reload();
    }));
    return b;
  }

  const create = button(`Create ${kind.noun}`, null, { kind: 'primary', action: kind.createAction });
  create.addEventListener('click', busy(create, async () => {
    const n = name.value.trim();
    if (!n) throw new Error(`Name the ${kind.noun} (what or who uses it).`);
    const body = { name: n, role: role.value };
    if (expiry.value) body.expires_in_secs = Number(expiry.value);
    const r = await api.post(tenantPath(kind.path), body);
    replace(secretSlot, kind.secret(r));
    name.value = '';
    toast(`Created ${kind.noun} ${r[kind.idKey]}.`, 'ok');
    await reload();
  }));

  showList(initial);
  return section(kind.title, null,
    h('p', { class: 'muted small' }, kind.note),
    h('div', { class: 'row' },
      field('Name / description', name),
      field('Role', role),
      field('Expires', expiry),
      h('div', { class: 'field' }, create)),
    secretSlot,
    listHost);
}

const API_KEYS = {
  title: 'API keys', noun: 'API key', path: '/keys', listKey: 'keys', idKey: 'prefix', prefix: 'key',
  createAction: 'create-key', revokeAction: 'revoke-key', defaultRole: 'developer',
  note: 'Bearer credentials for the API, the OpenAI-compatible endpoints and function triggers. The API stores only a hash of each key.',
  columns: [{ label: 'Prefix', value: (k) => h('code', null, k.prefix) }],
  self: (k) => `key:${k.prefix}`,
  secret: (r) => secretBox('new-key-secret', `New API key "${r.name}" (${r.role})`,
    h('p', null, h('code', { class: 'secret-value', 'data-secret': 'key' }, r.key)), r.key),
};

const ACCESS_KEYS = {
  title: 'Access keys (SigV4)', noun: 'access key', path: '/access-keys', listKey: 'access_keys', idKey: 'access_key_id', prefix: 'access-key',
  createAction: 'create-access-key', revokeAction: 'revoke-access-key', defaultRole: 'invoker',
  note: 'Key pairs for the Lambda-compatible Invoke API (boto3, the AWS CLI): AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.',
  columns: [
    { label: 'Access key id', value: (k) => h('code', null, k.access_key_id) },
    { label: 'Account', value: (k) => h('code', null, k.account_id) },
  ],
  secret: (r) => secretBox('new-access-key-secret', `New access key "${r.name}" (${r.role})`,
    h('dl', { class: 'kv' },
      h('dt', null, 'Access key id'), h('dd', null, h('code', { 'data-secret': 'access-key-id' }, r.access_key_id)),
      h('dt', null, 'Secret access key'), h('dd', null, h('code', { class: 'secret-value', 'data-secret': 'secret-access-key' }, r.secret_access_key)),
      h('dt', null, 'Account id'), h('dd', null, h('code', null, r.account_id))),
    r.secret_access_key),
};

async function render(ctx) {
  const [keys, access] = await Promise.all([
    api.get(tenantPath('/keys')),
    api.get(tenantPath('/access-keys')),
  ]);
  return h('div', null,
    pageHead('Keys', `Credentials of tenant ${session.tenant}. A new secret is shown once.`),
    credentialSection(API_KEYS, keys.keys || [], ctx),
    credentialSection(ACCESS_KEYS, access.access_keys || [], ctx));
}

export const routes = [
  { path: 'keys', title: 'Keys', needs: 'manage', nav: { group: 'Tenant', label: 'Keys', order: 3 }, render },
];
