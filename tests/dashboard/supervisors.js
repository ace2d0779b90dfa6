// Drives headless Chromium for tests/it/dashboard/supervisors.rs: the
// dashboard as supervisors use it. Environment: DASHBOARD_URL,
// DASHBOARD_TOKEN, CHROMIUM, CHROMIUM_PROFILE (a fresh directory),
// SCENE (JSON: boards, the site zone, the browser zone, which tiles are
// over target / missed / offline / escalated / focused, the site-time
// texts expected), optionally SCREENSHOT_DIR (the disconnected page is
// saved there). Asks the test for actions
// with lines "ASK <what>" on stdout and waits for a line on stdin.
// Prints progress lines, then PASS; exits non-zero on any failure.
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const env = (k, d) => {
  const v = process.env[k];
  if (v === undefined && d === undefined) throw new Error(`${k} is not set`);
  return v === undefined ? d : v;
};
const URL = env('DASHBOARD_URL');
const TOKEN = env('DASHBOARD_TOKEN');
const SCENE = JSON.parse(env('SCENE'));
const SHOTS = env('SCREENSHOT_DIR', '');

function check(ok, what) {
  if (!ok) throw new Error(what);
}

const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', (l) => { const w = waiting.shift(); if (w) w(l); });
async function ask(what) {
  console.log('ASK ' + what);
  const answer = await new Promise((resolve) => waiting.push(resolve));
  check(answer === 'OK', `the test answered ${answer} to ${what}`);
}

const tile = (k) => `.tile[data-key="${k}"]`;

// axe-core with the WCAG 2.1 A/AA rules and best practices: no violation.
async function axe(page, where) {
  const source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.addScriptTag({ content: source });
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}\n    ` +
    v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\s+/g, ' ')).join('\n    '));
  check(found.length === 0, `axe, ${where}:\n  ` + found.join('\n  '));
  console.log(`axe, ${where}: no violation (${result.passes.length} rules passed)`);
}

// The accessible name Chromium computes for the element.
async function accessibleName(page, selector) {
  const cdp = await page.context().newCDPSession(page);
  const { root } = await cdp.send('DOM.getDocument');
  const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
  const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
  await cdp.detach();
  return nodes[0].name.value;
}

// Every visible element that holds text directly is at least `px` tall.
async function smallestText(page) {
  return page.evaluate(() => {
    let min = { size: Infinity, what: '' };
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || !el.getClientRects().length) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || st.display === 'none') continue;
      const size = parseFloat(st.fontSize);
      if (size < min.size) min = { size, what: el.outerHTML.slice(0, 80) };
    }
    return min;
  });
}

// Lighthouse (its mobile preset) on the dashboard in this browser: the
// scores and the layout shift, printed, and the whole report as HTML.
async function lighthouse(where) {
  const { default: run } = await import('lighthouse');
  const result = await run(`${URL}/`, {
    port: Number(env('CDP_PORT')),
    output: 'html',
    logLevel: 'error',
    onlyCategories: ['accessibility', 'performance'],
    disableStorageReset: true,
    extraHeaders: { Cookie: `huddle_token=${TOKEN}` },
  });
  const lhr = result.lhr;
  const score = (c) => Math.round((lhr.categories[c].score || 0) * 100);
  const cls = lhr.audits['cumulative-layout-shift'].numericValue;
  const report = path.join(env('REPORT_DIR'), 'lighthouse.html');
  fs.writeFileSync(report, result.report);
  const failed = Object.values(lhr.audits).filter((a) => a.score !== null && a.score < 1 && lhr.categories.accessibility.auditRefs.some((r) => r.id === a.id && r.weight > 0));
  console.log(`lighthouse, ${where}: accessibility ${score('accessibility')}, performance ${score('performance')}, CLS ${cls.toFixed(3)}, ` +
    ['first-contentful-paint', 'largest-contentful-paint', 'total-blocking-time', 'speed-index'].map((a) => `${a} ${lhr.audits[a].displayValue}`).join(', ') +
    (lhr.runWarnings.length ? `; warnings: ${lhr.runWarnings.join(' | ')}` : '') + `; report ${report}`);
  for (const a of failed) console.log(`lighthouse: accessibility audit failed: ${a.id}: ${a.title}`);
  check(score('accessibility') === 100, `Lighthouse accessibility ${score('accessibility')}`);
  check(cls <= 0.1, `Lighthouse cumulative layout shift ${cls}`);
  check(score('performance') >= 90, `Lighthouse performance ${score('performance')} (mobile)`);
}

// No timer is cut: its value fits its box.
async function timersWhole(page) {
  return page.evaluate(() => [...document.querySelectorAll('.tile .timer .v')]
    .filter((v) => v.scrollWidth > v.clientWidth + 1 || v.getBoundingClientRect().right > v.closest('.tile').getBoundingClientRect().right)
    .map((v) => v.closest('.tile').dataset.key + ': ' + v.textContent));
}

async function main() {
  const context = await chromium.launchPersistentContext(env('CHROMIUM_PROFILE'), {
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--remote-debugging-port=${env('CDP_PORT')}`],
    viewport: { width: 1280, height: 900 },
    timezoneId: SCENE.browser_zone,
    // axe-core is evaluated in the page, which the page's CSP would refuse.
    bypassCSP: true,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => { problems.push('page error: ' + e.message); console.log('page error: ' + e.message); });
    page.on('console', (m) => { if (m.type() === 'error' && !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) problems.push('console: ' + m.text()); });

    await page.goto(`${URL}/?token=${TOKEN}`);
    await page.waitForFunction((n) => document.querySelectorAll('#grid .tile').length === n, SCENE.boards.length, { timeout: 15000 });
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 10000 });
    console.log(`the page shows ${SCENE.boards.length} boards, live`);

    // 1. Site time, whatever the browser's zone; said once in the header.
    check(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone) === SCENE.browser_zone, 'the browser runs in ' + SCENE.browser_zone);
    const note = await page.textContent('#tz-note');
    check(note.includes(SCENE.site_zone) && note.includes(SCENE.browser_zone), `the header says the zones: ${note}`);
    for (const [key, text] of Object.entries(SCENE.site_times)) {
      const shown = await page.textContent(`${tile(key)} .timer .v`);
      check(shown.trim().endsWith(text), `${key} shows ${shown.trim()}, not the site time ${text}`);
    }
    console.log(`site times in a ${SCENE.browser_zone} browser: ${JSON.stringify(SCENE.site_times)}; ${note}`);

    // 7. Over target: written out, in the accessible name, whole.
    await page.waitForFunction((s) => /\d+ min over/.test(document.querySelector(s + ' .over-note')?.textContent || ''), tile(SCENE.over), { timeout: 5000 });
    const overLabel = await accessibleName(page, tile(SCENE.over));
    check(/Running \d+:\d\d \/ 15:00 \d+ min over/i.test(overLabel), `the over-target tile's name: ${overLabel}`);
    check((await timersWhole(page)).length === 0, 'timers cut at 1280 px: ' + (await timersWhole(page)).join(', '));
    console.log(`over target: "${await page.textContent(tile(SCENE.over) + ' .timer')}" named "${overLabel}"`);

    // 8. The summary adds up; attendance is a share.
    const sums = await page.evaluate(() => {
      const n = (id) => document.querySelector(`#sum-${id} dd`).textContent;
      return { boards: n('boards'), states: ['in_progress', 'closed', 'not_started', 'missed'].map((s) => Number(n(s))), offline: n('offline'), attendance: n('attendance') };
    });
    check(sums.states.reduce((a, b) => a + b, 0) === Number(sums.boards), `the states add up to the boards: ${JSON.stringify(sums)}`);
    const offlineNow = await page.evaluate(() => document.querySelectorAll('.tile[data-state="offline"]').length);
    check(offlineNow >= 1 && sums.offline === `${offlineNow} of ${SCENE.boards.length}`, `offline apart: ${JSON.stringify(sums)}`);
    check(sums.attendance === '\u2014' || Number(sums.attendance.replace('%', '')) <= 100, `attendance: ${sums.attendance}`);
    console.log('summary: ' + JSON.stringify(sums));

    // 2. Focus stays on its tile through two redraws and a change to it.
    const focused = tile(SCENE.focus);
    await page.focus(focused);
    await page.evaluate((s) => { document.querySelector(s).__mine = true; }, focused);
    const redraws = Number(await page.getAttribute('body', 'data-redraws'));
    await page.waitForFunction((r) => Number(document.body.dataset.redraws) >= r + 2, redraws, { timeout: 30000 });
    check(await page.evaluate(() => document.activeElement.__mine === true), 'focus left the tile during the redraws');
    const before = await page.textContent(focused + ' .present .v');
    await ask('tap ' + SCENE.focus);
    await page.waitForFunction(([s, b]) => document.querySelector(s + ' .present .v').textContent !== b, [focused, before], { timeout: 5000 });
    check(await page.evaluate(() => document.activeElement.__mine === true), 'focus left the tile when its board changed');
    console.log(`focus stayed on ${SCENE.focus} through ${await page.getAttribute('body', 'data-redraws') - redraws} redraws and a change (present ${before} -> ${await page.textContent(focused + ' .present .v')})`);

    // 3. Only new alerts are added to the live region.
    check(await page.getAttribute('#alerts', 'aria-live') === 'polite', 'the alerts are a live region');
    check(await page.getAttribute('#alerts', 'tabindex') === '0', 'the alerts list takes keyboard focus');
    await page.evaluate(() => {
      window.__alerts = { added: 0, removed: 0 };
      new MutationObserver((ms) => {
        for (const m of ms) { window.__alerts.added += m.addedNodes.length; window.__alerts.removed += m.removedNodes.length; }
      }).observe(document.getElementById('alerts'), { childList: true, subtree: true });
    });
    const count = await page.evaluate(() => document.querySelectorAll('#alerts > li').length);
    await ask('offline ' + SCENE.goes_offline);
    await page.waitForFunction((b) => [...document.querySelectorAll('#alerts > li[data-kind="board_offline"] .alert-where')].some((e) => e.textContent.startsWith(b + ' ')), SCENE.goes_offline, { timeout: 5000 });
    await page.waitForTimeout(300);
    const mutations = await page.evaluate(() => window.__alerts);
    const now = await page.evaluate(() => document.querySelectorAll('#alerts > li').length);
    check(mutations.removed === 0 && mutations.added === now - count && now > count, `alerts: ${count} -> ${now}, mutations ${JSON.stringify(mutations)}`);
    console.log(`a new alert: ${mutations.added} added to the list of ${count}, nothing removed or redrawn`);

    // The busy state: a board missed (its slot passes during the test),
    // one over target, offline ones, 20+ alerts.
    await page.waitForSelector(`${tile(SCENE.missed)}[data-state="missed"]`, { timeout: 90000 });
    const alerts = await page.evaluate(() => document.querySelectorAll('#alerts > li').length);
    check(alerts >= 20, `only ${alerts} alerts`);
    console.log(`busy: ${alerts} alerts, ${SCENE.missed} missed, ${SCENE.over} over target, ${SCENE.offline.join(' ')} offline`);
    await axe(page, 'busy, 1280 px');
    await page.click(tile(SCENE.over));
    await page.waitForSelector('#detail[open]');
    await axe(page, 'the details window open');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.getElementById('detail').open);

    await lighthouse('busy');

    // 6. A phone: attention first, no text under 14 px, timers whole.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => {
      const order = [...document.querySelectorAll('#grid > li')].map((li) => li.dataset.attention);
      return order.indexOf('no') === -1 || order.slice(order.indexOf('no')).every((a) => a === 'no');
    }, null, { timeout: 5000 });
    const placed = await page.evaluate(() => [...document.querySelectorAll('#grid > li')]
      .map((li) => ({ key: li.querySelector('.tile').dataset.key, attention: li.dataset.attention === 'yes', y: li.getBoundingClientRect().top })));
    const lowestAttention = Math.max(...placed.filter((p) => p.attention).map((p) => p.y));
    const highestOther = Math.min(...placed.filter((p) => !p.attention).map((p) => p.y));
    check(lowestAttention < highestOther, 'at 390 px the boards needing attention are not first: ' + JSON.stringify(placed));
    for (const k of SCENE.attention) check(placed.find((p) => p.key === k)?.attention, `${k} needs attention: ${JSON.stringify(placed)}`);
    const smallest = await smallestText(page);
    check(smallest.size >= 14, `text of ${smallest.size} px at 390 px: ${smallest.what}`);
    check((await timersWhole(page)).length === 0, 'timers cut at 390 px: ' + (await timersWhole(page)).join(', '));
    console.log(`390 px: ${placed.map((p) => p.key.split('/')[1] + (p.attention ? '!' : '')).join(' ')}; smallest text ${smallest.size} px`);
    await axe(page, 'busy, 390 px');

    // 5. The connection lost: said since when, data dimmed, timers stopped.
    await ask('stop the aggregator');
    await page.waitForSelector('#conn[data-conn="down"]', { timeout: 10000 });
    const conn = await page.textContent('#conn');
    const siteNow = new Intl.DateTimeFormat('en-GB', { timeZone: SCENE.site_zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    const m = /^Connection lost since (\d\d:\d\d)/.exec(conn);
    const near = [Date.now() - 60000, Date.now()].map((t) => siteNow.format(t));
    check(m && near.includes(m[1]), `the page says ${JSON.stringify(conn)}; site time now ${near[1]}`);
    check(await page.evaluate(() => document.body.dataset.stale === 'yes' && Number(getComputedStyle(document.querySelector('main')).opacity) < 1), 'the data is dimmed');
    const t1 = await page.textContent(tile(SCENE.over) + ' .timer .t');
    await page.waitForTimeout(2500);
    const t2 = await page.textContent(tile(SCENE.over) + ' .timer .t');
    check(t1 === t2, `the timer ran on while disconnected: ${t1} -> ${t2}`);
    console.log(`disconnected: "${conn}", timer stopped at ${t1}`);
    if (SHOTS) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.waitForTimeout(200);
      await page.screenshot({ path: path.join(SHOTS, '33-dashboard-disconnected.png') });
    }

    // 4. Open alerts are listed again after a restart, from the aggregator.
    await ask('start the aggregator');
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 30000 });
    check(await page.evaluate(() => document.body.dataset.stale === undefined), 'fresh data: no longer dimmed');
    await page.reload();
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 10000 });
    // (A missed slot comes once the broker has replayed the schedules.)
    const listedNow = () => page.evaluate(() => [...document.querySelectorAll('#alerts > li')]
      .map((li) => li.dataset.kind + ' ' + li.querySelector('.alert-where').textContent.split(' ')[0]));
    let listed = await listedNow();
    for (const until = Date.now() + 15000; Date.now() < until && !SCENE.open_after_restart.every((w) => listed.includes(w));) {
      await page.waitForTimeout(250);
      listed = await listedNow();
    }
    const seen = await page.evaluate(() => `page version ${document.body.dataset.version}, ${document.querySelectorAll('#alerts > li').length} alerts, conn ${document.getElementById('conn').textContent}`);
    for (const want of SCENE.open_after_restart) check(listed.includes(want), `after the restart the alerts lack ${want} (${seen}): ${JSON.stringify(listed)}`);
    console.log(`after the restart ${listed.length} alerts are listed, among them ${SCENE.open_after_restart.join(', ')}`);

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
