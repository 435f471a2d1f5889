// Requests: the request log (`GET /api/v1/llm/requests`), newest first. Filters (time, model,
// status, key), a table that pages with the server's `next` cursor, and a detail view with the
// attempts timeline and the tokens and cost of each class.

import { h, fill, field, select, loading, empty, errorBox, busy } from './dom.js';
import { items, withQuery } from './api.js';
import { credits, count, tokens } from './format.js';

const RANGES = [['1', 'last hour'], ['24', 'last 24 hours'], ['168', 'last 7 days'], ['720', 'last 30 days'], ['', 'all kept']];
const STATUSES = [['', 'any status'], ['ok', 'ok'], ['error', 'errors'], ['404', '404'], ['402', '402'], ['429', '429'], ['502', '502'], ['503', '503']];
const PAGE = 25;

/** Unix milliseconds as local date and time, to the second. */
function at(ms) {
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return '—';
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function ms(value) {
  return value === null || value === undefined ? '—' : `${count(value)} ms`;
}

function isOk(row) {
  return row.status < 400 && !row.error_code;
}

function statusBadge(row) {
  const text = row.error_code ? `${row.status} ${row.error_code}` : String(row.status);
  return h('span', { class: ['badge', isOk(row) ? 'ok' : 'kind-charge'], text });
}

/** The upstream calls, in order, each with its outcome and latency. */
function timeline(row) {
  if (!row.attempts?.length) return empty('No upstream call: the request was answered or refused by the gateway itself.');
  return h('ol', { class: 'attempts' }, row.attempts.map((attempt, index) => h('li', {
    class: ['attempt', attempt.status === 200 ? 'attempt-ok' : 'attempt-failed'],
  },
  h('span', { class: 'attempt-n', text: `#${index + 1}` }),
  h('span', { class: 'model-id', text: attempt.model }),
  h('span', { class: 'hint', text: ` on ${attempt.provider}` }),
  h('span', { class: ['badge', attempt.status === 200 ? 'ok' : 'kind-charge'], text: attempt.error ? `${attempt.status} ${attempt.error}` : String(attempt.status) }),
  h('span', { class: 'num', text: ms(attempt.latency_ms) }))));
}

/** Tokens and cost of each class, from the row's cost breakdown. */
function classes(row) {
  const breakdown = row.cost_breakdown ?? {};
  const cost = (name) => {
    const micros = breakdown[name]?.micros;
    return micros === undefined ? '—' : credits(Math.ceil(Number(micros)));
  };
  const uncached = Number(row.prompt_tokens) - Number(row.cache_read_tokens) - Number(row.cache_write_tokens);
  const lines = [
    ['Prompt (uncached)', uncached, cost('uncached_prompt')],
    ['Cache read', row.cache_read_tokens, cost('cache_read')],
    ['Cache write', row.cache_write_tokens, cost('cache_write')],
    ['Output', row.completion_tokens, cost('output')],
    ['of which reasoning', row.reasoning_tokens, '—'],
  ];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data token-classes' },
    h('thead', {}, h('tr', {}, h('th', { text: 'Class' }), h('th', { class: 'num', text: 'Tokens' }), h('th', { class: 'num', text: 'Cost' }))),
    h('tbody', {}, lines.map(([name, n, c]) => h('tr', {}, h('td', { text: name }), h('td', { class: 'num', text: tokens(n) }), h('td', { class: 'num', text: c })))),
    h('tfoot', {}, h('tr', {}, h('th', { text: 'Charged' }), h('td'), h('td', { class: 'num request-cost', text: credits(row.cost_micros) })))));
}

function detail(row, onClose) {
  const close = h('button', { type: 'button', class: 'ghost', text: 'Close' });
  close.addEventListener('click', onClose);
  const fact = (label, value) => h('div', {}, h('dt', { text: label }), h('dd', { text: value ?? '—' }));
  return h('div', { class: 'card request-detail', role: 'region', 'aria-label': `Request ${row.request_id}` },
    h('div', { class: 'card-head' }, h('h3', { text: row.request_id }), statusBadge(row), close),
    h('dl', { class: 'facts' },
      fact('When', at(row.created_at)), fact('Endpoint', row.endpoint), fact('User', row.user_id),
      fact('Key', row.key_id), fact('Asked for', row.requested_model), fact('Served by', row.model ? `${row.model} (${row.provider})` : null),
      fact('Key source', row.key_source), fact('Stream', row.stream ? 'yes' : 'no'),
      fact('Latency', ms(row.latency_ms)), fact('First byte', ms(row.ttfb_ms))),
    h('h4', { text: 'Attempts' }), timeline(row),
    h('h4', { text: 'Tokens and cost' }), classes(row),
    row.prompt ? [h('h4', { text: 'Prompt' }), h('pre', { class: 'body-text', text: row.prompt })] : null,
    row.answer ? [h('h4', { text: 'Answer' }), h('pre', { class: 'body-text', text: row.answer })] : null);
}

export function createRequests(ctx) {
  const range = select(RANGES, '24', { class: 'requests-range' });
  const model = h('input', { type: 'search', class: 'requests-model', placeholder: 'any model', spellcheck: 'false' });
  const status = select(STATUSES, '', { class: 'requests-status' });
  const key = h('input', { type: 'search', class: 'requests-key', placeholder: 'any key', spellcheck: 'false' });
  const apply = h('button', { type: 'submit', class: 'primary', text: 'Apply' });
  const form = h('form', { class: 'filters requests-filters', 'aria-label': 'Filter requests' },
    field('Time', range), field('Model', model), field('Status', status), field('Key id', key), apply);
  const table = h('div', { class: 'requests-table' });
  const more = h('button', { type: 'button', class: 'ghost requests-more', text: 'Older requests', hidden: true });
  const shown = h('div', { class: 'detail-slot' });
  let rows = [];
  let next = null;

  function query(before) {
    const hours = Number(range.value);
    return withQuery('/api/v1/llm/requests', {
      from: hours ? Math.floor(Date.now() / 1000) - hours * 3600 : '',
      model: model.value.trim(),
      status: status.value,
      key_id: key.value.trim(),
      limit: PAGE,
      before,
    });
  }

  async function open(id) {
    fill(shown, loading('Loading the request…'));
    try {
      const row = await ctx.api.get(`/api/v1/llm/requests/${encodeURIComponent(id)}`);
      fill(shown, detail(row, () => fill(shown)));
      shown.querySelector('h3')?.focus?.();
    } catch (error) {
      fill(shown, errorBox(error, 'Could not load the request'));
    }
  }

  function draw() {
    if (!rows.length) {
      fill(table, empty('No requests match these filters.'));
      more.hidden = true;
      return;
    }
    const line = (row) => {
      const view = h('button', { type: 'button', class: 'ghost request-open', text: 'Details', 'aria-label': `Details of ${row.request_id}` });
      view.addEventListener('click', () => open(row.id));
      return h('tr', { class: 'request-row', dataset: { requestId: row.request_id } },
        h('td', { class: 'num', text: at(row.created_at) }),
        h('td', {}, h('span', { class: 'model-id', text: row.model ?? row.requested_model ?? '—' })),
        h('td', {}, statusBadge(row)),
        h('td', { class: 'num request-attempts', text: count(row.attempts?.length ?? 0) }),
        h('td', { class: 'num', text: ms(row.latency_ms) }),
        h('td', { class: 'num', text: `${tokens(row.prompt_tokens)} / ${tokens(row.completion_tokens)}` }),
        h('td', { class: 'num', text: credits(row.cost_micros) }),
        h('td', {}, view));
    };
    fill(table, h('div', { class: 'table-wrap' }, h('table', { class: 'data requests' },
      h('thead', {}, h('tr', {}, ['When', 'Model', 'Status', 'Attempts', 'Latency', 'Tokens in / out', 'Cost', ''].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows.map(line)))));
    more.hidden = !next;
  }

  async function load({ append = false } = {}) {
    if (!append) fill(table, loading('Loading requests…'));
    try {
      const page = await ctx.api.get(query(append ? next : ''));
      rows = append ? rows.concat(items(page)) : items(page);
      next = page.next ?? null;
      draw();
    } catch (error) {
      fill(table, errorBox(error, 'Could not load the requests'));
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(apply, () => load())();
  });
  more.addEventListener('click', busy(more, () => load({ append: true })));

  return {
    element: h('div', { class: 'requests-view' },
      h('p', { class: 'lead', text: 'Every call to the gateway with the model that served it, its upstream attempts, latency, tokens and cost. Users see their own; admins see everyone’s.' }),
      form, table, h('div', { class: 'actions' }, more), shown),
    refresh: () => load(),
  };
}
