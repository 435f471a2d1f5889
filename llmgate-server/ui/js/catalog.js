// Model Catalog: every model the gateway serves, with its prices and traits; filter and search.

import { h, fill, field, select, loading, empty, errorBox } from './dom.js';
import { pricePer1k, count, percent } from './format.js';

const ANY = '';

function matches(model, filters) {
  const text = filters.text.trim().toLowerCase();
  if (text) {
    const haystack = [model.id, model.provider, ...(model.tags ?? [])].join(' ').toLowerCase();
    if (!text.split(/\s+/).every((word) => haystack.includes(word))) return false;
  }
  if (filters.tag && !(model.tags ?? []).includes(filters.tag)) return false;
  if (filters.privacy && model.privacy !== filters.privacy) return false;
  if (filters.latency && model.latency !== filters.latency) return false;
  if (filters.freeOnly && !model.free) return false;
  return true;
}

function cell(label, ...content) {
  return h('td', { dataset: { label } }, ...content);
}

function row(model) {
  const noPrice = model.input_cost_per_1k === null && model.output_cost_per_1k === null && !model.free;
  return h('tr', { dataset: { model: model.id } },
    h('th', { scope: 'row', dataset: { label: 'Model' } },
      h('span', { class: 'model-id', text: model.id }),
      model.free ? h('span', { class: 'badge free', text: 'free' }) : null,
      model.mode === 'embedding' ? h('span', { class: 'badge muted', title: 'An embedding model: served at /v1/embeddings, priced by input tokens', text: 'embedding' }) : null,
      noPrice ? h('span', { class: 'badge muted', title: 'No list price: usable with your own key (BYOK) only', text: 'BYOK only' }) : null,
    ),
    cell('Provider', model.provider ?? '—'),
    cell('Input / 1K', h('span', { class: 'num', text: pricePer1k(model.input_cost_per_1k) })),
    cell('Output / 1K', h('span', { class: 'num', text: pricePer1k(model.output_cost_per_1k) })),
    cell('Cache read / 1K', h('span', { class: 'num cache-read', text: pricePer1k(model.cache_read_cost_per_1k) })),
    cell('Cache write / 1K', h('span', { class: 'num cache-write', text: pricePer1k(model.cache_write_cost_per_1k) })),
    cell('Quality', h('span', { class: 'num', text: percent(model.quality) })),
    cell('Context', h('span', { class: 'num', text: model.context_window ? count(model.context_window) : '—' })),
    cell('Latency', model.latency ?? '—'),
    cell('Privacy', model.privacy ? h('span', { class: ['badge', `privacy-${model.privacy}`], text: model.privacy }) : '—'),
    cell('Tags', (model.tags ?? []).length ? (model.tags ?? []).map((tag) => h('span', { class: 'tag', text: tag })) : '—'),
  );
}

export function createCatalog(ctx) {
  const filters = { text: '', tag: ANY, privacy: ANY, latency: ANY, freeOnly: false };
  const body = h('div', { class: 'catalog-body' });
  const controls = h('div', { class: 'filters' });
  const status = h('p', { class: 'hint', role: 'status', 'aria-live': 'polite' });
  let models = [];

  function render() {
    const shown = models.filter((model) => matches(model, filters));
    status.textContent = `${shown.length} of ${models.length} models`;
    if (!models.length) {
      fill(body, empty('This gateway has no models configured.'));
      return;
    }
    if (!shown.length) {
      fill(body, empty('No model matches these filters.'));
      return;
    }
    fill(body, h('div', { class: 'table-wrap' },
      h('table', { class: 'data catalog' },
        h('caption', { class: 'sr-only', text: 'Models' }),
        h('thead', {}, h('tr', {}, ['Model', 'Provider', 'Input / 1K', 'Output / 1K', 'Cache read / 1K', 'Cache write / 1K', 'Quality', 'Context', 'Latency', 'Privacy', 'Tags']
          .map((name) => h('th', { scope: 'col', text: name })))),
        h('tbody', {}, shown.map(row)))));
  }

  function buildControls() {
    const distinct = (pick) => [...new Set(models.flatMap(pick).filter(Boolean))].sort();
    const search = h('input', { type: 'search', placeholder: 'name, provider or tag', autocomplete: 'off', value: filters.text });
    search.addEventListener('input', () => { filters.text = search.value; render(); });
    const choose = (label, key, values) => {
      const control = select([[ANY, 'any'], ...values.map((v) => [v, v])], filters[key]);
      control.addEventListener('change', () => { filters[key] = control.value; render(); });
      return field(label, control);
    };
    const free = h('input', { type: 'checkbox', id: 'catalog-free', checked: filters.freeOnly });
    free.addEventListener('change', () => { filters.freeOnly = free.checked; render(); });
    fill(controls,
      field('Search', search),
      choose('Tag', 'tag', distinct((m) => m.tags ?? [])),
      choose('Privacy', 'privacy', distinct((m) => [m.privacy])),
      choose('Latency', 'latency', distinct((m) => [m.latency])),
      h('div', { class: 'field check' }, free, h('label', { for: 'catalog-free', text: 'Free only' })),
    );
  }

  async function refresh() {
    fill(body, loading('Loading models…'));
    status.textContent = '';
    try {
      models = await ctx.models({ reload: true });
      buildControls();
      render();
    } catch (error) {
      fill(controls);
      fill(body, errorBox(error, 'Could not load the models'));
    }
  }

  const element = h('div', {},
    h('p', { class: 'lead', text: 'Every model this gateway serves. Prices are USD per 1,000 tokens before your tier\'s markup and power level.' }),
    controls, status, body);
  return { element, refresh };
}
