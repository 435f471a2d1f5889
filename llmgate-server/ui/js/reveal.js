// A new API key, shown once with a copy button: by the Users and the Keys tabs.

import { h } from './dom.js';

/** The new key, shown once, with a copy button. */
export function keyReveal(owner, apiKey, onDismiss) {
  const code = h('code', { class: 'secret new-key', text: apiKey, tabindex: '0' });
  const copy = h('button', { type: 'button', class: 'primary', text: 'Copy key' });
  const copied = h('span', { class: 'hint', role: 'status', 'aria-live': 'polite' });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(apiKey);
      copied.textContent = 'Copied.';
    } catch {
      // No clipboard permission (plain http, say): select the text for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      copied.textContent = 'Selected: press Ctrl+C to copy.';
    }
  });
  const done = h('button', { type: 'button', class: 'ghost', text: 'I have saved it' });
  done.addEventListener('click', onDismiss);
  return h('div', { class: 'callout key-once', role: 'alert' },
    h('p', {}, h('strong', { text: `API key for ${owner}. ` }), 'It is shown only this once: copy it now and hand it over safely.'),
    code, h('div', { class: 'actions' }, copy, done, copied));
}

