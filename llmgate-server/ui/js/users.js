// Users (admins only): list, create (the new key is shown once), change tier or role, add
// credits. The tiers to pick from are the gateway's own (`GET /api/v1/admin/tiers`).

import { h, fill, field, select, loading, empty, errorBox, busy } from './dom.js';
import { items, withQuery } from './api.js';
import { credits, creditAmount, when } from './format.js';
import { keyReveal } from './reveal.js';

const ROLES = ['user', 'admin'];

function userPath(id) {
  return `/api/v1/admin/users/${encodeURIComponent(id)}`;
}

export function createUsers(ctx) {
  const reveal = h('div', { class: 'reveal-slot' });
  const list = h('div', { class: 'user-list' });
  const message = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
  // The configured tiers by name, as the server lists them.
  let tiers = new Map();

  /** "starter: +40 %, BYOK, 10000 credits a month". */
  function tierLabel(tier) {
    // Display only: rounded to hundredths of a percent so 0.4 shows as 40, not 40.00000000000001.
    const parts = [`+${Math.round(Number(tier.markup) * 10000) / 100} %`];
    if (tier.byok) parts.push('BYOK');
    if (tier.monthly_credits) parts.push(`${creditAmount(tier.monthly_credits)} credits a month`);
    if (tier.rpm) parts.push(`${tier.rpm} requests a minute`);
    return `${tier.name}: ${parts.join(', ')}`;
  }

  function syncTiers() {
    const names = [...tiers.keys()];
    // Keep the admin's pick across reloads; else start on the cheapest tier.
    const cheapest = [...tiers.values()].sort((a, b) => Number(a.markup) - Number(b.markup))[0]?.name;
    const chosen = tiers.has(newTier.value) ? newTier.value : cheapest;
    fill(newTier, names.map((name) => h('option', { value: name, selected: name === chosen }, tierLabel(tiers.get(name)))));
    newTier.disabled = names.length === 0;
  }

  async function loadTiers() {
    const answer = await ctx.api.get('/api/v1/admin/tiers');
    tiers = new Map(items(answer).map((tier) => [tier.name, tier]));
    syncTiers();
  }

  // The create form.
  const newId = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9._@\\-]+', class: 'new-user-id' });
  const newTier = h('select', { required: true, class: 'new-user-tier', disabled: true });
  const newRole = select(ROLES.map((r) => [r, r]), 'user', { class: 'new-user-role' });
  const create = h('button', { type: 'submit', class: 'primary', text: 'Create user' });
  const createMessage = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'create-user', 'aria-label': 'Create a user' },
    h('div', { class: 'row' },
      field('User id', newId, 'letters, digits, . _ - @'),
      field('Tier', newTier),
      field('Role', newRole)),
    h('div', { class: 'actions' }, create),
    createMessage);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(create, async () => {
      fill(createMessage, 'Creating…');
      try {
        const made = await ctx.api.post('/api/v1/admin/users', { user_id: newId.value.trim(), tier: newTier.value.trim(), role: newRole.value });
        fill(createMessage);
        newId.value = '';
        fill(reveal, keyReveal(made.user_id, made.api_key, () => fill(reveal)));
        reveal.querySelector('.new-key')?.focus();
        await loadUsers();
      } catch (error) {
        fill(createMessage, h('span', { class: 'error', text: error.message }));
      }
    })();
  });

  function userRow(user) {
    const id = user.user_id ?? user.id;
    const rowMessage = h('span', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
    // A user's tier may have left the config since; it stays listed so the row shows it.
    const tierOptions = [...new Set([...tiers.keys(), user.tier].filter(Boolean))];
    const tier = select(tierOptions.map((t) => [t, t]), user.tier, { 'aria-label': `Tier of ${id}`, class: 'user-tier' });
    const role = select(ROLES.map((r) => [r, r]), user.role ?? 'user', { 'aria-label': `Role of ${id}`, class: 'user-role' });
    const patch = (change, control, previous) => async () => {
      control.disabled = true;
      rowMessage.textContent = 'Saving…';
      try {
        await ctx.api.json(userPath(id), { method: 'PATCH', body: change() });
        rowMessage.textContent = 'Saved.';
        ctx.toast(`${id} updated.`);
        await loadUsers();
      } catch (error) {
        control.value = previous;
        rowMessage.textContent = error.message;
      } finally {
        control.disabled = false;
      }
    };
    tier.addEventListener('change', () => patch(() => ({ tier: tier.value }), tier, user.tier)());
    role.addEventListener('change', () => patch(() => ({ role: role.value }), role, user.role ?? 'user')());

    const amount = h('input', { type: 'text', inputmode: 'decimal', required: true, placeholder: '100', 'aria-label': `Credits to add to ${id}`, class: 'credit-amount', pattern: '[0-9]+(\\.[0-9]{1,6})?' });
    const reason = h('input', { type: 'text', placeholder: 'reason', 'aria-label': `Reason for adding credits to ${id}`, class: 'credit-reason', value: 'added in the LLM Hub' });
    const add = h('button', { type: 'submit', class: 'secondary', text: 'Add credits' });
    const credit = h('form', { class: 'add-credits', 'aria-label': `Add credits to ${id}` }, amount, reason, add);
    credit.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(add, async () => {
        rowMessage.textContent = 'Adding…';
        try {
          const answer = await ctx.api.post('/api/v1/llm/credits/add', { user_id: id, amount: amount.value.trim(), reason: reason.value.trim() || 'added in the LLM Hub' });
          amount.value = '';
          const now = answer?.balance ?? (answer?.balance_micros !== undefined ? Number(answer.balance_micros) / 1e6 : null);
          ctx.toast(now === null ? `Credits added to ${id}.` : `${id} now has ${creditAmount(now)} credits.`);
          await loadUsers();
        } catch (error) {
          rowMessage.textContent = error.message;
        }
      })();
    });

    const balance = user.balance !== undefined ? `${creditAmount(user.balance)} credits` : credits(user.balance_micros);
    return h('tr', { dataset: { user: id } },
      h('th', { scope: 'row', dataset: { label: 'User' }, text: id }),
      h('td', { dataset: { label: 'Role' } }, role),
      h('td', { dataset: { label: 'Tier' } }, tier),
      h('td', { dataset: { label: 'Balance' }, class: 'num user-balance', text: balance }),
      h('td', { dataset: { label: 'Created' }, text: when(user.created_at) }),
      h('td', { class: 'wide', dataset: { label: 'Add credits' } }, credit, rowMessage));
  }

  let users = [];
  let next = null;

  function draw() {
    const more = next ? h('button', { type: 'button', class: 'ghost', text: 'More users' }) : null;
    more?.addEventListener('click', busy(more, () => loadUsers(true)));
    fill(list, users.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'data users' },
        h('caption', { class: 'sr-only', text: 'Users' }),
        h('thead', {}, h('tr', {}, ['User', 'Role', 'Tier', 'Balance', 'Created', 'Add credits'].map((name) => h('th', { scope: 'col', text: name })))),
        h('tbody', {}, users.map(userRow))))
      : empty('No users yet. Create the first one above.'), more);
  }

  async function loadUsers(append) {
    if (!append) fill(list, loading('Loading users…'));
    try {
      const answer = await ctx.api.get(withQuery('/api/v1/admin/users', { limit: 50, after: append ? next : null }));
      const page = items(answer);
      users = append ? users.concat(page) : page;
      next = answer?.next_after ?? answer?.next ?? null;
      draw();
    } catch (error) {
      fill(list, errorBox(error, 'Could not load the users'));
    }
  }

  const element = h('div', {},
    h('section', { class: 'block', 'aria-labelledby': 'us-new' }, h('h3', { id: 'us-new', text: 'New user' }), form, reveal),
    h('section', { class: 'block', 'aria-labelledby': 'us-list' }, h('h3', { id: 'us-list', text: 'Users' }), message, list));
  async function refresh() {
    try {
      await loadTiers();
    } catch (error) {
      fill(createMessage, h('span', { class: 'error', text: `Could not load the tiers: ${error.message}` }));
    }
    await loadUsers(false);
  }

  return { element, refresh };
}
