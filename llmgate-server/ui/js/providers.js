// API Providers: the caller's own keys (BYOK) per provider: set, replace, delete. The gateway
// only ever shows a masked hint of a stored key; the key typed here goes out once, in a PUT.

import { h, fill, field, loading, empty, errorBox, busy } from './dom.js';
import { items } from './api.js';

function keyPath(name) {
  return `/api/v1/llm/providers/${encodeURIComponent(name)}/key`;
}

export function createProviders(ctx) {
  const notice = h('div', { class: 'notice-slot' });
  const body = h('div', { class: 'provider-list' });

  function explain(error) {
    // 403: this tier has no BYOK right. The server's message says why; show it once, on top.
    if (error.status === 403) {
      fill(notice, h('div', { class: 'callout warn', role: 'alert' },
        h('strong', { text: 'Your own keys are not available to you. ' }), error.message));
    }
  }

  function card(provider, allowed) {
    const name = provider.name ?? provider.id;
    const configured = Boolean(provider.byok_configured);
    const takesKey = provider.accepts_key !== false;
    const message = h('p', { class: 'row-message', role: 'status', 'aria-live': 'polite' });
    const input = h('input', {
      type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: configured ? 'paste a new key to replace it' : 'paste your key',
      'aria-label': `API key for ${name}`, class: 'key-input',
    });
    const save = h('button', { type: 'submit', class: 'primary', text: configured ? 'Replace key' : 'Save key' });
    const remove = h('button', { type: 'button', class: 'danger', text: 'Delete key', hidden: !configured });

    const form = h('form', { class: 'key-form', 'aria-label': `Your key for ${name}` }, input, save, remove);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(save, async () => {
        const key = input.value.trim();
        if (!key) {
          fill(message, h('span', { class: 'error', text: 'Paste a key first.' }));
          input.focus();
          return;
        }
        fill(message, 'Saving…');
        try {
          await ctx.api.json(keyPath(name), { method: 'PUT', body: { api_key: key } });
          input.value = '';
          ctx.toast(`Your ${name} key is saved.`);
          await refresh();
        } catch (error) {
          explain(error);
          fill(message, h('span', { class: 'error', text: error.message }));
        }
      })();
    });
    remove.addEventListener('click', busy(remove, async () => {
      if (!window.confirm(`Delete your ${name} key? Requests will use the platform key (and cost credits) again.`)) return;
      fill(message, 'Deleting…');
      try {
        await ctx.api.json(keyPath(name), { method: 'DELETE' });
        ctx.toast(`Your ${name} key is deleted.`);
        await refresh();
      } catch (error) {
        explain(error);
        fill(message, h('span', { class: 'error', text: error.message }));
      }
    }));

    let state;
    if (!takesKey) state = h('p', { class: 'key-state' }, 'This provider runs without a key.');
    else if (configured) state = h('p', { class: 'key-state set' }, 'Your key: ', h('code', { class: 'key-hint', text: provider.key_hint ?? 'set' }));
    else if (provider.platform_key === false) state = h('p', { class: 'key-state' }, 'No platform key: requests to this provider need a key of your own.');
    else state = h('p', { class: 'key-state' }, 'No key of yours: requests use the platform key and cost credits.');
    const editable = takesKey && allowed;
    const facts = [provider.kind, provider.local ? 'local' : null].filter(Boolean).join(' · ');
    return h('article', { class: 'card provider', dataset: { provider: name } },
      h('header', { class: 'card-head' }, h('h3', { text: name }), facts ? h('span', { class: 'hint', text: facts }) : null,
        configured ? h('span', { class: 'badge ok', text: 'BYOK' }) : null),
      state, editable ? form : null, editable ? message : null);
  }

  async function refresh() {
    fill(body, loading('Loading providers…'));
    try {
      const answer = await ctx.api.get('/api/v1/llm/providers');
      const providers = items(answer);
      // The gateway says up front when this caller cannot bring keys, and why (the same words
      // a PUT would get in its 403).
      const allowed = answer?.byok_allowed !== false;
      fill(notice, allowed ? null : h('div', { class: 'callout warn', role: 'alert' },
        h('strong', { text: 'Your own keys are not available to you. ' }),
        answer.byok_reason ?? 'Your tier does not include bring-your-own-key.'));
      fill(body, providers.length ? providers.map((provider) => card(provider, allowed)) : empty('This gateway has no providers configured.'));
    } catch (error) {
      fill(body, errorBox(error, 'Could not load the providers'));
    }
  }

  const element = h('div', {},
    h('p', { class: 'lead', text: 'Bring your own key: requests to a provider where you have a key use it and cost no credits. Keys are stored encrypted; only a masked hint is ever shown again.' }),
    notice, body);
  return { element, refresh };
}
