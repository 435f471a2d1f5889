// The API key lives in sessionStorage only: gone when the tab closes, never in localStorage,
// the URL or the console.

const SLOT = 'llmgate.hub.key';

export function savedKey() {
  try {
    return sessionStorage.getItem(SLOT) || '';
  } catch {
    return '';
  }
}

export function saveKey(key) {
  sessionStorage.setItem(SLOT, key);
}

export function forgetKey() {
  try {
    sessionStorage.removeItem(SLOT);
  } catch {
    // Storage disabled: nothing was kept.
  }
}
