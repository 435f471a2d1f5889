// Teams (admins only): each team's tier, balance and members; create a team, add or remove
// members (owner or member), top up the team's balance.

import { h, fill, field, select, loading, empty, errorBox, busy } from './dom.js';
import { items } from './api.js';
import { creditAmount } from './format.js';

const ROLES = [['member', 'member'], ['owner', 'owner']];

function teamPath(id) {
  return `/api/v1/admin/teams/${encodeURIComponent(id)}`;
}

export function createTeams(ctx) {
  const list = h('div', { class: 'team-list' });
  const newId = h('input', { type: 'text', required: true, class: 'new-team-id', autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9._@\\-]+' });
  const newTier = h('select', { required: true, class: 'new-team-tier' });
  const create = h('button', { type: 'submit', class: 'primary', text: 'Create team' });
  const message = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'create-team', 'aria-label': 'Create a team' },
    h('div', { class: 'row' }, field('Team id', newId, 'letters, digits, . _ - @'), field('Tier', newTier)),
    h('div', { class: 'actions' }, create), message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(create, async () => {
      fill(message, 'Creating…');
      try {
        await ctx.api.post('/api/v1/admin/teams', { team_id: newId.value.trim(), tier: newTier.value });
        fill(message);
        ctx.toast(`Team ${newId.value.trim()} created.`);
        newId.value = '';
        await load();
      } catch (error) {
        fill(message, h('span', { class: 'error', text: error.message }));
      }
    })();
  });

  function teamCard(team) {
    const rowMessage = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
    const act = (button, work, done) => busy(button, async () => {
      rowMessage.textContent = 'Saving…';
      try {
        await work();
        rowMessage.textContent = '';
        ctx.toast(done);
        await load();
      } catch (error) {
        rowMessage.textContent = error.message;
      }
    });
    const members = team.members.map((m) => {
      const remove = h('button', { type: 'button', class: 'ghost remove-member', text: 'Remove', 'aria-label': `Remove ${m.user_id} from ${team.team_id}` });
      remove.addEventListener('click', act(remove, () => ctx.api.json(`${teamPath(team.team_id)}/members/${encodeURIComponent(m.user_id)}`, { method: 'DELETE' }), `${m.user_id} removed.`));
      return h('li', { dataset: { member: m.user_id } }, h('span', { text: `${m.user_id} (${m.role})` }), ' ', remove);
    });
    const user = h('input', { type: 'text', class: 'member-id', placeholder: 'user id', 'aria-label': `User to add to ${team.team_id}`, required: true });
    const role = select(ROLES, 'member', { class: 'member-role', 'aria-label': `Role in ${team.team_id}` });
    const addMember = h('button', { type: 'submit', class: 'secondary', text: 'Add member' });
    const memberForm = h('form', { class: 'add-member', 'aria-label': `Add a member to ${team.team_id}` }, user, role, addMember);
    memberForm.addEventListener('submit', (event) => {
      event.preventDefault();
      act(addMember, () => ctx.api.post(`${teamPath(team.team_id)}/members`, { user_id: user.value.trim(), role: role.value }), `${user.value.trim()} added.`)();
    });
    const amount = h('input', { type: 'text', inputmode: 'decimal', class: 'team-amount', placeholder: '100', required: true, 'aria-label': `Credits to add to ${team.team_id}`, pattern: '[0-9]+(\\.[0-9]{1,6})?' });
    const topUp = h('button', { type: 'submit', class: 'secondary', text: 'Add credits' });
    const creditForm = h('form', { class: 'team-top-up', 'aria-label': `Add credits to ${team.team_id}` }, amount, topUp);
    creditForm.addEventListener('submit', (event) => {
      event.preventDefault();
      act(topUp, () => ctx.api.post('/api/v1/llm/credits/add', { team_id: team.team_id, amount: amount.value.trim(), reason: 'added in the LLM Hub' }), `Credits added to ${team.team_id}.`)();
    });
    return h('article', { class: 'block team', dataset: { team: team.team_id } },
      h('h3', { text: team.team_id }),
      h('p', {}, h('span', { class: 'badge', text: team.tier }), ' ', h('span', { class: 'team-balance', text: `${creditAmount(team.balance)} credits` })),
      members.length ? h('ul', { class: 'members' }, members) : empty('No members yet.'),
      memberForm, creditForm, rowMessage);
  }

  async function load() {
    fill(list, loading('Loading teams…'));
    try {
      const tiers = items(await ctx.api.get('/api/v1/admin/tiers')).map((t) => t.name);
      const chosen = newTier.value;
      fill(newTier, tiers.map((name) => h('option', { value: name, selected: name === chosen }, name)));
      const teams = items(await ctx.api.get('/api/v1/admin/teams'));
      fill(list, teams.length ? teams.map(teamCard) : empty('No teams yet. Create one above.'));
    } catch (error) {
      fill(list, errorBox(error, 'Could not load the teams'));
    }
  }

  const element = h('div', {},
    h('section', { class: 'block', 'aria-labelledby': 'tm-new' }, h('h3', { id: 'tm-new', text: 'New team' }), form),
    h('section', { 'aria-label': 'Teams' }, list));
  return { element, refresh: load };
}
