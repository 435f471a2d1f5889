// Testing Lab: send one prompt to a model (or `auto`) at a power level and watch the answer
// stream in; optionally to two models side by side. Each answer shows who served it
// (provider, model, attempts, key source, from the response headers), its tokens (with the
// prompt tokens read from or written to the provider's cache and the output tokens spent
// reasoning) and what it cost (the final usage chunk's `llmgate.cost_micros`, and per token
// class its `llmgate.cost_breakdown`). Stop aborts the requests.

import { h, fill, field, select } from './dom.js';
import { sseData } from './sse.js';
import { credits, count } from './format.js';

const POWER_LEVELS = [['', 'tier default'], ['eco', 'eco'], ['balanced', 'balanced'], ['precision', 'precision']];

function answerCard(requested) {
  const text = document.createTextNode('');
  const output = h('div', { class: 'answer-text', 'aria-live': 'polite', 'aria-busy': 'true' }, text);
  const status = h('p', { class: 'answer-status', role: 'status' }, 'Waiting for the first token…');
  const facts = {};
  const list = h('dl', { class: 'facts' });
  for (const [key, label] of [['provider', 'Provider'], ['model', 'Model'], ['attempts', 'Attempts'], ['source', 'Key'], ['tokens', 'Tokens'], ['cached', 'Cached'], ['reasoning', 'Reasoning'], ['cost', 'Cost']]) {
    facts[key] = h('dd', { class: `fact-${key}`, text: '…' });
    list.append(h('div', {}, h('dt', { text: label }), facts[key]));
  }
  const element = h('article', { class: 'card answer', dataset: { requested } },
    h('header', { class: 'card-head' }, h('h3', {}, 'Asked ', h('code', { text: requested }))),
    list, output, status);

  const finish = (state, message) => {
    element.dataset.state = state;
    output.setAttribute('aria-busy', 'false');
    status.className = `answer-status ${state}`;
    status.textContent = message;
    for (const node of Object.values(facts)) if (node.textContent === '…') node.textContent = '—';
  };
  return {
    element,
    route(headers) {
      facts.provider.textContent = headers.get('x-llmgate-provider') ?? '—';
      facts.model.textContent = headers.get('x-llmgate-model') ?? '—';
      facts.attempts.textContent = headers.get('x-llmgate-attempts') ?? '—';
      facts.source.textContent = headers.get('x-llmgate-key-source') ?? '—';
      status.textContent = 'Streaming…';
    },
    append(delta) {
      text.appendData(delta);
    },
    usage(usage) {
      facts.tokens.textContent = `${count(usage.prompt_tokens)} in · ${count(usage.completion_tokens)} out`;
      const read = Number(usage.prompt_tokens_details?.cached_tokens ?? 0);
      const written = Number(usage.prompt_tokens_details?.cache_creation_tokens ?? 0);
      facts.cached.textContent = written > 0 ? `${count(read)} read · ${count(written)} written` : `${count(read)} read`;
      facts.reasoning.textContent = count(usage.completion_tokens_details?.reasoning_tokens ?? 0);
    },
    cost(micros, breakdown) {
      facts.cost.textContent = credits(micros);
      element.dataset.costMicros = String(micros);
      if (breakdown) facts.cost.title = costByClass(breakdown);
    },
    done(reason) {
      finish('done', reason && reason !== 'stop' ? `Finished (${reason}).` : 'Finished.');
    },
    fail(message) {
      finish('error', message);
      status.setAttribute('role', 'alert');
    },
    stopped() {
      finish('stopped', 'Stopped.');
    },
  };
}

/** What each token class cost, one line per class that had tokens. */
function costByClass(breakdown) {
  const lines = [];
  for (const [key, label] of [['uncached_prompt', 'prompt'], ['cache_read', 'cache reads'], ['cache_write', 'cache writes'], ['output', 'output']]) {
    const part = breakdown[key];
    if (part && Number(part.tokens) > 0) lines.push(`${label}: ${count(part.tokens)} tokens, ${credits(part.micros)}`);
  }
  return lines.join('\n');
}

/** Stream one chat into `card`; never throws. */
async function stream(api, card, body, signal) {
  let response;
  try {
    response = await api.send('/v1/chat/completions', { method: 'POST', body, signal });
  } catch (error) {
    if (signal.aborted) card.stopped();
    else card.fail(error.message);
    return;
  }
  card.route(response.headers);
  let finished = false;
  let reason = null;
  try {
    for await (const data of sseData(response.body, signal)) {
      if (data === '[DONE]') {
        finished = true;
        break;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue;
      }
      if (chunk.error) {
        card.fail(chunk.error.message ?? 'The stream failed.');
        return;
      }
      const choice = chunk.choices?.[0];
      if (typeof choice?.delta?.content === 'string') card.append(choice.delta.content);
      if (choice?.finish_reason) reason = choice.finish_reason;
      if (chunk.usage) card.usage(chunk.usage);
      if (chunk.llmgate && chunk.llmgate.cost_micros !== undefined) card.cost(chunk.llmgate.cost_micros, chunk.llmgate.cost_breakdown);
    }
  } catch (error) {
    if (!signal.aborted) {
      card.fail(`The stream broke off: ${error.message}`);
      return;
    }
  }
  if (signal.aborted) card.stopped();
  else if (finished) card.done(reason);
  else card.fail('The stream ended before the answer was complete.');
}

export function createLab(ctx) {
  let controller = null;
  const modelA = select([['auto', 'auto']], 'auto', { class: 'model-a' });
  const modelB = select([['auto', 'auto']], 'auto', { class: 'model-b' });
  const power = select(POWER_LEVELS, '', { class: 'power' });
  const compare = h('input', { type: 'checkbox', id: 'lab-compare', class: 'compare' });
  const maxTokens = h('input', { type: 'number', min: '1', step: '1', inputmode: 'numeric', placeholder: 'default', class: 'max-tokens' });
  const prompt = h('textarea', { rows: 4, required: true, class: 'prompt', placeholder: 'Ask something…' });
  const send = h('button', { type: 'submit', class: 'primary send', text: 'Send' });
  const stop = h('button', { type: 'button', class: 'stop', text: 'Stop', disabled: true });
  const clear = h('button', { type: 'button', class: 'ghost', text: 'Clear answers' });
  const runs = h('div', { class: 'runs' });
  const second = field('Second model', modelB);
  second.hidden = true;
  const message = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });

  compare.addEventListener('change', () => { second.hidden = !compare.checked; });
  prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener('click', () => controller?.abort());
  clear.addEventListener('click', () => fill(runs));

  const form = h('form', { class: 'lab-form', 'aria-label': 'Prompt' },
    h('div', { class: 'row' },
      field('Model', modelA),
      field('Power level', power),
      field('Max tokens', maxTokens),
    ),
    h('div', { class: 'field check' }, compare, h('label', { for: 'lab-compare', text: 'Compare two models side by side' })),
    second,
    field('Prompt', prompt, 'Ctrl+Enter sends'),
    h('div', { class: 'actions' }, send, stop, clear),
    message,
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) {
      message.textContent = 'Write a prompt first.';
      prompt.focus();
      return;
    }
    message.textContent = '';
    const models = compare.checked ? [modelA.value, modelB.value] : [modelA.value];
    controller = new AbortController();
    const { signal } = controller;
    send.disabled = true;
    stop.disabled = false;
    const cards = models.map(answerCard);
    const run = h('section', { class: 'run', 'aria-label': 'Answer' },
      h('blockquote', { class: 'asked', text: text }),
      h('div', { class: cards.length > 1 ? 'answers compare' : 'answers' }, cards.map((c) => c.element)));
    runs.prepend(run);
    const base = { stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: text }] };
    if (power.value) base.power_level = power.value;
    const limit = Number.parseInt(maxTokens.value, 10);
    if (limit > 0) base.max_tokens = limit;
    await Promise.all(models.map((model, i) => stream(ctx.api, cards[i], { ...base, model }, signal)));
    if (controller?.signal === signal) controller = null;
    send.disabled = false;
    stop.disabled = true;
  });

  let chosen = false;
  modelA.addEventListener('change', () => { chosen = true; });
  modelB.addEventListener('change', () => { chosen = true; });

  async function refresh() {
    try {
      // The lab chats: embedding models have no place in it.
      const models = (await ctx.models()).filter((m) => m.mode !== 'embedding');
      const options = [['auto', 'auto (the router picks by power level)'], ...models.map((m) => [m.id, m.free ? `${m.id} (free)` : m.id])];
      for (const control of [modelA, modelB]) {
        const keep = control.value;
        fill(control, options.map(([value, label]) => h('option', { value, text: label })));
        const fallback = control === modelA ? (models[0]?.id ?? 'auto') : (models[1]?.id ?? models[0]?.id ?? 'auto');
        control.value = chosen && options.some(([value]) => value === keep) ? keep : fallback;
      }
    } catch (error) {
      message.textContent = `Could not load the models: ${error.message}`;
    }
  }

  const element = h('div', {},
    h('p', { class: 'lead', text: 'Try a model with your own key and credits. Answers stream in as they are generated.' }),
    form, runs);
  return { element, refresh, stop: () => controller?.abort() };
}
