// The LLM Hub's entry point: sign-in, who the caller is, the tabs, sign-out.

import { h, fill } from './dom.js';
import { Api } from './api.js';
import { savedKey, saveKey, forgetKey } from './session.js';
import { createCatalog } from './catalog.js';
import { createProviders } from './providers.js';
import { createLab } from './lab.js';
import { createAnalytics } from './analytics.js';
import { createUsers } from './users.js';
import { createKeys } from './keys.js';
import { createTeams } from './teams.js';
import { createRequests } from './requests.js';

const TABS = [
  { id: 'catalog', title: 'Model Catalog', create: createCatalog },
  { id: 'providers', title: 'API Providers', create: createProviders },
  { id: 'lab', title: 'Testing Lab', create: createLab },
  { id: 'analytics', title: 'Analytics', create: createAnalytics },
  { id: 'keys', title: 'Keys', create: createKeys },
  { id: 'requests', title: 'Requests', create: createRequests },
  { id: 'users', title: 'Users', create: createUsers, admin: true },
  { id: 'teams', title: 'Teams', create: createTeams, admin: true },
];

const $ = (selector) => document.querySelector(selector);

const ui = {
  signin: $('#signin'),
  form: $('#signin-form'),
  key: $('#signin-key'),
  submit: $('#signin-submit'),
  error: $('#signin-error'),
  hub: $('#hub'),
  tablist: $('#tablist'),
  panels: $('#panels'),
  who: $('#who'),
  signout: $('#signout'),
  toast: $('#toast'),
};

let session = null;

function toast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { ui.toast.hidden = true; }, 4000);
}

const api = new Api(() => session?.key ?? '', {
  onUnauthorized(error) {
    if (session?.ready) signOut(`Signed out: the gateway refused the key (${error.message})`);
  },
});

/** Who holds the key: their balance answer when they have an account, and whether they are an admin. */
async function identify() {
  let me = null;
  try {
    me = await api.get('/api/v1/llm/credits');
  } catch (error) {
    if (error.status === 401) throw error;
    // No account behind the key (the master key) or no credits endpoint: check the key itself.
    await api.get('/v1/models');
  }
  let admin = false;
  try {
    await api.get('/api/v1/admin/users?limit=1');
    admin = true;
  } catch (error) {
    if (error.status === 401) throw error;
  }
  return { me, admin };
}

function selectTab(id, { focus = false } = {}) {
  if (!session) return;
  const tab = session.tabs.find((t) => t.id === id) ?? session.tabs[0];
  for (const t of session.tabs) {
    const active = t === tab;
    t.button.setAttribute('aria-selected', String(active));
    t.button.tabIndex = active ? 0 : -1;
    t.panel.hidden = !active;
  }
  if (focus) tab.button.focus();
  if (location.hash !== `#${tab.id}`) history.replaceState(null, '', `#${tab.id}`);
  if (!tab.loaded) {
    tab.loaded = true;
    tab.view.refresh();
  }
}

function buildTabs(admin) {
  const ctx = { api, toast, models: modelsCache() };
  fill(ui.tablist);
  fill(ui.panels);
  const tabs = TABS.filter((t) => !t.admin || admin).map((spec) => {
    const view = spec.create(ctx);
    const button = h('button', {
      type: 'button', role: 'tab', id: `tab-${spec.id}`, class: 'tab', 'aria-controls': `panel-${spec.id}`, 'aria-selected': 'false', text: spec.title,
    });
    const refresh = h('button', { type: 'button', class: 'ghost refresh', text: 'Refresh', 'aria-label': `Refresh ${spec.title}` });
    refresh.addEventListener('click', () => view.refresh());
    const panel = h('section', { role: 'tabpanel', id: `panel-${spec.id}`, class: 'panel', 'aria-labelledby': `tab-${spec.id}`, hidden: true },
      h('div', { class: 'panel-head' }, h('h2', { text: spec.title }), refresh),
      view.element);
    ui.tablist.append(button);
    ui.panels.append(panel);
    button.addEventListener('click', () => selectTab(spec.id));
    return { id: spec.id, button, panel, view, loaded: false };
  });
  ui.tablist.addEventListener('keydown', onTabKey);
  return tabs;
}

function onTabKey(event) {
  if (!session) return;
  const index = session.tabs.findIndex((t) => t.button === document.activeElement);
  if (index < 0) return;
  const last = session.tabs.length - 1;
  const target = { ArrowRight: index === last ? 0 : index + 1, ArrowLeft: index === 0 ? last : index - 1, Home: 0, End: last }[event.key];
  if (target === undefined) return;
  event.preventDefault();
  selectTab(session.tabs[target].id, { focus: true });
}

function modelsCache() {
  let pending = null;
  return ({ reload = false } = {}) => {
    if (!pending || reload) {
      pending = api.get('/v1/models').then((answer) => answer.data ?? []);
      pending.catch(() => { pending = null; });
    }
    return pending;
  };
}

function describe(me, admin) {
  const parts = [];
  if (me?.user_id) parts.push(h('strong', { text: me.user_id }));
  else parts.push(h('strong', { text: admin ? 'administrator' : 'signed in' }));
  if (me?.tier && !(admin && me.tier === 'admin')) parts.push(h('span', { class: 'badge', text: me.tier }));
  if (admin) parts.push(h('span', { class: 'badge admin', text: 'admin' }));
  return parts;
}

async function signIn(key, { restoring = false } = {}) {
  session = { key, tabs: [] };
  ui.submit.disabled = true;
  ui.error.textContent = restoring ? 'Signing in…' : 'Checking the key…';
  ui.error.className = 'signin-status';
  try {
    const { me, admin } = await identify();
    saveKey(key);
    ui.key.value = '';
    session.tabs = buildTabs(admin);
    fill(ui.who, describe(me, admin));
    ui.signin.hidden = true;
    ui.hub.hidden = false;
    ui.signout.hidden = false;
    ui.error.textContent = '';
    session.ready = true;
    selectTab(location.hash.slice(1));
  } catch (error) {
    session = null;
    forgetKey();
    ui.error.className = 'signin-status error';
    ui.error.textContent = error.status === 401 ? `That key was refused: ${error.message}` : error.message;
    ui.signin.hidden = false;
    ui.key.focus();
  } finally {
    ui.submit.disabled = false;
  }
}

function signOut(reason) {
  for (const tab of session?.tabs ?? []) tab.view.stop?.();
  session = null;
  forgetKey();
  // Drop every view, so nothing of the last caller's data stays in the page.
  ui.tablist.removeEventListener('keydown', onTabKey);
  fill(ui.tablist);
  fill(ui.panels);
  fill(ui.who);
  ui.hub.hidden = true;
  ui.signout.hidden = true;
  ui.signin.hidden = false;
  ui.error.className = reason ? 'signin-status error' : 'signin-status';
  ui.error.textContent = reason ?? 'Signed out.';
  history.replaceState(null, '', location.pathname);
  ui.key.focus();
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  if (!key) {
    ui.error.className = 'signin-status error';
    ui.error.textContent = 'Paste an API key first.';
    ui.key.focus();
    return;
  }
  signIn(key);
});
ui.signout.addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => selectTab(location.hash.slice(1)));

const remembered = savedKey();
if (remembered) signIn(remembered, { restoring: true });
else {
  ui.signin.hidden = false;
  ui.key.focus();
}
