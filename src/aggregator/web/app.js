// The supervisors' dashboard. Reads /api/events (server-sent events: a
// "snapshot" with the whole state, then one "change" per retained topic
// or alert the aggregator publishes) and draws the site grid, the site
// summary, the alerts, the coaching table and one board's details.
// Payloads are the MQTT topics' own; fields a payload lacks (an older
// aggregator's minimal board status) are shown as "—". Timers and ages
// come from the payloads' absolute times and this browser's clock.
'use strict';

const NONE = '\u2014';
const STATES = {
  not_started: 'Not started',
  in_progress: 'In progress',
  closed: 'Closed',
  missed: 'Missed',
  offline: 'Offline',
  unknown: 'Unknown',
};
const ALERT_NAMES = {
  missed_huddle: 'Missed huddle',
  escalation_stale: 'Escalation getting old',
  board_offline: 'Board offline',
  coaching_overdue: 'Coaching overdue',
  integrity: 'Conflicting event',
  board_twin: 'Two boards, one id',
};
const ROLES = { team_leader: 'Team leader', supervisor: 'Supervisor', manager: 'Manager', member: 'Member' };
const ALERTS_SHOWN = 200;

let state = { site_id: '', version: 0, boards: {}, site: null, coaching: null, stats: null, alerts: [] };
const tiles = new Map(); // board key → <li>
let openKey = null; // the board in the detail dialog
let dirty = { boards: new Set(), all: true };
let frame = 0;

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
// An age in words: "40 s", "12 min", "3 h", "2 d".
function age(t) {
  const at = ms(t);
  if (at === null) return NONE;
  const s = Math.max(0, (Date.now() - at) / 1000);
  if (s < 60) return Math.floor(s) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 172800) return Math.floor(s / 3600) + ' h';
  return Math.floor(s / 86400) + ' d';
}
function time(t) {
  const at = ms(t);
  if (at === null) return NONE;
  const d = new Date(at);
  const hm = { hour: '2-digit', minute: '2-digit', hour12: false };
  const days = Math.abs(at - Date.now()) / 86400000;
  if (new Date().toDateString() === d.toDateString()) return d.toLocaleTimeString([], hm);
  // Within a week either way the weekday says enough ("Tue 06:45").
  if (days < 6) return d.toLocaleString([], { weekday: 'short', ...hm });
  return d.toLocaleString([], { month: 'short', day: 'numeric', ...hm });
}
function pct(v) {
  return num(v) === null ? NONE : Math.round(v * 100) + '%';
}
function fixed(v, digits) {
  return num(v) === null ? NONE : v.toFixed(digits);
}
function label(key) {
  return String(key).replace(/_/g, ' ');
}

// ------------------------------------------------------------ the model

// The huddle state of a board status, whichever payload it is: the live
// status has `state` and a `huddle` object; the minimal one a `huddle` string.
function boardState(st) {
  if (!st) return 'unknown';
  if (st.online === false) return 'offline';
  const s = typeof st.state === 'string' ? st.state : st.huddle;
  return typeof s === 'string' && STATES[s] ? s : 'unknown';
}
function huddleOf(st) {
  return st && st.huddle && typeof st.huddle === 'object' ? st.huddle : null;
}
function escalationsOf(st) {
  return st && Array.isArray(st.escalations) ? st.escalations : null;
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

function render() {
  frame = 0;
  const all = dirty.all;
  const d = dirty;
  dirty = { boards: new Set(), all: false };
  document.getElementById('site-id').textContent = state.site_id ? '· ' + state.site_id : '';
  if (all || d.boards.size) renderGrid(all ? null : d.boards);
  if (all || d.summary) renderSummary();
  if (all || d.alerts) renderAlerts();
  if (all || d.coaching) renderCoaching();
  if (openKey && (all || d.boards.has(openKey))) renderDetail();
  document.body.dataset.version = String(state.version);
}

function tileHtml(key, b) {
  const st = b.status;
  const s = boardState(st);
  const h = huddleOf(st);
  const esc_ = escalationsOf(st);
  const stale = esc_ ? esc_.filter((e) => e.stale).length + (num(st.escalations_more_stale) || 0) : 0;
  const huddleState = st ? (typeof st.state === 'string' ? st.state : st.huddle) : null;
  const stateLabel = s === 'offline' && STATES[huddleState] ? 'Offline · ' + STATES[huddleState] : STATES[s];
  let timer = NONE;
  let timerLabel = 'Timer';
  if (h && huddleState === 'in_progress' && ms(h.started_at) !== null) {
    timerLabel = 'Running';
    timer = `<span data-since="${esc(h.started_at)}" data-target="${num(h.target_s) || ''}"></span>`;
  } else if (h && ms(h.closed_at) !== null && ms(h.started_at) !== null) {
    timerLabel = 'Took';
    timer = clock((ms(h.closed_at) - ms(h.started_at)) / 1000);
  } else if (st && ms(st.next_due_at) !== null) {
    timerLabel = 'Next';
    timer = time(st.next_due_at);
  }
  const step = h && huddleState === 'in_progress' && h.step ? ' · ' + esc(label(h.step)) : '';
  const attendance = h && num(h.present) !== null ? `${h.present}/${num(h.expected) ?? NONE}` : NONE;
  const escalations = esc_ ? String(esc_.length + (num(st.escalations_more) || 0)) + (stale ? ` (${stale} old)` : '') : NONE;
  const observed = st && st.last_observation_at ? age(st.last_observation_at) + " ago" : NONE;
  const name = (st && st.board) || b.board;
  return `<button type="button" class="tile" data-state="${s}" data-key="${esc(key)}"
      aria-label="${esc(name)}, ${esc(b.area)}: ${esc(stateLabel)}; present ${attendance}; escalations ${escalations}. Show details">
    <span class="tile-head"><span class="name">${esc(name)}</span><span class="area">${esc(b.area)}</span></span>
    <span class="badge">${esc(stateLabel)}${step}</span>
    <span class="facts">
      <span class="fact"><span class="k">Present</span><span class="v">${attendance}</span></span>
      <span class="fact"><span class="k">${timerLabel}</span><span class="v">${timer}</span></span>
      <span class="fact${stale ? ' warn' : ''}"><span class="k">Escalations</span><span class="v">${escalations}</span></span>
      <span class="fact"><span class="k">Observed</span><span class="v">${observed}</span></span>
    </span>
  </button>`;
}

function renderGrid(only) {
  const grid = document.getElementById('grid');
  const keys = Object.keys(state.boards).sort();
  document.getElementById('no-boards').hidden = keys.length > 0;
  if (!only) {
    // A snapshot: drop tiles of boards that are gone, keep the order.
    for (const [k, li] of tiles) if (!state.boards[k]) { li.remove(); tiles.delete(k); }
  }
  let added = false;
  for (const key of only ? [...only] : keys) {
    const b = state.boards[key];
    if (!b) continue;
    let li = tiles.get(key);
    if (!li) {
      li = document.createElement('li');
      tiles.set(key, li);
      added = true;
    }
    const html = tileHtml(key, b);
    if (li.dataset.html !== html) {
      li.dataset.html = html;
      li.innerHTML = html;
    }
  }
  if (added || !only) for (const key of keys) grid.appendChild(tiles.get(key));
  tick();
}

function summaryItem(k, v, attr) {
  return `<div class="sum"${attr || ''}><dt>${esc(k)}</dt><dd>${v}</dd></div>`;
}

function renderSummary() {
  const el = document.getElementById('summary');
  const site = state.site;
  const counts = { not_started: 0, in_progress: 0, closed: 0, missed: 0, offline: 0 };
  let boards = 0;
  for (const b of Object.values(state.boards)) {
    boards += 1;
    const s = boardState(b.status);
    if (s in counts) counts[s] += 1;
  }
  const c = site && site.states ? site.states : counts;
  let overdue = site && num(site.coaching_overdue) !== null ? site.coaching_overdue : null;
  if (overdue === null && state.coaching && Array.isArray(state.coaching.people)) {
    overdue = state.coaching.people.filter((p) => p.overdue).length;
  }
  const v = (x) => (num(x) === null ? NONE : String(x));
  const escal = site && num(site.open_escalations) !== null
    ? site.open_escalations + (site.stale_escalations ? ` <small>(${site.stale_escalations} old)</small>` : '')
    : NONE;
  el.innerHTML = `<dl class="sums">
    ${summaryItem('Boards', v(site && num(site.boards) !== null ? site.boards : boards))}
    ${['in_progress', 'closed', 'not_started', 'missed', 'offline'].map((s) => summaryItem(STATES[s], v(c[s]), ` data-state="${s}"`)).join('')}
    ${summaryItem('Held today', v(site && site.held_today))}
    ${summaryItem('Missed today', v(site && site.missed_today))}
    ${summaryItem('Attendance', site ? pct(site.attendance_rate) : NONE)}
    ${summaryItem('Open escalations', escal)}
    ${summaryItem('Coaching overdue', v(overdue))}
  </dl>`;
}

function alertText(a) {
  const p = a.payload || {};
  if (typeof p.message === 'string') return p.message;
  if (a.kind === 'coaching_overdue' && p.name) {
    return `${p.name} (${ROLES[p.role] || p.role}): ${p.count_in_window ?? NONE} of ${p.target ?? NONE} observations in the window`;
  }
  return typeof p === 'string' ? p : JSON.stringify(p);
}

function renderAlerts() {
  const list = document.getElementById('alerts');
  document.getElementById('no-alerts').hidden = state.alerts.length > 0;
  list.innerHTML = state.alerts.map((a) => {
    const p = a.payload || {};
    const where = p.board ? `${esc(p.board)}${p.area ? ' · ' + esc(p.area) : ''}` : '';
    const at = p.at || p.overdue_since;
    return `<li class="alert" data-kind="${esc(a.kind)}">
      <span class="alert-kind">${esc(ALERT_NAMES[a.kind] || label(a.kind))}</span>
      <time datetime="${esc(at || '')}">${time(at)}</time>
      <span class="alert-where">${where}</span>
      <span class="alert-text">${esc(alertText(a))}</span>
    </li>`;
  }).join('');
}

function renderCoaching() {
  const c = state.coaching;
  const body = document.querySelector('#coaching tbody');
  const meta = document.getElementById('coaching-meta');
  if (!c || !Array.isArray(c.people)) {
    meta.textContent = 'No coaching report yet.';
    body.innerHTML = '';
    return;
  }
  meta.textContent = `Window ${c.window_days ?? NONE} days · computed ${time(c.at)} · ${c.people.length} people`;
  body.innerHTML = c.people.map((p) => {
    const cadence = num(p.target) === null ? NONE : `${p.count_in_window ?? NONE}/${p.target}`;
    const status = p.overdue ? '<span class="pill bad">Overdue</span>' : (num(p.target) ? '<span class="pill ok">On track</span>' : '');
    const change = num(p.learner_change) === null ? NONE : (p.learner_change > 0 ? '+' : '') + p.learner_change.toFixed(2);
    const focus = num(p.focus_set) === null ? NONE : `${p.focus_landed}/${p.focus_set}`;
    return `<tr${p.overdue ? ' class="overdue"' : ''}>
      <th scope="row">${esc(p.name)}</th>
      <td>${esc(ROLES[p.role] || p.role)}</td>
      <td>${esc((p.boards || []).join(', ') || NONE)}</td>
      <td>${cadence} ${status}</td>
      <td>${p.last_observed ? age(p.last_observed) + ' ago' : NONE}</td>
      <td>${time(p.due_by)}</td>
      <td>${fixed(p.score, 1)}</td>
      <td>${esc(p.trend || NONE)}</td>
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
  if (!b) { body.innerHTML = '<p class="muted">This board is gone.</p>'; return; }
  const st = b.status || {};
  const s = boardState(b.status);
  const h = huddleOf(st);
  document.getElementById('detail-h').textContent = `${st.board || b.board} · ${b.area}`;
  let html = `<p class="badge big" data-state="${s}">${esc(STATES[s])}</p><dl class="facts-list">`;
  html += fact('Online', st.online === true ? 'yes' : st.online === false ? 'no' : NONE);
  html += fact('Last event', st.last_event_at ? `${time(st.last_event_at)} (${age(st.last_event_at)} ago)` : NONE);
  html += fact('Events stored', num(st.last_seq) === null ? NONE : String(st.last_seq));
  html += fact('Next huddle', time(st.next_due_at));
  html += fact('Team leader last observed', 'last_observation_at' in st && st.last_observation_at ? age(st.last_observation_at) + ' ago' : NONE);
  if (st.replaced_at) html += fact('Board replaced', `${time(st.replaced_at)} (${age(st.replaced_at)} ago): a new SD card, a spare Pi or a restored copy`);
  html += '</dl><h3>Huddle</h3>';
  if (h) {
    html += '<dl class="facts-list">';
    html += fact('Step', h.step ? esc(label(h.step)) : NONE);
    html += fact('In this step', h.step_started_at && !h.closed_at ? `<span data-since="${esc(h.step_started_at)}"></span>` : NONE);
    html += fact('Started', time(h.started_at) + (h.scheduled_at ? ` (due ${time(h.scheduled_at)})` : ''));
    html += fact(h.closed_at ? 'Took' : 'Running',
      h.closed_at ? clock((ms(h.closed_at) - ms(h.started_at)) / 1000) : `<span data-since="${esc(h.started_at)}" data-target="${num(h.target_s) || ''}"></span>`);
    html += fact('Target', num(h.target_s) === null ? NONE : clock(h.target_s));
    html += fact('Attendance', `${h.present ?? NONE}/${h.expected ?? NONE}`);
    if (h.summary && Array.isArray(h.summary.absent) && h.summary.absent.length) html += fact('Absent', esc(h.summary.absent.join(', ')));
    html += '</dl>';
  } else {
    const hs = typeof st.huddle === 'string' ? STATES[st.huddle] : null;
    html += `<p class="muted">${hs ? esc(hs) + '; ' : ''}no step or attendance in this status.</p>`;
  }
  const e = escalationsOf(st);
  html += '<h3>Open escalations</h3>';
  if (!e) html += `<p class="muted">${NONE}</p>`;
  else if (!e.length) html += '<p class="muted">None.</p>';
  else {
    html += '<ul class="esc-list">' + e.map((x) => `<li${x.stale ? ' class="stale"' : ''}>
      <span class="esc-age">${age(x.escalated_at)}${x.stale ? ' · old' : ''}</span>
      <span class="esc-cat">${esc(label(x.category))}</span> ${esc(x.text)}</li>`).join('') + '</ul>';
    if (num(st.escalations_more)) html += `<p class="muted">and ${st.escalations_more} newer ones not listed.</p>`;
  }
  const sc = b.schedule;
  html += '<h3>Schedule</h3>';
  html += sc && Array.isArray(sc.times)
    ? `<p>${esc(sc.times.join(', '))} <span class="muted">(${esc(sc.timezone || '')}; missed after ${clock(sc.grace_s || 0)}; target ${clock(sc.target_s || 0)})</span></p>`
    : `<p class="muted">${NONE}</p>`;
  body.innerHTML = html;
  tick();
}

// Every [data-since] shows the time since then; red past its target.
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-since]')) {
    const at = ms(el.dataset.since);
    if (at === null) { el.textContent = NONE; continue; }
    const s = (now - at) / 1000;
    const target = Number(el.dataset.target);
    el.textContent = clock(s);
    if (target) {
      const small = document.createElement('small');
      small.textContent = ' / ' + clock(target);
      el.appendChild(small);
    }
    el.classList.toggle('over', target > 0 && s > target);
  }
}

// ------------------------------------------------------------ wiring

function setConn(kind, text) {
  const el = document.getElementById('conn');
  el.dataset.conn = kind;
  el.textContent = text;
}

function connect() {
  const source = new EventSource('/api/events');
  source.addEventListener('open', () => setConn('live', 'Live'));
  source.addEventListener('snapshot', (ev) => {
    state = JSON.parse(ev.data);
    dirty = { boards: new Set(), all: true };
    schedule();
    setConn('live', 'Live');
  });
  source.addEventListener('change', (ev) => {
    apply(JSON.parse(ev.data));
    schedule();
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the token changed?) or the server is gone: check which.
      fetch('/api/state', { credentials: 'same-origin' }).then((r) => {
        if (r.status === 401) setConn('denied', 'Not authorised: open this page as /?token=TOKEN');
        else { setConn('down', 'Reconnecting…'); setTimeout(connect, 3000); }
      }, () => { setConn('down', 'Reconnecting…'); setTimeout(connect, 3000); });
    } else {
      setConn('down', 'Reconnecting…');
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
  document.getElementById('grid').addEventListener('click', (ev) => {
    const tile = ev.target.closest('.tile');
    if (tile) openDetail(tile.dataset.key);
  });
  const dlg = document.getElementById('detail');
  document.getElementById('detail-close').addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => { openKey = null; });
  dlg.addEventListener('click', (ev) => { if (ev.target === dlg) dlg.close(); });
  setInterval(tick, 1000);
  // Ages in tiles and lists are words ("3 min"): redraw them each half minute.
  setInterval(() => { dirty.all = true; schedule(); }, 30000);
  connect();
});
