// Drives the demo in headless Chromium: log in, see the session, revoke it from a second
// browser context through the admin view, and see the first context logged out. Writes a
// screenshot of each step. Run by ../browser.rs with DEMO_URL, CHROMIUM and SHOT_DIR set.
import { chromium } from 'playwright-core';
import path from 'node:path';

const base = process.env.DEMO_URL;
const shots = process.env.SHOT_DIR;
const executablePath = process.env.CHROMIUM;
if (!base || !shots || !executablePath) {
  console.error('DEMO_URL, SHOT_DIR and CHROMIUM must be set');
  process.exit(2);
}

const WAIT = { timeout: 20000 };
const viewport = { width: 1100, height: 1000 };

async function shot(page, name) {
  const file = path.join(shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log('screenshot: ' + file);
}

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
try {
  // 1. Log in as alice in the first context.
  const a = await (await browser.newContext({ viewport })).newPage();
  await a.goto(base + '/');
  await a.locator('#login-card').waitFor(WAIT);
  await a.fill('#username', 'alice');
  await a.click('#login-btn');
  await a.locator('#whoami', { hasText: 'Signed in as alice' }).waitFor(WAIT);
  await shot(a, '1-logged-in');

  // 2. The session is listed as the current one, and it is the only one.
  await a.locator('#sessions-table tbody tr.current').waitFor(WAIT);
  check(await a.locator('#sessions-table tbody tr').count() === 1, 'alice has one session');
  await a.fill('#cart-item', 'tea');
  await a.click('#cart-add');
  await a.locator('#cart-list li', { hasText: 'tea' }).waitFor(WAIT);
  await shot(a, '2-session-listed');

  // 3. A second context: bob logs in, then the admin view revokes alice's session.
  const b = await (await browser.newContext({ viewport })).newPage();
  await b.goto(base + '/');
  await b.fill('#username', 'bob');
  await b.click('#login-btn');
  await b.locator('#whoami', { hasText: 'Signed in as bob' }).waitFor(WAIT);
  await b.click('#admin-link');
  await b.waitForURL(base + '/admin', WAIT);
  const alice = b.locator('.user-card[data-user="alice"]');
  await alice.locator('.revoke-btn').waitFor(WAIT);
  await b.locator('.user-card[data-user="bob"] .revoke-btn').waitFor(WAIT);
  await b.locator('#feed li .kind-created').first().waitFor(WAIT);
  await b.locator('#live-dot.on').waitFor(WAIT);
  await shot(b, '3-admin-view');
  await alice.locator('.revoke-btn').click();
  await alice.getByText('No live sessions.').waitFor(WAIT);
  await b.locator('#feed li', { hasText: 'revoked' }).first().waitFor(WAIT);
  await shot(b, '4-admin-revoked');

  // 4. The first context finds its session ended at its next request.
  await a.click('#refresh-btn');
  await a.locator('#login-card').waitFor(WAIT);
  await a.locator('#login-note', { hasText: 'Your session has ended' }).waitFor(WAIT);
  check(await a.locator('#app').isHidden(), 'the signed-in view is hidden');
  await shot(a, '5-logged-out');
  console.log('browser flow passed');
} finally {
  await browser.close();
}
