// Analytics: the caller's balance, usage by day / model / provider as bar charts, the recent
// ledger, and the credit packages on sale (with Buy when the gateway takes payments).

import { h, fill, field, select, loading, empty, errorBox, busy } from './dom.js';
import { items, withQuery } from './api.js';
import { barChart } from './chart.js';
import { credits, creditAmount, count, tokens, usd, when } from './format.js';

const RANGES = [['7', 'last 7 days'], ['30', 'last 30 days'], ['90', 'last 90 days'], ['', 'all time']];
const METRICS = {
  cost: { label: 'cost', value: (row) => Number(row.cost_micros ?? 0), display: (row) => credits(row.cost_micros) },
  requests: { label: 'requests', value: (row) => Number(row.requests ?? 0), display: (row) => count(row.requests) },
  tokens: {
    label: 'tokens',
    value: (row) => Number(row.prompt_tokens ?? 0) + Number(row.completion_tokens ?? 0),
    display: (row) => tokens(Number(row.prompt_tokens ?? 0) + Number(row.completion_tokens ?? 0)),
  },
  cached: {
    label: 'cached tokens',
    value: (row) => Number(row.cache_read_tokens ?? 0),
    display: (row) => tokens(row.cache_read_tokens ?? 0),
  },
  cache_writes: {
    label: 'cache writes',
    value: (row) => Number(row.cache_write_tokens ?? 0),
    display: (row) => tokens(row.cache_write_tokens ?? 0),
  },
  reasoning: {
    label: 'reasoning tokens',
    value: (row) => Number(row.reasoning_tokens ?? 0),
    display: (row) => tokens(row.reasoning_tokens ?? 0),
  },
};
const QUIET_KINDS = new Set(['hold', 'release']);

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function signed(micros) {
  const number = Number(micros);
  return `${number > 0 ? '+' : ''}${credits(number)}`;
}

export function createAnalytics(ctx) {
  const balance = h('div', { class: 'balance-slot' });
  const usage = h('div', { class: 'charts' });
  const ledger = h('div', { class: 'ledger' });
  const packages = h('div', { class: 'packages' });
  const range = select(RANGES, '30', { class: 'range' });
  const metric = select(Object.keys(METRICS).map((key) => [key, METRICS[key].label]), 'requests', { class: 'metric' });
  const showQuiet = h('input', { type: 'checkbox', id: 'ledger-quiet' });
  let usageRows = null;
  let ledgerRows = [];
  let nextBefore = null;

  async function loadBalance() {
    fill(balance, loading('Loading balance…'));
    try {
      const me = await ctx.api.get('/api/v1/llm/credits');
      fill(balance, h('div', { class: 'stats' },
        h('div', { class: 'stat' }, h('span', { class: 'stat-label', text: 'Balance' }),
          h('span', { class: 'stat-value balance-value', text: `${creditAmount(me.balance ?? Number(me.balance_micros) / 1e6)} credits` })),
        h('div', { class: 'stat' }, h('span', { class: 'stat-label', text: 'Tier' }), h('span', { class: 'stat-value', text: me.tier ?? '—' })),
        h('div', { class: 'stat' }, h('span', { class: 'stat-label', text: 'User' }), h('span', { class: 'stat-value', text: me.user_id ?? '—' }))),
        me.low_balance ? h('p', { class: 'callout warn', role: 'alert', text: 'Your balance is low: buy credits below or ask your administrator.' }) : null);
    } catch (error) {
      fill(balance, errorBox(error, 'Could not load the balance'));
    }
  }

  function drawUsage() {
    if (!usageRows) return;
    const pick = METRICS[metric.value];
    const charts = [];
    for (const [group, title] of [['day', 'By day'], ['model', 'By model'], ['provider', 'By provider']]) {
      const rows = usageRows[group];
      if (rows instanceof Error) {
        charts.push(h('div', { class: 'chart' }, h('h4', { text: title }), errorBox(rows)));
      } else if (!rows.length) {
        charts.push(h('div', { class: 'chart', dataset: { group } }, h('h4', { text: title }), empty('No requests in this period.')));
      } else {
        const sorted = group === 'day' ? [...rows].sort((a, b) => String(a.key).localeCompare(String(b.key))) : [...rows].sort((a, b) => pick.value(b) - pick.value(a));
        const chart = barChart({
          title: `${title} (${pick.label})`,
          items: sorted.map((row) => ({ label: String(row.key), value: pick.value(row), display: pick.display(row) })),
        });
        chart.dataset.group = group;
        charts.push(chart);
      }
    }
    fill(usage, charts);
  }

  async function loadUsage() {
    fill(usage, loading('Loading usage…'));
    const days = Number.parseInt(range.value, 10);
    const params = {};
    if (days > 0) {
      const from = new Date(Date.now() - (days - 1) * 86_400_000);
      params.from = isoDay(from);
      params.to = isoDay(new Date());
    }
    const groups = ['day', 'model', 'provider'];
    const answers = await Promise.all(groups.map((group) => ctx.api.get(withQuery('/api/v1/llm/usage', { ...params, group_by: group }))
      .then(items, (error) => error)));
    usageRows = Object.fromEntries(groups.map((group, i) => [group, answers[i]]));
    drawUsage();
  }

  function drawLedger(more) {
    const shown = showQuiet.checked ? ledgerRows : ledgerRows.filter((row) => !QUIET_KINDS.has(row.kind));
    const table = shown.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'data ledger-table' },
        h('caption', { class: 'sr-only', text: 'Recent transactions' }),
        h('thead', {}, h('tr', {}, ['When', 'Kind', 'Amount', 'Balance after', 'Details'].map((name) => h('th', { scope: 'col', text: name })))),
        h('tbody', {}, shown.map((row) => h('tr', { dataset: { kind: row.kind ?? '' } },
          h('td', { dataset: { label: 'When' }, text: when(row.at ?? row.created_at) }),
          h('td', { dataset: { label: 'Kind' } }, h('span', { class: ['badge', `kind-${row.kind}`], text: (row.kind ?? '—').replace('_', ' ') })),
          h('td', { dataset: { label: 'Amount' }, class: Number(row.amount_micros) < 0 ? 'num neg' : 'num pos', text: signed(row.amount_micros) }),
          h('td', { dataset: { label: 'Balance after' }, class: 'num', text: row.balance_after_micros === undefined ? '—' : credits(row.balance_after_micros) }),
          h('td', { class: 'wide', dataset: { label: 'Details' }, text: details(row) }))))))
      : empty(ledgerRows.length ? 'Only holds and releases so far.' : 'No transactions yet.');
    fill(ledger, table, more);
  }

  function details(row) {
    const parts = [];
    if (row.model) parts.push(row.model);
    if (row.provider && row.provider !== row.model) parts.push(`via ${row.provider}`);
    if (row.prompt_tokens !== undefined && row.prompt_tokens !== null) parts.push(`${count(row.prompt_tokens)} + ${count(row.completion_tokens)} tokens`);
    if (Number(row.cache_read_tokens) > 0) parts.push(`${count(row.cache_read_tokens)} cached`);
    if (Number(row.cache_write_tokens) > 0) parts.push(`${count(row.cache_write_tokens)} written to cache`);
    if (Number(row.reasoning_tokens) > 0) parts.push(`${count(row.reasoning_tokens)} reasoning`);
    if (row.key_source === 'byok') parts.push('your key');
    // A charge's reason is bookkeeping (which hold it settled); credits carry a human one.
    if (row.reason && !['charge', 'hold', 'release'].includes(row.kind)) parts.push(row.reason);
    return parts.join(' · ') || '—';
  }

  async function loadLedger(append) {
    if (!append) {
      fill(ledger, loading('Loading transactions…'));
      ledgerRows = [];
      nextBefore = null;
    }
    try {
      const answer = await ctx.api.get(withQuery('/api/v1/llm/credits/transactions', { limit: 25, before: append ? nextBefore : null }));
      ledgerRows = ledgerRows.concat(items(answer));
      nextBefore = answer?.next_before ?? null;
      let more = null;
      if (nextBefore !== null && nextBefore !== undefined) {
        more = h('button', { type: 'button', class: 'ghost', text: 'Older transactions' });
        more.addEventListener('click', busy(more, () => loadLedger(true)));
      }
      drawLedger(more);
    } catch (error) {
      fill(ledger, errorBox(error, 'Could not load the transactions'));
    }
  }

  async function loadPackages() {
    fill(packages, loading('Loading packages…'));
    try {
      const answer = await ctx.api.get('/api/v1/llm/credits/packages');
      const list = items(answer);
      const enabled = Boolean(answer?.purchases_enabled);
      if (!list.length) {
        fill(packages, empty('No credit packages are on sale.'));
        return;
      }
      const message = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
      fill(packages,
        enabled ? null : h('p', { class: 'hint', text: 'Purchases are not enabled on this gateway (no payment provider is configured). Ask your administrator for credits.' }),
        h('div', { class: 'package-grid' }, list.map((pack) => {
          const buy = h('button', { type: 'button', class: 'primary', text: 'Buy', 'aria-label': `Buy ${count(pack.credits)} credits for ${usd(pack.price_usd)}` });
          buy.addEventListener('click', busy(buy, async () => {
            message.textContent = 'Opening checkout…';
            try {
              const session = await ctx.api.post('/api/v1/llm/credits/purchase', { package: pack.id });
              const url = new URL(session.checkout_url);
              if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('The checkout address is not a web address.');
              message.textContent = 'Redirecting to checkout…';
              window.location.assign(url.href);
            } catch (error) {
              message.textContent = `Could not start the purchase: ${error.message}`;
            }
          }));
          return h('article', { class: 'card package', dataset: { package: pack.id } },
            h('p', { class: 'package-credits', text: `${count(pack.credits)} credits` }),
            h('p', { class: 'package-price', text: usd(pack.price_usd) }),
            enabled ? buy : null);
        })),
        message);
    } catch (error) {
      fill(packages, error.missing ? empty('This gateway sells no credit packages.') : errorBox(error, 'Could not load the packages'));
    }
  }

  range.addEventListener('change', loadUsage);
  metric.addEventListener('change', drawUsage);
  showQuiet.addEventListener('change', () => drawLedger(ledger.querySelector('button.ghost')));

  const element = h('div', {},
    h('section', { class: 'block', 'aria-labelledby': 'an-balance' }, h('h3', { id: 'an-balance', text: 'Balance' }), balance),
    h('section', { class: 'block', 'aria-labelledby': 'an-usage' },
      h('div', { class: 'block-head' }, h('h3', { id: 'an-usage', text: 'Usage' }),
        h('div', { class: 'row compact' }, field('Period', range), field('Show', metric))),
      usage),
    h('section', { class: 'block', 'aria-labelledby': 'an-ledger' },
      h('div', { class: 'block-head' }, h('h3', { id: 'an-ledger', text: 'Recent transactions' }),
        h('div', { class: 'field check' }, showQuiet, h('label', { for: 'ledger-quiet', text: 'Show holds and releases' }))),
      ledger),
    h('section', { class: 'block', 'aria-labelledby': 'an-packages' }, h('h3', { id: 'an-packages', text: 'Buy credits' }), packages));

  async function refresh() {
    await Promise.all([loadBalance(), loadUsage(), loadLedger(false), loadPackages()]);
  }
  return { element, refresh };
}
