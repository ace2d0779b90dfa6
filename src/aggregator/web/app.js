// The supervisors' dashboard. Reads /api/events (server-sent events: a
// "snapshot" with the whole state, then one "change" per retained topic
// or alert the aggregator publishes) and draws the site grid, the site
// summary, the alerts, the coaching table and one board's details.
// Payloads are the MQTT topics' own; fields a payload lacks (an older
// aggregator's minimal board status) are shown as "—". Timers and ages
// come from the payloads' absolute times and this browser's clock; clock
// times are shown in the site's time zone (the snapshot's `timezone`).
//
// Design: the page is built once and then updated in place. A tile, a
// summary figure or an alert is an element that lives as long as its
// board or alert; a redraw writes only the texts and attributes that
// changed, so keyboard focus, a screen reader's place and the alerts'
// live region (only new alerts are added) survive every update. A tile
// moves only when the order really changes (on a narrow screen the boards
// that need attention come first).
//
// Words: every text shown is t('English text') or tn(singular, plural, n)
// (N_('...') marks one that is looked up later), taken from the
// catalogue the server put in the page in its language (the data block
// #catalogue; ui/translations/README.md says where the words live).
// Numbers, dates and durations are the browser's Intl in that language.
'use strict';

const I18N = (() => {
  try {
    return JSON.parse(document.getElementById('catalogue').textContent);
  } catch (e) {
    return { lang: 'en', messages: {} };
  }
})();
const LANG = I18N.lang || 'en';
// The plural form of n, as each language's Plural-Forms says.
const PLURAL = {
  en: (n) => (n === 1 ? 0 : 1),
  de: (n) => (n === 1 ? 0 : 1),
  es: (n) => (n === 1 ? 0 : 1),
  fr: (n) => (n > 1 ? 1 : 0),
  pl: (n) => (n === 1 ? 0 : n % 10 >= 2 && n % 10 <= 4 && (n % 100 < 10 || n % 100 >= 20) ? 1 : 2),
};
const INTEGER = new Intl.NumberFormat(LANG, { maximumFractionDigits: 0 });
// Dates in English as in Britain ("Sat 4 Dec"), elsewhere the language's own.
const DATES = LANG === 'en' ? 'en-GB' : LANG;
function N_(id) {
  return id;
}
function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (values && k in values ? String(values[k]) : m));
}
// The translation of an English text, its {placeholders} filled.
function t(id, values) {
  const m = I18N.messages[id];
  return fill(m ? m[0] : id, values);
}
// A text with a count: the plural form of n ({n} is n, formatted).
function tn(id, plural, n, values) {
  const forms = I18N.messages[id] || [id, plural];
  const i = (PLURAL[LANG] || PLURAL.en)(n);
  return fill(forms[Math.min(i, forms.length - 1)], { n: INTEGER.format(n), ...values });
}

const NONE = '\u2014';
const STATES = {
  not_started: N_('Not started'),
  in_progress: N_('In progress'),
  closed: N_('Closed'),
  missed: N_('Huddle missed'),
  offline: N_('Offline'),
  unknown: N_('Unknown'),
};
const ALERT_NAMES = {
  missed_huddle: N_('Missed huddle'),
  escalation_stale: N_('Escalation getting old'),
  board_offline: N_('Board offline'),
  coaching_overdue: N_('Coaching overdue'),
  integrity: N_('Conflicting event'),
  board_twin: N_('Two boards, one id'),
};
const ROLES = { team_leader: N_('Team leader'), supervisor: N_('Supervisor'), manager: N_('Manager'), member: N_('Member') };
// The huddle's steps (the kiosk's names).
const STEPS = {
  attendance: N_('Attendance'),
  kpis: N_('KPIs'),
  open_actions: N_('Open actions'),
  needs: N_('Needs'),
  experiment: N_('Experiment'),
  new_actions: N_('New actions'),
  close: N_('Close'),
};
const TRENDS = { rising: N_('rising'), steady: N_('steady'), falling: N_('falling') };
const role = (r) => (ROLES[r] ? t(ROLES[r]) : r);
const step = (s) => (STEPS[s] ? t(STEPS[s]) : label(s));
const ALERTS_SHOWN = 200;
// Ages in words ("3 min") and the attention order are redrawn this often.
const REDRAW_MS = 10000;
const NARROW = window.matchMedia('(max-width: 640px)');

let state = { site_id: '', timezone: 'UTC', version: 0, boards: {}, site: null, coaching: null, stats: null, alerts: [] };
const tiles = new Map(); // board key → { li, button, parts }
const alertNodes = new Map(); // alert identity → <li>
let openKey = null; // the board in the detail dialog
let dirty = { boards: new Set(), all: true };
let frame = 0;
let lostAt = null; // when the live connection was lost (ms), while it is
let alertsLive = false; // the alerts list announces additions once filled

// ------------------------------------------------------------ formatting

function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
function num(v) {
  return typeof v === 'number' && isFinite(v) ? v : null;
}
function ms(t) {
  const v = typeof t === 'string' ? Date.parse(t) : NaN;
  return isNaN(v) ? null : v;
}
// 75 s → "1:15", 3725 s → "1:02:05".
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return (h ? h + ':' : '') + mm + ':' + String(r).padStart(2, '0');
}
// A duration in short words, in the page's language: "40 s", "12 min",
// "3 h", "2 d" (Intl's units).
const UNITS = {};
function unit(n, name) {
  if (!UNITS[name]) UNITS[name] = new Intl.NumberFormat(LANG, { style: 'unit', unit: name, unitDisplay: 'short', maximumFractionDigits: 0 });
  return UNITS[name].format(Math.floor(n));
}
function words(s) {
  if (s < 60) return unit(s, 'second');
  if (s < 3600) return unit(s / 60, 'minute');
  if (s < 172800) return unit(s / 3600, 'hour');
  return unit(s / 86400, 'day');
}
function ago(at) {
  return at ? t('{age} ago', { age: age(at) }) : NONE;
}
function age(t) {
  const at = ms(t);
  return at === null ? NONE : words(Math.max(0, (Date.now() - at) / 1000));
}

// Clock times in the site's zone (an unknown zone falls back to UTC).
const zoned = { tz: null };
function zone(tz) {
  if (zoned.tz === tz) return zoned;
  const make = (z) => ({
    hm: new Intl.DateTimeFormat(DATES, { timeZone: z, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }),
    day: new Intl.DateTimeFormat('en-CA', { timeZone: z, year: 'numeric', month: '2-digit', day: '2-digit' }),
    weekday: new Intl.DateTimeFormat(DATES, { timeZone: z, weekday: 'short' }),
    date: new Intl.DateTimeFormat(DATES, { timeZone: z, day: 'numeric', month: 'short' }),
  });
  let f, effective = tz;
  try { f = make(tz); } catch (e) { f = make('UTC'); effective = 'UTC'; }
  Object.assign(zoned, f, { tz, effective });
  return zoned;
}
function hhmm(at) {
  return zone(state.timezone).hm.format(at);
}
function time(t) {
  const at = typeof t === 'number' ? t : ms(t);
  if (at === null) return NONE;
  const z = zone(state.timezone);
  if (z.day.format(at) === z.day.format(Date.now())) return z.hm.format(at);
  // Within a week either way the weekday says enough ("Tue 06:45").
  if (Math.abs(at - Date.now()) < 6 * 86400000) return z.weekday.format(at) + ' ' + z.hm.format(at);
  return z.date.format(at) + ' ' + z.hm.format(at);
}
// The browser's own zone when its clocks read differently from the site's
// (a zone of the same offset says nothing new), else null.
function browserZoneDiffers() {
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const opts = { day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  const now = Date.now();
  const here = new Intl.DateTimeFormat('en-GB', opts).format(now);
  const there = new Intl.DateTimeFormat('en-GB', { ...opts, timeZone: zone(state.timezone).effective }).format(now);
  return here !== there ? mine : null;
}
const FIXED = {};
function fixed(v, digits, sign) {
  if (num(v) === null) return NONE;
  const k = digits + (sign ? '+' : '');
  if (!FIXED[k]) FIXED[k] = new Intl.NumberFormat(LANG, { minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: sign ? 'exceptZero' : 'auto' });
  return FIXED[k].format(v);
}
function label(key) {
  return String(key).replace(/_/g, ' ');
}

// ------------------------------------------------------------ the model

// The huddle state of a board status, whichever payload it is: the live
// status has `state` and a `huddle` object; the minimal one a `huddle` string.
function huddleStateOf(st) {
  if (!st) return 'unknown';
  const s = typeof st.state === 'string' ? st.state : st.huddle;
  return typeof s === 'string' && STATES[s] && s !== 'offline' ? s : 'unknown';
}
function boardState(st) {
  if (st && st.online === false) return 'offline';
  return huddleStateOf(st);
}
function huddleOf(st) {
  return st && st.huddle && typeof st.huddle === 'object' ? st.huddle : null;
}
function escalationsOf(st) {
  return st && Array.isArray(st.escalations) ? st.escalations : null;
}
// A running huddle's seconds and target (seconds, 0 when none), or null.
function running(st) {
  const h = huddleOf(st);
  if (!h || huddleStateOf(st) !== 'in_progress' || ms(h.started_at) === null) return null;
  return { since: ms(h.started_at), target: num(h.target_s) || 0 };
}
// Whether a board needs a supervisor's eye: missed, offline, over its
// target or with open escalations.
function attention(b) {
  const st = b.status;
  const s = boardState(st);
  if (s === 'missed' || s === 'offline') return true;
  const r = running(st);
  if (r && r.target && (Date.now() - r.since) / 1000 > r.target) return true;
  const e = escalationsOf(st);
  return !!(e && e.length + (num(st.escalations_more) || 0) > 0);
}

function apply(change) {
  state.version = change.version;
  const p = change.payload;
  switch (change.slot) {
    case 'board_status':
    case 'board_schedule': {
      const key = change.area + '/' + change.board;
      const b = state.boards[key] || (state.boards[key] = { area: change.area, board: change.board, status: null, schedule: null });
      b[change.slot === 'board_status' ? 'status' : 'schedule'] = p;
      if (change.slot === 'board_status' && p === '') delete state.boards[key];
      dirty.boards.add(key);
      dirty.summary = true;
      break;
    }
    case 'site': state.site = p; dirty.summary = true; break;
    case 'coaching': state.coaching = p; dirty.coaching = true; dirty.summary = true; break;
    case 'stats': state.stats = p; dirty.summary = true; break;
    case 'alert':
      state.alerts.unshift({ version: change.version, kind: change.kind, topic: change.topic, payload: p });
      state.alerts.length = Math.min(state.alerts.length, ALERTS_SHOWN);
      dirty.alerts = true;
      break;
    default: break;
  }
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

// ------------------------------------------------------------ rendering

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
function setAttr(el, name, value) {
  if (value === null) { if (el.hasAttribute(name)) el.removeAttribute(name); } else if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function render() {
  frame = 0;
  // Design: the boards, alerts and coaching appear together with the
  // first data, in place of a one-line note, so that nothing on the page
  // moves when they come (Lighthouse's layout shift).
  const main = document.getElementById('main');
  if (main.hidden) {
    main.hidden = false;
    document.getElementById('waiting').remove();
  }
  const all = dirty.all;
  const d = dirty;
  dirty = { boards: new Set(), all: false };
  setText(document.getElementById('site-id'), state.site_id ? '· ' + state.site_id : '');
  const other = browserZoneDiffers();
  const note = document.getElementById('tz-note');
  const site = zone(state.timezone).effective;
  setText(note, other ? t('Times are site time, {zone}; this device is set to {other}.', { zone: site, other })
    : t('Times are site time, {zone}.', { zone: site }));
  note.dataset.differs = other ? 'yes' : 'no';
  if (all || d.boards.size) renderGrid(all ? null : d.boards);
  if (all || d.summary || d.boards.size) renderSummary();
  if (all || d.alerts) renderAlerts();
  if (all || d.coaching) renderCoaching();
  if (openKey && (all || d.boards.has(openKey))) renderDetail();
  document.body.dataset.version = String(state.version);
  if (all) document.body.dataset.redraws = String(Number(document.body.dataset.redraws || 0) + 1);
}

const TILE = `<span class="tile-head"><span class="name"></span><span class="area"></span></span>
  <span class="badge"></span>
  <span class="facts">
    <span class="fact timer"><span class="k"></span><span class="v"><span class="t"></span> <span class="of"></span></span><span class="over-note"></span></span>
    <span class="fact present"><span class="k">${esc(t('Present'))}</span><span class="v"></span></span>
    <span class="fact escal"><span class="k">${esc(t('Escalations'))}</span><span class="v"></span></span>
    <span class="fact observed"><span class="k">${esc(t('Observed'))}</span><span class="v"></span></span>
  </span><span class="sr-only">. ${esc(t('Show details'))}</span>`;

function newTile(key) {
  const li = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'tile';
  button.dataset.key = key;
  button.innerHTML = TILE;
  li.appendChild(button);
  const q = (s) => button.querySelector(s);
  const parts = {
    name: q('.name'), area: q('.area'), badge: q('.badge'),
    timer: q('.timer'), timerK: q('.timer .k'), timerT: q('.timer .t'), timerOf: q('.timer .of'), over: q('.over-note'),
    present: q('.present .v'), escal: q('.escal'), escalV: q('.escal .v'), observed: q('.observed .v'),
  };
  return { li, button, parts, facts: {} };
}

// What a tile says, as plain values (the tick and the label share them).
function tileFacts(b) {
  const st = b.status;
  const s = boardState(st);
  const hs = huddleStateOf(st);
  const h = huddleOf(st);
  const e = escalationsOf(st);
  const stale = e ? e.filter((x) => x.stale).length + (num(st.escalations_more_stale) || 0) : 0;
  const stateLabel = s === 'offline' && hs !== 'unknown' ? t('Offline') + ' · ' + t(STATES[hs]) : t(STATES[s]);
  const f = { state: s, stateLabel, step: '', timerK: t('Timer'), timerT: NONE, run: running(st), stale };
  if (f.run) {
    f.timerK = t('Running');
    if (h.step) f.step = step(h.step);
  } else if (h && ms(h.closed_at) !== null && ms(h.started_at) !== null) {
    f.timerK = t('Took');
    f.timerT = clock((ms(h.closed_at) - ms(h.started_at)) / 1000);
  } else if (st && ms(st.next_due_at) !== null) {
    f.timerK = t('Next huddle');
    f.timerT = time(st.next_due_at);
  }
  const present = h ? num(h.present) : null;
  const expected = h ? num(h.expected) : null;
  f.present = present === null ? NONE : expected ? `${present}/${expected}` : String(present);
  const open = e ? e.length + (num(st.escalations_more) || 0) : 0;
  f.escal = e ? INTEGER.format(open) + (stale ? ' ' + tn('({n} old)', '({n} old)', stale) : '') : NONE;
  f.observed = st && st.last_observation_at ? ago(st.last_observation_at) : NONE;
  f.name = (st && st.board) || b.board;
  return f;
}

// The timer of a running huddle now: its text, the target and how far over.
function timerNow(run) {
  const s = (Date.now() - run.since) / 1000;
  const over = run.target && s > run.target ? s - run.target : 0;
  return { text: clock(s), of: run.target ? '/ ' + clock(run.target) : '', over, minutes: Math.floor(s / 60) };
}
function overWords(over) {
  return t('{time} over', { time: over >= 60 ? unit(over / 60, 'minute') : unit(over, 'second') });
}

function updateTile(t, key, b) {
  const f = tileFacts(b);
  const p = t.parts;
  t.area = b.area;
  t.facts = f;
  t.attention = attention(b);
  setAttr(t.button, 'data-state', f.state);
  setAttr(t.li, 'data-attention', t.attention ? 'yes' : 'no');
  setText(p.name, f.name);
  setText(p.area, b.area);
  setText(p.badge, f.stateLabel + (f.step ? ' · ' + f.step : ''));
  setText(p.timerK, f.timerK);
  if (f.run) {
    setAttr(p.timerT, 'data-since', String(f.run.since));
  } else {
    setAttr(p.timerT, 'data-since', null);
    setText(p.timerT, f.timerT);
    setText(p.timerOf, '');
    setText(p.over, '');
    p.timer.classList.remove('over');
  }
  setText(p.present, f.present);
  setText(p.escalV, f.escal);
  p.escal.classList.toggle('warn', f.stale > 0);
  setText(p.observed, f.observed);
  tickTile(t);
}

// A running timer's text and over-target note. The tile's accessible name
// is its text (state, timer, "5 min over", present, escalations, last
// observed), so what is seen is what is read.
function tickTile(t) {
  const f = t.facts;
  const p = t.parts;
  if (f.run) {
    const n = timerNow(f.run);
    setText(p.timerT, n.text);
    setText(p.timerOf, n.of);
    setText(p.over, n.over ? overWords(n.over) : '');
    p.timer.classList.toggle('over', n.over > 0);
  }
}

// The tiles' order: by key; on a narrow screen the boards that need
// attention first.
function order(keys) {
  if (!NARROW.matches) return keys;
  const first = [], rest = [];
  for (const k of keys) (tiles.get(k).attention ? first : rest).push(k);
  return first.concat(rest);
}

function place(grid, keys) {
  const focused = document.activeElement;
  let at = grid.firstElementChild;
  for (const key of keys) {
    const li = tiles.get(key).li;
    if (li === at) { at = at.nextElementSibling; continue; }
    // Design: moveBefore keeps focus and state where the browser has it
    // (for a tile already in the page); elsewhere a moved tile that held
    // focus gets it back.
    let moved = false;
    if (grid.moveBefore && li.isConnected) {
      try { grid.moveBefore(li, at); moved = true; } catch (e) { /* not movable atomically here */ }
    }
    if (!moved) grid.insertBefore(li, at);
  }
  if (focused && focused !== document.activeElement && grid.contains(focused)) focused.focus({ preventScroll: true });
}

function renderGrid(only) {
  const grid = document.getElementById('grid');
  const keys = Object.keys(state.boards).sort();
  document.getElementById('no-boards').hidden = keys.length > 0;
  if (!only) {
    for (const [k, t] of tiles) if (!state.boards[k]) { t.li.remove(); tiles.delete(k); }
  } else {
    for (const k of only) if (!state.boards[k] && tiles.has(k)) { tiles.get(k).li.remove(); tiles.delete(k); }
  }
  for (const key of only ? [...only] : keys) {
    const b = state.boards[key];
    if (!b) continue;
    let t = tiles.get(key);
    if (!t) { t = newTile(key); tiles.set(key, t); }
    updateTile(t, key, b);
  }
  place(grid, order(keys));
}

// The figures are in the page from the start (no shift when data comes)
// and updated in place. The four huddle states add up to the boards
// shown (a board of unknown state counts as not started); offline is a
// count apart (an offline board also has its huddle state).
function renderSummary() {
  const el = document.getElementById('summary');
  const set = (id, v) => setText(el.querySelector(`#sum-${id} dd`), v === null || v === undefined ? NONE : String(v));
  const site = state.site;
  const counts = { not_started: 0, in_progress: 0, closed: 0, missed: 0, unknown: 0, offline: 0 };
  const boards = Object.values(state.boards);
  for (const b of boards) {
    counts[huddleStateOf(b.status)] += 1;
    if (b.status && b.status.online === false) counts.offline += 1;
  }
  set('boards', boards.length);
  for (const s of ['in_progress', 'closed', 'not_started', 'missed']) set(s, counts[s] + (s === 'not_started' ? counts.unknown : 0));
  set('offline', t('{offline} of {boards}', { offline: INTEGER.format(counts.offline), boards: INTEGER.format(boards.length) }));
  const v = (x) => (num(x) === null ? null : x);
  set('held', site && v(site.held_today));
  set('missed-today', site && v(site.missed_today));
  const rate = site ? num(site.attendance_rate) : null;
  const percent = new Intl.NumberFormat(LANG, { style: 'percent', maximumFractionDigits: 0 });
  set('attendance', rate === null ? null : percent.format(Math.round(Math.min(1, Math.max(0, rate)) * 100) / 100));
  set('escalations', site && num(site.open_escalations) !== null
    ? INTEGER.format(site.open_escalations) + (site.stale_escalations ? ' ' + tn('({n} old)', '({n} old)', site.stale_escalations) : '') : null);
  let overdue = site && num(site.coaching_overdue) !== null ? site.coaching_overdue : null;
  if (overdue === null && state.coaching && Array.isArray(state.coaching.people)) {
    overdue = state.coaching.people.filter((p) => p.overdue).length;
  }
  set('overdue', overdue);
}

// An alert's words: its `text` (the aggregator's English template, a key
// of the catalogue) filled with its `values`; an older aggregator's alert
// has only its English `message`.
function alertText(a) {
  const p = a.payload || {};
  if (typeof p.text === 'string' && I18N.messages[p.text]) return t(p.text, p.values || {});
  if (typeof p.message === 'string') return p.message;
  if (a.kind === 'coaching_overdue' && p.name) {
    return tn('{name} ({role}): {n} of {target} observations in the window', '{name} ({role}): {n} of {target} observations in the window',
      num(p.target) || 0, { name: p.name, role: role(p.role), n: p.count_in_window ?? NONE, target: p.target ?? NONE });
  }
  return typeof p === 'string' ? p : JSON.stringify(p);
}
// An alert's identity: its kind and payload (versions start again with
// each aggregator, and a condition listed again after a restart is the
// same alert).
function alertId(a) {
  return a.kind + '\n' + JSON.stringify(a.payload);
}
function alertAt(a) {
  const p = a.payload || {};
  return ms(p.at || p.overdue_since);
}
function alertNode(a) {
  const p = a.payload || {};
  const li = document.createElement('li');
  li.className = 'alert';
  li.dataset.kind = a.kind;
  const at = p.at || p.overdue_since || '';
  li.dataset.at = String(alertAt(a) ?? 0);
  const where = p.board ? `${esc(p.board)}${p.area ? ' · ' + esc(p.area) : ''}` : '';
  li.innerHTML = `<span class="alert-kind">${esc(ALERT_NAMES[a.kind] ? t(ALERT_NAMES[a.kind]) : label(a.kind))}</span>
    <time datetime="${esc(at)}">${time(at)}</time>
    <span class="alert-where">${where}</span>
    <span class="alert-text">${esc(alertText(a))}</span>`;
  return li;
}

// Adds the alerts not shown yet, newest first by their time, and drops
// those the aggregator no longer holds; nothing else is touched.
function renderAlerts() {
  const list = document.getElementById('alerts');
  const want = new Map();
  for (const a of state.alerts) if (!want.has(alertId(a))) want.set(alertId(a), a);
  for (const [id, li] of alertNodes) if (!want.has(id)) { li.remove(); alertNodes.delete(id); }
  for (const [id, a] of want) {
    if (alertNodes.has(id)) continue;
    const li = alertNode(a);
    const at = Number(li.dataset.at);
    let before = list.firstElementChild;
    while (before && Number(before.dataset.at) >= at) before = before.nextElementSibling;
    list.insertBefore(li, before);
    alertNodes.set(id, li);
  }
  document.getElementById('no-alerts').hidden = alertNodes.size > 0;
  setText(document.getElementById('alerts-count'), alertNodes.size ? `(${INTEGER.format(alertNodes.size)})` : '');
  if (!alertsLive) {
    // Announced from now on: the list as first filled is not read out.
    alertsLive = true;
    list.setAttribute('aria-live', 'polite');
  }
}

function renderCoaching() {
  const c = state.coaching;
  const body = document.querySelector('#coaching tbody');
  const meta = document.getElementById('coaching-meta');
  if (!c || !Array.isArray(c.people)) {
    meta.textContent = t('No coaching report yet.');
    body.innerHTML = '';
    return;
  }
  meta.textContent = [tn('Window {n} day', 'Window {n} days', num(c.window_days) || 0),
    t('computed {time}', { time: time(c.at) }), tn('{n} person', '{n} people', c.people.length)].join(' · ');
  body.innerHTML = c.people.map((p) => {
    const cadence = num(p.target) === null ? NONE : `${p.count_in_window ?? NONE}/${p.target}`;
    const status = p.overdue ? `<span class="pill bad">${esc(t('Overdue'))}</span>` : (num(p.target) ? `<span class="pill ok">${esc(t('On track'))}</span>` : '');
    const change = fixed(p.learner_change, 2, true);
    const focus = num(p.focus_set) === null ? NONE : `${p.focus_landed}/${p.focus_set}`;
    return `<tr${p.overdue ? ' class="overdue"' : ''}>
      <th scope="row">${esc(p.name)}</th>
      <td>${esc(role(p.role))}</td>
      <td>${esc((p.boards || []).join(', ') || NONE)}</td>
      <td>${cadence} ${status}</td>
      <td>${ago(p.last_observed)}</td>
      <td>${time(p.due_by)}</td>
      <td>${fixed(p.score, 1)}</td>
      <td>${esc(TRENDS[p.trend] ? t(TRENDS[p.trend]) : p.trend || NONE)}</td>
      <td>${change}</td>
      <td>${fixed(p.helpfulness, 1)}</td>
      <td>${focus}</td>
    </tr>`;
  }).join('');
}

function fact(k, v) {
  return `<div class="row"><dt>${esc(k)}</dt><dd>${v}</dd></div>`;
}

function renderDetail() {
  const b = state.boards[openKey];
  const body = document.getElementById('detail-body');
  if (!b) { body.innerHTML = `<p class="muted">${esc(t('This board is gone.'))}</p>`; return; }
  const st = b.status || {};
  const s = boardState(b.status);
  const h = huddleOf(st);
  document.getElementById('detail-h').textContent = `${st.board || b.board} · ${b.area}`;
  const since = (at) => `${time(at)} (${ago(at)})`;
  let html = `<p class="badge big" data-state="${s}">${esc(t(STATES[s]))}</p><dl class="facts-list">`;
  html += fact(t('Online'), st.online === true ? esc(t('yes')) : st.online === false ? esc(t('no')) : NONE);
  html += fact(t('Last event'), st.last_event_at ? since(st.last_event_at) : NONE);
  html += fact(t('Events stored'), num(st.last_seq) === null ? NONE : INTEGER.format(st.last_seq));
  html += fact(t('Next huddle'), time(st.next_due_at));
  html += fact(t('Team leader last observed'), 'last_observation_at' in st && st.last_observation_at ? ago(st.last_observation_at) : NONE);
  if (st.replaced_at) html += fact(t('Board replaced'), esc(t('{when}: a new SD card, a spare Pi or a restored copy', { when: since(st.replaced_at) })));
  html += `</dl><h3>${esc(t('Huddle'))}</h3>`;
  if (h) {
    html += '<dl class="facts-list">';
    html += fact(t('Step'), h.step ? esc(step(h.step)) : NONE);
    html += fact(t('In this step'), h.step_started_at && !h.closed_at ? `<span data-since="${ms(h.step_started_at) ?? ''}"></span>` : NONE);
    html += fact(t('Started'), time(h.started_at) + (h.scheduled_at ? ' ' + esc(t('(due {time})', { time: time(h.scheduled_at) })) : ''));
    html += fact(h.closed_at ? t('Took') : t('Running'),
      h.closed_at ? clock((ms(h.closed_at) - ms(h.started_at)) / 1000) : `<span data-since="${ms(h.started_at) ?? ''}" data-target="${num(h.target_s) || ''}"></span>`);
    html += fact(t('Target'), num(h.target_s) === null ? NONE : clock(h.target_s));
    html += fact(t('Attendance'), num(h.expected) ? `${h.present ?? NONE}/${h.expected}`
      : esc(t('{present} present, none expected', { present: h.present ?? NONE })));
    if (h.summary && Array.isArray(h.summary.absent) && h.summary.absent.length) html += fact(t('Absent'), esc(h.summary.absent.join(', ')));
    html += '</dl>';
  } else {
    const hs = typeof st.huddle === 'string' && STATES[st.huddle] ? t(STATES[st.huddle]) : null;
    html += `<p class="muted">${hs ? esc(hs) + '; ' : ''}${esc(t('no step or attendance in this status.'))}</p>`;
  }
  const e = escalationsOf(st);
  html += `<h3>${esc(t('Open escalations'))}</h3>`;
  if (!e) html += `<p class="muted">${NONE}</p>`;
  else if (!e.length) html += `<p class="muted">${esc(t('None.'))}</p>`;
  else {
    html += '<ul class="esc-list">' + e.map((x) => `<li${x.stale ? ' class="stale"' : ''}>
      <span class="esc-age">${age(x.escalated_at)}${x.stale ? ' · ' + esc(t('old')) : ''}</span>
      <span class="esc-cat">${esc(label(x.category))}</span> ${esc(x.text)}</li>`).join('') + '</ul>';
    if (num(st.escalations_more)) html += `<p class="muted">${esc(tn('and {n} newer one not listed.', 'and {n} newer ones not listed.', st.escalations_more))}</p>`;
  }
  const sc = b.schedule;
  html += `<h3>${esc(t('Schedule'))}</h3>`;
  html += sc && Array.isArray(sc.times)
    ? `<p>${esc(sc.times.join(', '))} <span class="muted">(${esc(t('{zone}; missed after {grace}; target {target}', { zone: sc.timezone || '', grace: clock(sc.grace_s || 0), target: clock(sc.target_s || 0) }))})</span></p>`
    : `<p class="muted">${NONE}</p>`;
  body.innerHTML = html;
  tick();
}

// Every second: the running timers. Nothing moves while the data is stale.
function tick() {
  if (lostAt !== null) return;
  for (const t of tiles.values()) if (t.facts.run) tickTile(t);
  const now = Date.now();
  for (const el of document.querySelectorAll('#detail [data-since]')) {
    const at = Number(el.dataset.since);
    if (!el.dataset.since || !isFinite(at)) { el.textContent = NONE; continue; }
    const s = (now - at) / 1000;
    const target = Number(el.dataset.target);
    el.textContent = clock(s) + (target ? ' / ' + clock(target) : '') + (target && s > target ? ` (${overWords(s - target)})` : '');
    el.classList.toggle('over', target > 0 && s > target);
  }
}

// ------------------------------------------------------------ wiring

function setConn(kind, text) {
  const el = document.getElementById('conn');
  el.dataset.conn = kind;
  setText(el, text);
}

// The data on the page is no longer live: say since when, dim it, stop
// the timers, until a fresh snapshot arrives.
function lost(text) {
  if (lostAt === null) lostAt = Date.now();
  document.body.dataset.stale = 'yes';
  setConn('down', t('Connection lost since {time}.', { time: hhmm(lostAt) }) + ' ' + text);
}

function fresh() {
  lostAt = null;
  delete document.body.dataset.stale;
  setConn('live', t('Live'));
}

function connect() {
  const source = new EventSource('/api/events');
  source.addEventListener('snapshot', (ev) => {
    state = JSON.parse(ev.data);
    dirty = { boards: new Set(), all: true };
    fresh();
    schedule();
  });
  source.addEventListener('change', (ev) => {
    apply(JSON.parse(ev.data));
    schedule();
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the token changed?) or the server is gone: check which.
      fetch('/api/state', { credentials: 'same-origin' }).then((r) => {
        if (r.status === 401) setConn('denied', t('Not authorised: open this page as /?token=TOKEN'));
        else { lost(t('Reconnecting…')); setTimeout(connect, 3000); }
      }, () => { lost(t('Reconnecting…')); setTimeout(connect, 3000); });
    } else {
      lost(t('Reconnecting…'));
    }
  });
}

function openDetail(key) {
  openKey = key;
  renderDetail();
  const dlg = document.getElementById('detail');
  if (!dlg.open) dlg.showModal();
}

document.addEventListener('DOMContentLoaded', () => {
  // The language picker: the choice is a cookie the server reads (it
  // wins over the browser's Accept-Language), then the page is reloaded.
  const pick = document.getElementById('lang');
  pick.addEventListener('change', () => {
    document.cookie = `huddle_lang=${encodeURIComponent(pick.value)}; Path=/; Max-Age=31536000; SameSite=Strict`;
    location.reload();
  });
  document.getElementById('grid').addEventListener('click', (ev) => {
    const tile = ev.target.closest('.tile');
    if (tile) openDetail(tile.dataset.key);
  });
  const dlg = document.getElementById('detail');
  document.getElementById('detail-close').addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => { openKey = null; });
  dlg.addEventListener('click', (ev) => { if (ev.target === dlg) dlg.close(); });
  NARROW.addEventListener('change', () => { dirty.all = true; schedule(); });
  setInterval(tick, 1000);
  setInterval(() => { if (lostAt === null) { dirty.all = true; schedule(); } }, REDRAW_MS);
  connect();
});
