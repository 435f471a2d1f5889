// Keys: the caller's own API keys as governance. Create one with a name, models, a budget per
// period, rpm/tpm, an expiry and a team (the key is shown once); list them with their spend
// against the budget; revoke.

import { h, fill, field, select, loading, empty, errorBox, busy } from './dom.js';
import { items } from './api.js';
import { credits, creditAmount, when } from './format.js';
import { keyReveal } from './reveal.js';

const PERIODS = [['daily', 'per day'], ['weekly', 'per week'], ['monthly', 'per month'], ['total', 'in total']];

/** "0.7 of 2.1 credits per day", or "no budget". */
function spendText(key) {
  if (key.max_budget_micros === null || key.max_budget_micros === undefined) return 'no budget';
  const period = PERIODS.find(([id]) => id === key.budget_period)?.[1] ?? '';
  return `${creditAmount(key.spend)} of ${creditAmount(key.max_budget)} credits ${period}`;
}

export function createKeys(ctx) {
  const reveal = h('div', { class: 'reveal-slot' });
  const list = h('div', { class: 'key-list' });

  const name = h('input', { type: 'text', class: 'key-name', autocomplete: 'off', placeholder: 'ci, mobile app…' });
  const models = h('input', { type: 'text', class: 'key-models', autocomplete: 'off', spellcheck: 'false', placeholder: 'every model' });
  const budget = h('input', { type: 'text', class: 'key-budget', inputmode: 'decimal', placeholder: 'no budget', pattern: '[0-9]+(\\.[0-9]{1,6})?' });
  const period = select(PERIODS, 'monthly', { class: 'key-period' });
  const rpm = h('input', { type: 'number', min: '1', class: 'key-rpm', placeholder: 'no limit' });
  const tpm = h('input', { type: 'number', min: '1', class: 'key-tpm', placeholder: 'no limit' });
  const expires = h('input', { type: 'datetime-local', class: 'key-expires' });
  const team = h('input', { type: 'text', class: 'key-team', autocomplete: 'off', placeholder: 'your own balance' });
  const create = h('button', { type: 'submit', class: 'primary', text: 'Create key' });
  const message = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'create-key', 'aria-label': 'Create an API key' },
    h('div', { class: 'row' },
      field('Name', name),
      field('Models', models, 'names or globs, comma-separated; add auto to allow it'),
      field('Budget (credits)', budget),
      field('Budget period', period)),
    h('div', { class: 'row' },
      field('Requests per minute', rpm),
      field('Tokens per minute', tpm),
      field('Expires', expires, 'your local time'),
      field('Team', team, 'a team you own: its balance pays')),
    h('div', { class: 'actions' }, create),
    message);

  function settings() {
    const body = {};
    if (name.value.trim()) body.name = name.value.trim();
    const listed = models.value.split(',').map((m) => m.trim()).filter(Boolean);
    if (listed.length) body.models = listed;
    if (budget.value.trim()) {
      body.max_budget = budget.value.trim();
      body.budget_period = period.value;
    }
    if (rpm.value) body.rpm = Number(rpm.value);
    if (tpm.value) body.tpm = Number(tpm.value);
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    if (team.value.trim()) body.team_id = team.value.trim();
    return body;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(create, async () => {
      fill(message, 'Creating…');
      try {
        const made = await ctx.api.post('/api/v1/keys', settings());
        fill(message);
        for (const input of [name, models, budget, rpm, tpm, expires, team]) input.value = '';
        fill(reveal, keyReveal(made.name || made.key_hint, made.api_key, () => fill(reveal)));
        reveal.querySelector('.new-key')?.focus();
        await load();
      } catch (error) {
        fill(message, h('span', { class: 'error', text: error.message }));
      }
    })();
  });

  function keyRow(key) {
    const rowMessage = h('span', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
    const revoke = h('button', { type: 'button', class: 'danger revoke', text: 'Revoke', hidden: Boolean(key.revoked_at) });
    revoke.addEventListener('click', busy(revoke, async () => {
      rowMessage.textContent = 'Revoking…';
      try {
        await ctx.api.json(`/api/v1/keys/${encodeURIComponent(key.key_id)}`, { method: 'DELETE' });
        ctx.toast(`Key ${key.name || key.key_hint} revoked.`);
        await load();
      } catch (error) {
        rowMessage.textContent = error.message;
      }
    }));
    const limits = [key.rpm ? `${key.rpm} rpm` : null, key.tpm ? `${key.tpm} tpm` : null].filter(Boolean).join(', ') || '—';
    const state = key.revoked_at ? 'revoked' : (key.expires_at && new Date(key.expires_at) <= new Date() ? 'expired' : 'active');
    return h('tr', { dataset: { key: key.key_id, state } },
      h('th', { scope: 'row', dataset: { label: 'Key' } }, h('span', { text: key.name || '(unnamed)' }), h('br'), h('code', { class: 'hint', text: key.key_hint })),
      h('td', { dataset: { label: 'Models' }, text: key.models ? key.models.join(', ') : 'every model' }),
      h('td', { dataset: { label: 'Spend' }, class: 'key-spend', text: spendText(key) }),
      h('td', { dataset: { label: 'Limits' }, text: limits }),
      h('td', { dataset: { label: 'Team' }, text: key.team_id ?? '—' }),
      h('td', { dataset: { label: 'Expires' }, text: when(key.expires_at) }),
      h('td', { dataset: { label: 'Last used' }, text: when(key.last_used_at) }),
      h('td', { dataset: { label: 'State' }, class: 'key-state', text: state }),
      h('td', { dataset: { label: '' } }, revoke, rowMessage));
  }

  async function load() {
    fill(list, loading('Loading keys…'));
    try {
      const keys = items(await ctx.api.get('/api/v1/keys'));
      fill(list, keys.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'data keys' },
          h('caption', { class: 'sr-only', text: 'API keys' }),
          h('thead', {}, h('tr', {}, ['Key', 'Models', 'Spend', 'Limits', 'Team', 'Expires', 'Last used', 'State', ''].map((n) => h('th', { scope: 'col', text: n })))),
          h('tbody', {}, keys.map(keyRow))))
        : empty('No keys yet. Create one above.'));
    } catch (error) {
      fill(list, errorBox(error, 'Could not load the keys'));
    }
  }

  const element = h('div', {},
    h('section', { class: 'block', 'aria-labelledby': 'ks-new' }, h('h3', { id: 'ks-new', text: 'New key' }), form, reveal),
    h('section', { class: 'block', 'aria-labelledby': 'ks-list' }, h('h3', { id: 'ks-list', text: 'Keys' }), list));
  return { element, refresh: load };
}
