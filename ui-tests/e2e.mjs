// End-to-end test of the LLM Hub in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded).
//
// Started by llmgate-server/tests/ui_browser.rs against a real server it runs in-process.
// Environment:
//   LLMGATE_URL            the server, e.g. http://127.0.0.1:4000
//   LLMGATE_MASTER_KEY     the master key (an admin)
//   LLMGATE_USER_KEY       a user on a tier with BYOK (`starter`), with credits
//   LLMGATE_FREE_KEY       a user on the `free` tier (no BYOK)
//   LLMGATE_PRICED_MODEL   a priced model on provider LLMGATE_BYOK_PROVIDER (fake upstream)
//   LLMGATE_SLOW_MODEL     a model whose stream takes long (for Stop)
//   LLMGATE_FLAKY_MODEL    a model whose upstream fails and that falls back to the priced one
//   LLMGATE_DOOMED_MODEL   a model whose only upstream fails
//   LLMGATE_BYOK_PROVIDER  the provider to store a BYOK key for
//   LLMGATE_BYOK_KEY       the key to store
//   LLMGATE_CHROMIUM       the browser (default /usr/bin/chromium)
//   LLMGATE_UI_SCREENSHOTS=1 and LLMGATE_UI_SCREENSHOT_DIR: save a picture of each tab there
// Exit status 0 when every step passed; the first failing step stops the run.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import { sseData } from '../llmgate-server/ui/js/sse.js';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const URL_BASE = env('LLMGATE_URL').replace(/\/$/, '');
const MASTER = env('LLMGATE_MASTER_KEY');
const USER = env('LLMGATE_USER_KEY');
const FREE = env('LLMGATE_FREE_KEY');
const PRICED = env('LLMGATE_PRICED_MODEL');
const SLOW = env('LLMGATE_SLOW_MODEL');
const FLAKY = env('LLMGATE_FLAKY_MODEL');
const DOOMED = env('LLMGATE_DOOMED_MODEL');
const BYOK_PROVIDER = env('LLMGATE_BYOK_PROVIDER');
const BYOK_KEY = env('LLMGATE_BYOK_KEY');
const CHROMIUM = env('LLMGATE_CHROMIUM', '/usr/bin/chromium');
const SHOTS = process.env.LLMGATE_UI_SCREENSHOTS === '1' ? env('LLMGATE_UI_SCREENSHOT_DIR') : null;
const SECRETS = [MASTER, USER, FREE, BYOK_KEY]; // keys made during the run are added
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** Everything a page printed or tried, to check at the end. */
const seen = { console: [], errors: [], foreign: [] };

async function newPage(viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (message) => seen.console.push(message.text()));
  page.on('pageerror', (error) => seen.errors.push(error.message));
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(URL_BASE) && !url.startsWith('data:')) seen.foreign.push(url);
  });
  page.on('dialog', (dialog) => dialog.accept());
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (event) => window.__csp.push(`${event.violatedDirective} ${event.blockedURI}`));
  });
  return page;
}

let failed = false;
let current = null;

async function step(name, action) {
  if (failed) return;
  try {
    await action();
    console.log(`ok - ${name}`);
  } catch (error) {
    failed = true;
    console.log(`FAIL - ${name}\n${error.stack ?? error}`);
    if (current) {
      const path = join(tmpdir(), 'llmgate-ui-failure.png');
      await current.screenshot({ path, fullPage: true }).catch(() => {});
      console.log(`(a screenshot of the page is at ${path})`);
    }
  }
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  // A passing toast would cover part of the picture.
  await page.evaluate(() => {
    document.activeElement?.blur();
    document.querySelector('#toast').hidden = true;
  });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, key) {
  await page.goto(`${URL_BASE}/ui`);
  await page.locator('#signin-key').fill(key);
  await page.locator('#signin-submit').click();
  await page.locator('#hub:not([hidden])').waitFor();
}

async function signOut(page) {
  await page.locator('#signout').click();
  await page.locator('#signin:not([hidden])').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sessionStorage is empty after sign-out');
}

async function openTab(page, id) {
  await page.locator(`#tab-${id}`).click();
  await page.locator(`#panel-${id}:not([hidden])`).waitFor();
}

/** Retry `check` (clicking the panel's Refresh between tries) until it passes. */
async function eventually(page, panel, check, tries = 20) {
  for (let i = 1; ; i++) {
    try {
      return await check();
    } catch (error) {
      if (i >= tries) throw error;
      await page.locator(`#panel-${panel} button.refresh`).click();
      await page.waitForTimeout(250);
    }
  }
}

async function text(locator) {
  return (await locator.textContent())?.trim() ?? '';
}

async function noHorizontalOverflow(page, where) {
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(scroll <= client, `${where}: page is ${scroll}px wide in a ${client}px viewport`);
}

async function api(path, key, options = {}) {
  const response = await fetch(`${URL_BASE}${path}`, {
    ...options,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...options.headers },
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

// ---------------------------------------------------------------------------------------------

// The page's SSE reader runs in Node as well (it uses only web streams): feed it a stream cut
// in hostile places first.
await step('the SSE reader survives any chunking', async () => {
  const text = ': a comment\r\ndata: {"a":"héllo ✓"}\r\n\r\nevent: x\r\ndata: line one\r\ndata: line two\n\ndata:[DONE]\r\rdata: unfinished';
  const encoder = new TextEncoder();
  const bytes = encoder.encode(text);
  const at = (index) => encoder.encode(text.slice(0, index)).length;
  const rest = (first) => [first, bytes.length];
  const plans = {
    whole: [bytes.length],
    'one byte': Array(bytes.length).fill(1),
    'seven bytes': Array(Math.ceil(bytes.length / 7)).fill(7),
    'between CR and LF': rest(at(text.indexOf('one\r') + 4)),
    'inside a UTF-8 character': rest(at(text.indexOf('é')) + 1),
  };
  for (const [name, sizes] of Object.entries(plans)) {
    let offset = 0;
    const stream = new ReadableStream({
      pull(controller) {
        const size = sizes.shift();
        if (size === undefined || offset >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
      },
    });
    const events = [];
    for await (const data of sseData(stream)) events.push(data);
    assert.deepEqual(events, ['{"a":"héllo ✓"}', 'line one\nline two', '[DONE]'], name);
  }
});

const page = await newPage({ width: 1280, height: 800 });
current = page;

await step('the page is served with a strict CSP and security headers', async () => {
  const response = await page.goto(`${URL_BASE}/ui`);
  const headers = response.headers();
  assert.equal(response.status(), 200);
  assert.equal(headers['content-security-policy'], CSP);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.match(headers['content-type'], /^text\/html/);
  const script = await page.request.get(`${URL_BASE}/ui/js/app.js`);
  assert.match(script.headers()['content-type'], /^text\/javascript/);
  assert.equal(script.headers()['content-security-policy'], CSP);
  await page.locator('#signin-key').waitFor();
});

await step('a wrong key is refused in words and nothing is stored', async () => {
  await page.locator('#signin-key').fill('lg-not-a-real-key');
  await page.locator('#signin-submit').click();
  await page.locator('#signin-error.error').waitFor();
  assert.match(await text(page.locator('#signin-error')), /refused/i);
  assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
});

await step('sign in with a user key: kept in sessionStorage only, never in the URL', async () => {
  await page.locator('#signin-key').fill(USER);
  await page.locator('#signin-submit').click();
  await page.locator('#hub:not([hidden])').waitFor();
  const stores = await page.evaluate(() => ({
    session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
    local: Object.keys(localStorage).map((k) => localStorage.getItem(k)),
  }));
  assert.ok(stores.session.includes(USER), 'the key is in sessionStorage');
  assert.ok(!stores.local.some((v) => v.includes(USER)), 'the key is not in localStorage');
  assert.ok(!page.url().includes(USER), 'the key is not in the URL');
  assert.equal(await page.locator('#tab-users').count(), 0, 'a user sees no Users tab');
});

await step('the catalog lists the configured models with prices, badges and filters', async () => {
  await openTab(page, 'catalog');
  const priced = page.locator(`#panel-catalog tr[data-model="${PRICED}"]`);
  await priced.waitFor();
  assert.match(await text(priced), /\$0\.002/);
  // Cached prompt tokens cost the input price unless the model says otherwise.
  assert.equal(await text(priced.locator('.cache-read')), '$0.002');
  assert.equal(await text(priced.locator('.cache-write')), '$0.002');
  const demo = page.locator('#panel-catalog tr[data-model="demo/echo"]');
  assert.match(await text(demo.locator('.badge.free')), /free/);
  await page.locator('#panel-catalog input[type="search"]').fill('echo');
  assert.equal(await page.locator('#panel-catalog tbody tr').count(), 1);
  await page.locator('#panel-catalog input[type="search"]').fill('');
  await page.locator('#catalog-free').check();
  const free = await page.locator('#panel-catalog tbody tr').evaluateAll((rows) => rows.map((r) => [r.dataset.model, Boolean(r.querySelector('.badge.free'))]));
  assert.ok(free.some(([model]) => model === 'demo/echo'), 'the free model is listed');
  assert.ok(free.every(([, badge]) => badge), `only free models are listed: ${JSON.stringify(free)}`);
  assert.ok(!free.some(([model]) => model === PRICED), 'the priced model is filtered out');
  await page.locator('#catalog-free').uncheck();
  await shot(page, 'catalog');
});

await step('tabs work from the keyboard', async () => {
  await page.locator('#tab-catalog').focus();
  await page.keyboard.press('ArrowRight');
  await page.locator('#panel-providers:not([hidden])').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-providers');
  await page.keyboard.press('ArrowLeft');
  await page.locator('#panel-catalog:not([hidden])').waitFor();
});

await step('the Testing Lab streams an answer with its route and cost', async () => {
  await openTab(page, 'lab');
  await page.locator('#panel-lab select.model-a').selectOption(PRICED);
  await page.locator('#panel-lab textarea.prompt').fill('Say hello to the hub.');
  await page.locator('#panel-lab button.send').click();
  const answer = page.locator('#panel-lab .answer').first();
  await page.locator('#panel-lab .answer[data-state]').first().waitFor();
  assert.equal(await answer.getAttribute('data-state'), 'done', await text(answer));
  assert.match(await text(answer.locator('.answer-text')), /Hello from the fake upstream/);
  assert.equal(await text(answer.locator('.fact-provider')), BYOK_PROVIDER);
  assert.equal(await text(answer.locator('.fact-model')), PRICED);
  assert.equal(await text(answer.locator('.fact-attempts')), '1');
  assert.equal(await text(answer.locator('.fact-source')), 'platform');
  // SPEC §6's worked example: starter, $0.002/1K, 400 + 600 tokens, balanced → 700000 micros.
  assert.equal(await answer.getAttribute('data-cost-micros'), '700000');
  assert.equal(await text(answer.locator('.fact-cost')), '0.7 credits');
  // The fake reports 300 of the 400 prompt tokens as cached and 200 of the 600 as reasoning.
  assert.equal(await text(answer.locator('.fact-tokens')), '400 in · 600 out');
  assert.equal(await text(answer.locator('.fact-cached')), '300 read');
  assert.equal(await text(answer.locator('.fact-reasoning')), '200');
  assert.match(await answer.locator('.fact-cost').getAttribute('title'), /cache reads: 300 tokens, 0\.21 credits/);
});

await step('compare mode answers from two models side by side', async () => {
  await page.locator('#lab-compare').check();
  await page.locator('#panel-lab select.model-b').selectOption('demo/echo');
  await page.locator('#panel-lab textarea.prompt').fill('compare me');
  await page.locator('#panel-lab button.send').click();
  const run = page.locator('#panel-lab .run').first();
  await run.locator('.answers.compare .answer').nth(1).waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('#panel-lab .run:first-child .answer')].every((a) => a.dataset.state));
  const states = await run.locator('.answer').evaluateAll((cards) => cards.map((c) => [c.dataset.requested, c.dataset.state]));
  assert.deepEqual(states, [[PRICED, 'done'], ['demo/echo', 'done']]);
  assert.match(await text(run.locator('.answer').nth(1).locator('.answer-text')), /Echo: compare me/);
  assert.equal(await text(run.locator('.answer').nth(1).locator('.fact-cost')), '0 credits');
  await shot(page, 'testing-lab');
});

await step('Stop aborts a stream that is still running', async () => {
  await page.locator('#lab-compare').uncheck();
  await page.locator('#panel-lab select.model-a').selectOption(SLOW);
  await page.locator('#panel-lab textarea.prompt').fill('take your time');
  await page.locator('#panel-lab button.send').click();
  const answer = page.locator('#panel-lab .answer').first();
  await page.waitForFunction(() => document.querySelector('#panel-lab .answer .answer-text')?.textContent.length > 0);
  assert.equal(await answer.getAttribute('data-state'), null, 'still streaming');
  await page.locator('#panel-lab button.stop').click();
  await page.locator('#panel-lab .answer[data-state="stopped"]').first().waitFor();
  assert.ok(await page.locator('#panel-lab button.send').isEnabled());
  assert.ok(await page.locator('#panel-lab button.stop').isDisabled());
});

await step('a BYOK key is stored, its hint shown, replaced and deleted', async () => {
  await openTab(page, 'providers');
  const card = page.locator(`#panel-providers article[data-provider="${BYOK_PROVIDER}"]`);
  await card.waitFor();
  await card.locator('.key-input').fill(BYOK_KEY);
  await card.locator('button[type="submit"]').click();
  const hint = page.locator(`#panel-providers article[data-provider="${BYOK_PROVIDER}"] .key-hint`);
  await hint.waitFor();
  const shown = await text(hint);
  assert.ok(shown.endsWith(BYOK_KEY.slice(-4)), `hint ${shown} ends with the key's last characters`);
  assert.ok(!shown.includes(BYOK_KEY), 'the hint is masked');
  assert.ok(!(await page.content()).includes(BYOK_KEY), 'the key is nowhere in the page');
  // Replace with another, then delete it.
  await card.locator('.key-input').fill('sk-replacement-key-0000zzzz');
  await card.locator('button[type="submit"]').click();
  await page.waitForFunction((provider) => document.querySelector(`#panel-providers article[data-provider="${provider}"] .key-hint`)?.textContent.endsWith('zzzz'), BYOK_PROVIDER);
  await card.locator('button.danger').click();
  await page.waitForFunction((provider) => !document.querySelector(`#panel-providers article[data-provider="${provider}"] .key-hint`), BYOK_PROVIDER);
  // Store it again for the next step.
  await card.locator('.key-input').fill(BYOK_KEY);
  await card.locator('button[type="submit"]').click();
  await hint.waitFor();
  await shot(page, 'api-providers');
});

await step('with a BYOK key the chat uses it and costs nothing', async () => {
  await openTab(page, 'lab');
  await page.locator('#panel-lab select.model-a').selectOption(PRICED);
  await page.locator('#panel-lab textarea.prompt').fill('on my own key');
  await page.locator('#panel-lab button.send').click();
  const answer = page.locator('#panel-lab .answer').first();
  await page.locator('#panel-lab .run:first-child .answer[data-state]').waitFor();
  assert.equal(await answer.getAttribute('data-state'), 'done', await text(answer));
  assert.equal(await text(answer.locator('.fact-source')), 'byok');
  assert.equal(await answer.getAttribute('data-cost-micros'), '0');
});

await step('Analytics shows the balance, the usage and the charge', async () => {
  await openTab(page, 'analytics');
  await page.locator('#panel-analytics .balance-value').waitFor();
  assert.match(await text(page.locator('#panel-analytics .balance-value')), /credits/);
  await eventually(page, 'analytics', async () => {
    const chart = page.locator('#panel-analytics figure.chart[data-group="model"]');
    await chart.waitFor({ timeout: 2000 });
    assert.match(await text(chart), new RegExp(PRICED.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    await page.locator('#panel-analytics .ledger-table tr[data-kind="charge"]').first().waitFor({ timeout: 2000 });
  });
  const charge = page.locator('#panel-analytics .ledger-table tr[data-kind="charge"]', { hasText: PRICED }).first();
  assert.match(await text(charge), /-0\.7 credits/);
  assert.match(await text(charge), /400 \+ 600 tokens · 300 cached · 200 reasoning/);
  for (const [metric, per] of [['cached', 300], ['reasoning', 200]]) {
    await page.locator('#panel-analytics select.metric').selectOption(metric);
    const chart = page.locator('#panel-analytics figure.chart[data-group="model"]');
    const label = await chart.locator('svg').getAttribute('aria-label');
    const shown = new RegExp(`${PRICED.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ([\\d,]+)`).exec(label);
    assert.ok(shown, `${metric}: ${label}`);
    const value = Number(shown[1].replace(/,/g, ''));
    assert.ok(value > 0 && value % per === 0, `${metric}: ${label}`);
  }
  await page.locator('#panel-analytics select.metric').selectOption('requests');
  assert.match(await text(page.locator('#panel-analytics figure.chart[data-group="provider"]')), new RegExp(BYOK_PROVIDER));
  assert.ok(await page.locator('#panel-analytics figure.chart[data-group="day"] svg rect.bar').count() >= 1);
  await page.locator('#panel-analytics .package').first().waitFor();
  await shot(page, 'analytics');
});

await step('a package can be bought when purchases are enabled', async () => {
  const buy = page.locator('#panel-analytics .package button').first();
  await buy.waitFor();
  await Promise.all([page.waitForURL(/checkout=fake/), buy.click()]);
  // Back on the hub (the fake checkout sends us to it): still signed in from the session.
  await page.locator('#hub:not([hidden])').waitFor();
});

await step('a user creates a limited key with a budget, sees it once, its spend, and revokes it', async () => {
  await openTab(page, 'keys');
  await page.locator('#panel-keys .key-name').fill('hub-ci');
  await page.locator('#panel-keys .key-models').fill(PRICED);
  await page.locator('#panel-keys .key-budget').fill('5');
  await page.locator('#panel-keys .key-period').selectOption('daily');
  await page.locator('#panel-keys form.create-key button[type="submit"]').click();
  const shown = page.locator('#panel-keys .new-key');
  await shown.waitFor();
  const limited = await text(shown);
  SECRETS.push(limited);
  // The fake upstream streams (its answer is SSE), so the chat streams too.
  const chat = (model) => api('/v1/chat/completions', limited, { method: 'POST', body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal((await chat(PRICED)).status, 200);
  const refused = await chat('demo/echo');
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'model_not_allowed');
  await page.locator('#panel-keys .key-once button', { hasText: 'I have saved it' }).click();
  assert.equal(await page.locator('#panel-keys .new-key').count(), 0, 'the key is shown only once');
  const listed = (await api('/api/v1/keys', USER)).body.data.find((k) => k.name === 'hub-ci');
  // This user's own provider key served it (BYOK, uncharged), so the budget spent nothing.
  assert.equal(listed.spend_micros, 0);
  const row = page.locator(`#panel-keys tr[data-key="${listed.key_id}"]`);
  await eventually(page, 'keys', async () => {
    assert.equal(await text(row.locator('.key-spend')), '0 of 5 credits per day');
  });
  await shot(page, 'keys');
  await row.locator('button.revoke').click();
  await page.waitForFunction((id) => document.querySelector(`#panel-keys tr[data-key="${id}"]`)?.dataset.state === 'revoked', listed.key_id);
  assert.equal((await chat(PRICED)).status, 401);
});

await step('Requests lists each call with its status, attempts, tokens and cost', async () => {
  const ask = (model, id) => api('/v1/chat/completions', USER, {
    method: 'POST',
    headers: { 'x-request-id': id },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'log me' }] }),
  });
  assert.equal((await ask(PRICED, 'hub-ok')).status, 200);
  assert.equal((await ask(FLAKY, 'hub-fallback')).status, 200);
  assert.equal((await ask('no-such-model', 'hub-missing')).status, 404);
  const failed = (await ask(DOOMED, 'hub-failed')).status;
  assert.ok([502, 503].includes(failed), `all candidates failed: ${failed}`);
  await openTab(page, 'requests');
  const row = (id) => page.locator(`#panel-requests tr[data-request-id="${id}"]`);
  await eventually(page, 'requests', () => row('hub-ok').waitFor({ timeout: 1000 }));
  // The user's own key for the priced model's provider is stored by now: nothing charged.
  assert.match(await text(row('hub-ok')), /200.*0 credits/);
  assert.equal(await text(row('hub-fallback').locator('.request-attempts')), '2');
  assert.equal(await text(row('hub-failed').locator('.request-attempts')), '1');
  assert.match(await text(row('hub-failed')), new RegExp(`${failed} `));
  assert.match(await text(row('hub-missing')), /404 model_not_found/);
  assert.equal(await text(row('hub-missing').locator('.request-attempts')), '0');

  // The status filter: errors only, then a model.
  const filters = page.locator('#panel-requests form.requests-filters');
  await filters.locator('select.requests-status').selectOption('error');
  await filters.locator('button[type="submit"]').click();
  await row('hub-ok').waitFor({ state: 'detached' });
  await row('hub-missing').waitFor();
  await row('hub-failed').waitFor();
  await filters.locator('select.requests-status').selectOption('');
  await filters.locator('input.requests-model').fill(FLAKY);
  await filters.locator('button[type="submit"]').click();
  await row('hub-missing').waitFor({ state: 'detached' });
  assert.equal(await page.locator('#panel-requests tr.request-row').count(), 0, 'a fallback is listed under the model that served it');
  await filters.locator('input.requests-model').fill(PRICED);
  await filters.locator('button[type="submit"]').click();
  await row('hub-fallback').waitFor();

  // The fallback's detail: the failed attempt, then the one that answered.
  await row('hub-fallback').locator('button.request-open').click();
  const detail = page.locator('#panel-requests .request-detail');
  await detail.locator('h3', { hasText: 'hub-fallback' }).waitFor();
  assert.equal(await detail.locator('.attempts li').count(), 2);
  assert.equal(await detail.locator('.attempts li.attempt-failed').count(), 1);
  assert.match(await text(detail.locator('.attempts li').first()), /brokenfake.*500/);
  // The Testing Lab's first answer, on the platform's key: tokens and cost by class.
  const charged = page.locator('#panel-requests tr.request-row', { hasText: '0.7 credits' }).first();
  await charged.locator('button.request-open').click();
  await detail.locator('.request-cost', { hasText: '0.7 credits' }).waitFor();
  assert.match(await text(detail.locator('table.token-classes')), /Cache read\s*300/);
  assert.match(await text(detail.locator('table.token-classes')), /of which reasoning\s*200/);
  await shot(page, 'requests');
  await filters.locator('input.requests-model').fill('');
});

await step('sign-out forgets the key', async () => {
  await signOut(page);
  assert.equal(await page.locator('#tablist [role="tab"]').count(), 0, 'no tab is left behind');
});

await step('a tier without BYOK is told why', async () => {
  await signIn(page, FREE);
  await openTab(page, 'providers');
  const callout = page.locator('#panel-providers .callout.warn');
  await callout.waitFor();
  assert.match(await text(callout), /tier `free` has no BYOK/i);
  await page.locator(`#panel-providers article[data-provider="${BYOK_PROVIDER}"]`).waitFor();
  assert.equal(await page.locator('#panel-providers .key-input').count(), 0, 'no key form is offered');
  await shot(page, 'api-providers-free-tier');
  // A PUT anyway is refused by the server with the same words.
  const refused = await api(`/api/v1/llm/providers/${BYOK_PROVIDER}/key`, FREE, { method: 'PUT', body: JSON.stringify({ api_key: 'sk-not-stored' }) });
  assert.equal(refused.status, 403);
  assert.ok((await text(callout)).includes(refused.body.error.message));
  await signOut(page);
});

let created = null;
await step('an admin creates a user, sees the key once, changes the tier and adds credits', async () => {
  await signIn(page, MASTER);
  await openTab(page, 'providers');
  assert.match(await text(page.locator('#panel-providers .callout.warn')), /master key/i, 'the master key is told why it has no keys');
  await openTab(page, 'users');
  await page.locator('#panel-users .new-user-id').fill('hub-bob');
  // The tiers offered are the gateway's own, as GET /api/v1/admin/tiers lists them.
  const configured = await api('/api/v1/admin/tiers', MASTER);
  assert.equal(configured.status, 200, JSON.stringify(configured.body));
  await page.waitForFunction(() => !document.querySelector('#panel-users .new-user-tier').disabled);
  const offered = await page.locator('#panel-users .new-user-tier option').evaluateAll((options) => options.map((o) => o.value));
  assert.deepEqual(offered, configured.body.data.map((tier) => tier.name));
  await page.locator('#panel-users .new-user-tier').selectOption('starter');
  await page.locator('#panel-users form.create-user button[type="submit"]').click();
  const key = page.locator('#panel-users .new-key');
  await key.waitFor();
  created = await text(key);
  assert.ok(created.length >= 16, 'a key is shown');
  assert.ok(await page.locator('#panel-users .key-once button', { hasText: 'Copy key' }).isVisible());
  const row = page.locator('#panel-users tr[data-user="hub-bob"]');
  await row.waitFor();
  await page.locator('#panel-users .key-once button', { hasText: 'I have saved it' }).click();
  assert.equal(await page.locator('#panel-users .new-key').count(), 0, 'the key is shown only once');

  await row.locator('select.user-tier').selectOption('professional');
  await page.waitForFunction(() => document.querySelector('#panel-users tr[data-user="hub-bob"] select.user-tier')?.value === 'professional'
    && !document.querySelector('#panel-users tr[data-user="hub-bob"] select.user-tier').disabled);
  const before = await api('/api/v1/llm/credits', created);
  assert.equal(before.status, 200, JSON.stringify(before.body));
  assert.equal(before.body.tier, 'professional');

  await row.locator('.credit-amount').fill('250');
  await row.locator('.add-credits button').click();
  await page.waitForFunction((micros) => {
    const cell = document.querySelector('#panel-users tr[data-user="hub-bob"] .user-balance');
    return cell && cell.textContent.replace(/,/g, '').includes(String(micros / 1e6));
  }, before.body.balance_micros + 250_000_000);
  const after = await api('/api/v1/llm/credits', created);
  assert.equal(after.body.balance_micros, before.body.balance_micros + 250_000_000);
  await shot(page, 'users');
});

await step('an admin creates a team, makes a user its owner and tops it up; the owner makes a team key', async () => {
  const member = (await api('/api/v1/llm/credits', USER)).body.user_id;
  await openTab(page, 'teams');
  await page.waitForFunction(() => document.querySelectorAll('#panel-teams .new-team-tier option').length > 0);
  await page.locator('#panel-teams .new-team-id').fill('hub-team');
  await page.locator('#panel-teams .new-team-tier').selectOption('starter');
  await page.locator('#panel-teams form.create-team button[type="submit"]').click();
  const card = page.locator('#panel-teams article[data-team="hub-team"]');
  await card.waitFor();
  await card.locator('.member-id').fill(member);
  await card.locator('.member-role').selectOption('owner');
  await card.locator('.add-member button').click();
  await page.locator(`#panel-teams article[data-team="hub-team"] li[data-member="${member}"]`).waitFor();
  const before = (await api('/api/v1/llm/credits?team_id=hub-team', MASTER)).body.balance_micros;
  await page.locator('#panel-teams article[data-team="hub-team"] .team-amount').fill('10');
  await page.locator('#panel-teams article[data-team="hub-team"] .team-top-up button').click();
  await page.waitForFunction((micros) => {
    const cell = document.querySelector('#panel-teams article[data-team="hub-team"] .team-balance');
    return cell && cell.textContent.replace(/,/g, '').includes(String(micros / 1e6));
  }, before + 10_000_000);
  await shot(page, 'teams');
  const teamKey = await api('/api/v1/keys', USER, { method: 'POST', body: JSON.stringify({ team_id: 'hub-team' }) });
  assert.equal(teamKey.status, 201, JSON.stringify(teamKey.body));
  SECRETS.push(teamKey.body.api_key);
  const outsider = await api('/api/v1/llm/credits?team_id=hub-team', FREE);
  assert.equal(outsider.status, 403);
});

await step('admins see the Users tab; the page made no request to another origin', async () => {
  assert.equal(await page.locator('#tab-users').count(), 1);
  assert.deepEqual(seen.foreign, []);
});

// Narrow screens.
const phone = await newPage({ width: 390, height: 844 });
current = phone;
await step('at 390 px wide no tab overflows horizontally', async () => {
  await signIn(phone, MASTER);
  for (const id of ['catalog', 'providers', 'lab', 'analytics', 'keys', 'requests', 'users', 'teams']) {
    await openTab(phone, id);
    await phone.locator(`#panel-${id} .state.loading`).first().waitFor({ state: 'detached' }).catch(() => {});
    if (id === 'lab') {
      await phone.locator('#lab-compare').check();
      await phone.locator('#panel-lab select.model-a').selectOption(PRICED);
      await phone.locator('#panel-lab select.model-b').selectOption('demo/echo');
      await phone.locator('#panel-lab textarea.prompt').fill('a narrow screen');
      await phone.locator('#panel-lab button.send').click();
      await phone.waitForFunction(() => {
        const cards = [...document.querySelectorAll('#panel-lab .answer')];
        return cards.length === 2 && cards.every((c) => c.dataset.state);
      });
    }
    await noHorizontalOverflow(phone, id);
    if (id === 'catalog' || id === 'lab') await shot(phone, `${id === 'lab' ? 'testing-lab' : id}-390px`);
  }
});

current = null;
await step('no page error, no CSP violation, no key in the console', async () => {
  for (const p of [page, phone]) {
    const violations = await p.evaluate(() => window.__csp);
    assert.deepEqual(violations, [], 'CSP violations');
  }
  assert.deepEqual(seen.errors, [], 'page errors');
  for (const line of seen.console) {
    for (const secret of SECRETS.concat(created ? [created] : [])) {
      assert.ok(!line.includes(secret), 'a key was printed to the console');
    }
  }
});

await browser.close();
console.log(failed ? 'LLM Hub e2e: FAILED' : 'LLM Hub e2e: all steps passed');
process.exit(failed ? 1 : 0);
