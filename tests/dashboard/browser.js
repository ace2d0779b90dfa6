// Drives headless Chromium (Debian's, through playwright-core) for
// tests/it/dashboard/end_to_end.rs. Environment: DASHBOARD_URL, DASHBOARD_TOKEN,
// DASHBOARD_BOARDS (tiles expected), CHROMIUM, CHROMIUM_PROFILE (a fresh
// directory), optionally DASHBOARD_TAPPED (a board key: the script prints
// READY, waits for a line on stdin, and expects that tile to turn
// "in_progress" without a reload), DASHBOARD_EXPECT (JSON: tile key →
// texts its tile must show), DASHBOARD_DETAIL (the tile whose details
// open; the first by default), DASHBOARD_COACHING_ROWS (people in the
// coaching table; 0 by default), SCREENSHOT_DIR and SCREENSHOT_PREFIX.
// DASHBOARD_LANG (a language code: the browser asks for it with
// Accept-Language and --lang, and the page must speak it), with
// DASHBOARD_TEXTS (JSON: English text → the text expected instead) and
// DASHBOARD_ENGLISH (JSON: English words that must not be on the page),
// and DASHBOARD_SWITCH (a language the picker switches to at the end,
// checked to persist across a reload).
// Prints progress lines, then PASS; exits non-zero on any failure.
'use strict';

const { chromium } = require('playwright-core');
const path = require('path');
const readline = require('readline');

const env = (k, d) => {
  const v = process.env[k];
  if (v === undefined && d === undefined) throw new Error(`${k} is not set`);
  return v === undefined ? d : v;
};
const URL = env('DASHBOARD_URL');
const TOKEN = env('DASHBOARD_TOKEN');
const BOARDS = Number(env('DASHBOARD_BOARDS'));
const TAPPED = env('DASHBOARD_TAPPED', '');
const EXPECT = JSON.parse(env('DASHBOARD_EXPECT', '{}'));
const SHOTS = env('SCREENSHOT_DIR', '');
const PREFIX = env('SCREENSHOT_PREFIX', '3');
const LANG = env('DASHBOARD_LANG', '');
const TEXTS = JSON.parse(env('DASHBOARD_TEXTS', '{}'));
const ENGLISH = JSON.parse(env('DASHBOARD_ENGLISH', '[]'));
const SWITCH = JSON.parse(env('DASHBOARD_SWITCH', 'null'));
const tr = (english) => TEXTS[english] || english;

// Every text on the page a person sees or hears: the visible text, the
// title, and the accessible names and values set in attributes.
async function allText(page) {
  return page.evaluate(() => [document.title, document.body.innerText,
    ...[...document.querySelectorAll('[aria-label], [title], [alt], [placeholder]')]
      .map((e) => ['aria-label', 'title', 'alt', 'placeholder'].map((a) => e.getAttribute(a) || '').join(' '))].join('\n'));
}

function check(ok, what) {
  if (!ok) throw new Error(what);
}

function nextLine() {
  const rl = readline.createInterface({ input: process.stdin });
  return new Promise((resolve) => rl.once('line', (l) => { rl.close(); resolve(l); }));
}

async function main() {
  const context = await chromium.launchPersistentContext(env('CHROMIUM_PROFILE'), {
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(LANG ? [`--lang=${LANG}`] : [])],
    // The browser's language: its Accept-Language header and navigator.language.
    ...(LANG ? { locale: LANG } : {}),
    viewport: { width: 1440, height: 900 },
    // Scrollbars as people see them (playwright hides them by default).
    ignoreDefaultArgs: ['--hide-scrollbars'],
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });

    // No token, a wrong one: 401 with a short page.
    for (const q of ['/', '/?token=wrong-token-0123456789', '/api/state']) {
      const r = await page.goto(URL + q);
      check(r.status() === 401, `${q} without the right token gave ${r.status()}`);
    }
    check((await page.textContent('h1')) === 'Token needed', 'the 401 page');
    console.log('401 without the token');
    problems.length = 0; // the browser logs the 401s themselves

    // The token: a cookie, and the address bar loses it.
    const r = await page.goto(`${URL}/?token=${TOKEN}`);
    check(r.status() === 200, `the page gave ${r.status()}`);
    check(page.url() === URL + '/', `the token stayed in the address bar: ${page.url()}`);
    const cookie = (await context.cookies()).find((c) => c.name === 'huddle_token');
    check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'an HttpOnly SameSite=Strict cookie');
    check(await page.evaluate(() => document.cookie === ''), 'the page script cannot read the cookie');

    await page.waitForFunction((n) => document.querySelectorAll('#grid .tile').length === n, BOARDS, { timeout: 10000 });
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 10000 });
    console.log(`the page shows ${BOARDS} boards, live`);
    const lang = await page.getAttribute('html', 'lang');
    check(lang === (LANG || 'en'), `the page is in ${lang}, the browser asks for ${LANG || 'en'}`);
    check(await page.inputValue('#lang') === lang, 'the picker shows the page\'s language');

    for (const [key, texts] of Object.entries(EXPECT)) {
      const text = await page.textContent(`.tile[data-key="${key}"]`);
      for (const t of texts) check(text.includes(t), `tile ${key} shows ${JSON.stringify(t)}: ${text.replace(/\s+/g, ' ')}`);
    }

    // Every control has an accessible name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, a, [tabindex], input, select')]
      .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || e.getAttribute('title')
        || document.getElementById(e.getAttribute('aria-labelledby') || '')?.textContent.trim()))
      .map((e) => e.outerHTML.slice(0, 80)));
    check(unnamed.length === 0, 'controls without a name: ' + unnamed.join(' | '));

    if (TAPPED) {
      const sel = `.tile[data-key="${TAPPED}"]`;
      const before = await page.getAttribute(sel, 'data-state');
      check(before !== 'in_progress', `${TAPPED} is already in progress`);
      await page.evaluate(() => { window.__sameDocument = true; });
      console.log('READY');
      await nextLine();
      const t0 = Date.now();
      await page.waitForFunction((s) => document.querySelector(s)?.dataset.state === 'in_progress', sel, { timeout: 5000 });
      const took = Date.now() - t0;
      check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
      const label = await page.textContent(`${sel} .badge`);
      check(label.startsWith(tr('In progress')), `the tile's label says ${label}`);
      console.log(`tile ${TAPPED}: ${before} -> in_progress in ${took} ms, no reload`);
      check(took < 1000, `the tile changed after ${took} ms (more than one second)`);
    }

    // A board's details.
    const first = env('DASHBOARD_DETAIL', '') || await page.getAttribute('#grid .tile', 'data-key');
    await page.click(`.tile[data-key="${first}"]`);
    await page.waitForSelector('#detail[open]');
    check((await page.textContent('#detail')).includes(tr('Open escalations')), 'the detail view');
    if (ENGLISH.length) {
      // No English left: on the page with a board's details open.
      const text = await allText(page);
      const left = ENGLISH.filter((w) => text.includes(w));
      check(left.length === 0, `English on the ${LANG} page: ${JSON.stringify(left)}`);
      console.log(`no English on the ${LANG} page (${ENGLISH.length} English texts looked for)`);
    }
    if (SHOTS) {
      await page.screenshot({ path: path.join(SHOTS, `${PREFIX}2-dashboard-detail.png`) });
    }
    await page.click('#detail-close');
    await page.waitForFunction(() => !document.getElementById('detail').open);

    // The coaching table: whole at 1440 px; on a phone it scrolls, with
    // a scrollbar that takes room (so it is seen) and keyboard focus.
    const table = () => page.evaluate(() => {
      const w = document.querySelector('.table-wrap');
      return { rows: w.querySelectorAll('tbody tr').length, cut: w.scrollWidth - w.clientWidth, bar: w.offsetHeight - w.clientHeight, tab: w.tabIndex };
    });
    const wide = await table();
    check(wide.rows === Number(env('DASHBOARD_COACHING_ROWS', '0')), `coaching rows: ${JSON.stringify(wide)}`);
    if (wide.rows) {
      check(wide.cut <= 0, `the coaching table is cut at 1440 px: ${JSON.stringify(wide)}`);
      await page.setViewportSize({ width: 390, height: 844 });
      const narrow = await table();
      check(narrow.cut > 0 && narrow.bar > 0 && narrow.tab === 0, `the coaching table at 390 px: ${JSON.stringify(narrow)}`);
      await page.setViewportSize({ width: 1440, height: 900 });
      console.log(`coaching table: whole at 1440 px, scrolls with a visible bar at 390 px (${JSON.stringify(narrow)})`);
    }

    if (SHOTS) {
      // The whole page in a viewport as tall as it (no scrollbar to cut).
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.setViewportSize({ width: 1440, height });
      await page.waitForTimeout(200);
      await page.screenshot({ path: path.join(SHOTS, `${PREFIX}0-dashboard-wide.png`) });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(SHOTS, `${PREFIX}1-dashboard-phone.png`) });
      console.log('screenshots in ' + SHOTS);
    }
    if (SWITCH) {
      // The picker: the choice wins over Accept-Language and stays
      // through a reload (a cookie the server reads).
      await Promise.all([page.waitForNavigation(), page.selectOption('#lang', SWITCH.lang)]);
      await page.waitForSelector('#conn[data-conn="live"]', { timeout: 10000 });
      const after = async (when) => {
        const l = await page.getAttribute('html', 'lang');
        const h = await page.textContent('#boards-h');
        check(l === SWITCH.lang && h === SWITCH.boards, `${when}: the page is ${l} ("${h}"), not ${SWITCH.lang} ("${SWITCH.boards}")`);
      };
      await after('after the switch');
      await page.reload();
      await page.waitForSelector('#conn[data-conn="live"]', { timeout: 10000 });
      await after('after a reload');
      const kept = (await context.cookies()).find((c) => c.name === 'huddle_lang');
      check(kept && kept.value === SWITCH.lang, 'the choice is kept in a cookie');
      console.log(`the picker switched ${LANG || 'en'} -> ${SWITCH.lang}; still ${SWITCH.lang} after a reload`);
    }
    check(problems.length === 0, problems.join('\n'));
    console.log('PASS');
  } finally {
    await context.close();
  }
}

// Exit explicitly: a read of stdin keeps node's event loop alive.
main().then(() => process.exit(0), (e) => {
  console.log('FAIL: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
