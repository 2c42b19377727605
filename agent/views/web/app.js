// The agent's page: a view over the local API (docs/agent-page.md, docs/agent-local-api.md).
// No framework and no build step. The page holds no data of its own: everything comes from
// the API with the token the tray or `dmp-agent page` put in the URL fragment. Every text
// from the API goes in through textContent, never as HTML.

import {identityView} from './identity.js';
import {initSections, renderSections} from './sections.js';
import {closeViewer, initViewer, openViewer} from './viewer.js';
import {renderEcps, wireEcps} from './ecps.js';
import {renderVaccination, wireVaccination} from './vaccination.js';
import {depositPath, endReplacement, renderReplacement, replacing, startReplacement,
  wireReplacement} from './replacement.js';

const TOKEN_KEY = 'dmp-agent-token';
// The practice situation last chosen per card: idNat_PS -> structure id (this browser).
const SITUATIONS_KEY = 'dmp-agent-situations';
const SECTIONS = ['session', 'patient', 'dossier', 'deposit', 'create', 'emergency',
  'diagnostics', 'settings'];
const NEEDS_SESSION = new Set(['patient', 'dossier', 'deposit', 'create', 'emergency']);
const MAX_UPLOAD = 64 * 1024 * 1024; // the agent's and the host's limit per document
const MIN_JUSTIFICATION = 10;
const VIEWABLE = new Set(['application/pdf', 'text/plain']);
// The profession codes' names, said with t() where shown.
const PROFESSIONS = {
  10: () => t('Physician'), 21: () => t('Pharmacist'), 28: () => t('Optician'),
  40: () => t('Dental surgeon'), 50: () => t('Midwife'), 60: () => t('Nurse'),
  70: () => t('Physiotherapist'), 92: () => t('Orthoptist'),
};

const $ = (id) => document.getElementById(id);

// -- the words: one language at a time (docs/i18n.md) ------------------------------------
// The agent serves index.html already in its language (<html lang>) and the page's own
// messages at GET /api/messages; t() gives an English message id in that language, with
// {name} filled from params. Without the messages (no token yet), the English id.
const language = document.documentElement.lang || 'fr';
const LOCALE = language === 'en' ? 'en-GB' : 'fr-FR';
let messages = {};

function t(id, params = {}) {
  const text = Object.hasOwn(messages, id) ? messages[id] : id;
  return text.replace(/\{(\w+)\}/g, (all, name) => (Object.hasOwn(params, name)
    ? String(params[name]) : all));
}

// A sentence index.html carries (translated by the agent) for when the page has no token.
function pageText(id) {
  return $(id).textContent.trim();
}

async function loadMessages() {
  try {
    const response = await fetch('/api/messages', {credentials: 'omit',
      headers: {Authorization: `Bearer ${token}`}});
    if (response.ok) messages = (await response.json()).messages || {};
  } catch {
    // the English ids stay: the status line says the agent cannot be reached
  }
}

function decimal(number) {
  return number.toLocaleString(LOCALE);
}

let token = null;
let state = null; // the last snapshot (GET /api/status, then kept current by the events)
let current = null; // the selected section
let returnTo = null; // the last section that needs a session: shown once it is open
let filtered = null; // {key, list}: the result of GET /api/documents for the filters
let depositTypes = {key: null, list: []};
let titleEdited = false;
let identity = null; // the patient's identity part (identity.js), wired at the start
let depositing = false; // an upload is under way: the submit waits for it
// outbox item id -> {id, title, state, lastError, attempts, reason, reasonText, nextAttempt}
const tracked = new Map();

// What the outbox says of an item, copied onto the one the page follows.
function followed(now) {
  return {state: now.state, lastError: now.lastError, attempts: now.attempts,
    reason: now.reason || '', reasonText: now.reasonText || '',
    nextAttempt: now.nextAttempt || null, seen: true};
}
const memo = new Map(); // list id -> the JSON it was last drawn from
// The document rows drawn, by unique id, with the JSON each was drawn from: a row whose
// document did not change is kept as it is, so a press landing while the list is drawn
// again is not lost, and a busy button stays busy.
let documentRows = new Map();

class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
}

// -- small DOM helpers -------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

function say(id, text, kind = 'info') {
  const node = $(id);
  node.textContent = text || '';
  node.dataset.kind = text ? kind : '';
}

function changed(id, value) {
  const key = JSON.stringify(value);
  if (memo.get(id) === key) return false;
  memo.set(id, key);
  return true;
}

function localDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(LOCALE, {dateStyle: 'short', timeStyle: 'short'});
}

function birthDate(raw) {
  // YYYYMMDD as on the card; lunar dates keep their 00.
  return /^\d{8}$/.test(raw || '') ? `${raw.slice(6)}/${raw.slice(4, 6)}/${raw.slice(0, 4)}`
    : (raw || '');
}

function personName(p) {
  if (!p) return '';
  return [p.firstName, p.lastName || p.birthName].filter(Boolean).join(' ');
}

function profession(code) {
  return PROFESSIONS[code] ? PROFESSIONS[code]() : (code ? t('profession {code}', {code}) : '');
}

// -- the token ---------------------------------------------------------------------------
function readFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const given = params.get('token');
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
  }
  const section = params.get('section');
  // The token must not stay in the address bar, the history or a bookmark.
  if (given || location.hash) {
    history.replaceState(null, '', location.pathname + location.search
      + (SECTIONS.includes(section) ? `#section=${section}` : ''));
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  return SECTIONS.includes(section) ? section : null;
}

function noToken(detail = '') {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  state = null;
  show('app', false);
  show('no-token', true);
  $('no-token-detail').textContent = detail;
  $('connection').textContent = '';
  setOffline(false);
  show('emergency-banner', false);
  show('problem-banner', false);
  clearWaits();
}

// -- one request per press --------------------------------------------------------------
// The button just pressed (a click, or the form's submit by Enter) stays busy while the
// requests it started run: a second press does nothing (no double submit) and it shows
// so (aria-disabled). `disabled` stays the page's own (a form's rules decide it).
let pressed = null;
const busyCount = new Map();

function press(event, button) {
  if (button && busyCount.get(button)) {
    event.preventDefault();
    event.stopImmediatePropagation();
    return;
  }
  pressed = button;
  setTimeout(() => { if (pressed === button) pressed = null; }, 0);
}
document.addEventListener('click', (event) => {
  press(event, event.target instanceof Element ? event.target.closest('button') : null);
}, true);
document.addEventListener('submit', (event) => {
  press(event, event.submitter || event.target.querySelector('button[type="submit"]'));
}, true);

function busy(button, on) {
  if (!button) return;
  const count = (busyCount.get(button) || 0) + (on ? 1 : -1);
  if (count > 0) busyCount.set(button, count);
  else busyCount.delete(button);
  if (count > 0) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
  button.toggleAttribute('data-busy', count > 0);
}

// -- the API -----------------------------------------------------------------------------
// Every call goes through `request()`, which knows in words what it waits for (`what`) and
// whether the DMP host is behind it (`host`): see "waits" below.
async function request(method, path, options = {}) {
  const headers = {Authorization: `Bearer ${token}`};
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const controller = new AbortController();
  const button = pressed;
  busy(button, true);
  const wait = beginWait(options.what || t("The agent's answer"), {
    host: options.host, key: options.key, timeout: options.timeout, held: options.held,
    control: options.control, onCancel: options.onCancel, abort: () => controller.abort()});
  try {
    let response;
    try {
      response = await fetch(path, {method, headers, body, cache: 'no-store',
        credentials: 'omit', signal: controller.signal});
    } catch (error) {
      if (wait.outcome) throw error;
      setOffline(true);
      throw new ApiError(0, 'unreachable', pageText('text-unreachable'));
    }
    if (!response.ok) throw await failure(response);
    // The body is read inside the wait: a document's bytes may come slowly too.
    return options.read ? await options.read(response) : response;
  } catch (error) {
    // Cancelled by the user or past its timeout: the error says which, in words.
    if (wait.outcome === 'dropped') {
      throw error instanceof ApiError ? error : new ApiError(0, 'wait-dropped', '');
    }
    if (wait.outcome) throw new ApiError(0, `wait-${wait.outcome}`, outcomeText(wait));
    throw error;
  } finally {
    endWait(wait);
    busy(button, false);
  }
}

async function failure(response) {
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    answer = {};
  }
  const {code = 'error', message = t('Error {status}', {status: response.status}), ...extra}
    = answer;
  if (response.status === 401 && code === 'bad-token') noToken(pageText('text-bad-token'));
  return new ApiError(response.status, code, message, extra);
}

// api(method, path, json, {what, host, key, ...}): the JSON answer (null for a 204).
async function api(method, path, json, options = {}) {
  return request(method, path, {...options, json,
    read: (response) => (response.status === 204 ? null : response.json())});
}

// A wait the user cancelled or that passed its timeout: said where the waits are, so the
// action's own message only clears its "…en cours".
function waitEnded(error) {
  return error instanceof ApiError && ['wait-cancelled', 'wait-timeout', 'wait-dropped']
    .includes(error.code);
}

function failed(id, error) {
  if (waitEnded(error)) say(id, '');
  else say(id, error.message, 'error');
}

// -- waits -------------------------------------------------------------------------------
// What the page waits for, said after a second (never before: no flicker), with the time
// it has waited and "Annuler"; every wait ends by itself after its timeout, the controls
// usable again. The agent's own host work the events announce (the patient's dossier
// being read, a session opening) gets the same line, without "Annuler".
const WAIT_SHOWN = 1000; // ms before a wait is said
// A host operation: a few round trips at a 3 s RTT, each bounded by the agent's own host
// timeout (30 s by default), fit well within it.
const HOST_WAIT = 90000;
const AGENT_WAIT = 30000; // the agent alone, on this computer (its state, the outbox)
const OUTCOME_KEPT = 30000; // ms an "Annulé : …" or a timeout stays on screen
const waits = new Set(); // the page's own requests under way
const agentSince = new Map(); // key (session, patient) -> when that host work began
const waitLines = new Map(); // a wait (or an agent key) -> its line on screen
let waitTicker = null;

// beginWait(what, {host, key, timeout, held, control, onCancel, abort}):
// - host: false when only the agent answers (said "En attente de l'agent");
// - key: the agent's own work it stands for ("session", "patient"): one line, not two;
// - held(): true while the agent waits for the user, not the host (the practice situation
//   to choose): no line, no timeout, counted again from when it ends;
// - control: what gets the focus back once cancelled; onCancel: the API's own way to
//   cancel, called besides aborting the request.
function beginWait(what, options = {}) {
  const now = Date.now();
  const host = options.host !== false;
  const timeout = options.timeout || (host ? HOST_WAIT : AGENT_WAIT);
  const wait = {what, host, timeout, key: options.key || null, held: options.held || null,
    control: options.control || null, onCancel: options.onCancel || null,
    abort: options.abort, start: now, deadline: now + timeout, outcome: null};
  if (wait.key && !agentSince.has(wait.key)) agentSince.set(wait.key, now);
  waits.add(wait);
  drawWaits();
  return wait;
}

function endWait(wait) {
  if (!waits.delete(wait)) return;
  drawWaits();
}

// Stop waiting: 'cancelled' (the user's "Annuler") or 'timeout'. The request is aborted,
// its caller gets an error naming what happened and gives its controls back.
function stopWait(wait, outcome) {
  if (wait.outcome || !waits.has(wait)) return;
  wait.outcome = outcome;
  waits.delete(wait);
  const line = outcomeLine(outcomeText(wait), outcome === 'timeout' ? 'error' : 'info');
  if (outcome === 'cancelled' && wait.onCancel) wait.onCancel();
  wait.abort();
  drawWaits();
  if (outcome === 'cancelled') {
    // The button that was clicked is gone: the focus goes back to the form's control once
    // usable again, or to the sentence saying what was cancelled.
    setTimeout(() => {
      const control = wait.control;
      if (control && !control.disabled && control.offsetParent !== null) control.focus();
      else if (line.isConnected) line.focus();
    }, 50);
  }
}

function outcomeText(wait) {
  if (wait.outcome === 'cancelled') {
    return t('Cancelled: {what} (the agent may finish the operation in the background)',
      {what: wait.what});
  }
  const seconds = Math.round(wait.timeout / 1000);
  return wait.host
    ? t('The DMP host has not answered for {seconds} s: check the connection, or try again '
      + '({what}).', {seconds, what: wait.what})
    : t('The agent has not answered for {seconds} s: check that it is running, or try again '
      + '({what}).', {seconds, what: wait.what});
}

function outcomeLine(text, kind) {
  const line = el('p', {class: 'wait-outcome', 'data-kind': kind, tabindex: '-1', text});
  const list = $('wait-outcomes');
  list.append(line);
  while (list.children.length > 3) list.firstElementChild.remove();
  setTimeout(() => line.remove(), OUTCOME_KEPT);
  return line;
}

// The token is gone: nothing of the page's waits stays.
function clearWaits() {
  for (const wait of [...waits]) {
    wait.outcome = 'dropped';
    waits.delete(wait);
    wait.abort();
  }
  agentSince.clear();
  $('wait-outcomes').replaceChildren();
  drawWaits();
}

// The host work the agent does by itself, as the events tell it.
function agentWork() {
  const work = [];
  if (!state) return work;
  if (state.session && state.session.state === 'opening') {
    work.push({key: 'session', what: t('Opening the DMP session')});
  }
  if (sessionOpen() && state.patient && state.patient.state === 'loading') {
    work.push({key: 'patient', what: t('Reading the dossier')});
  }
  return work;
}

function drawWaits() {
  const now = Date.now();
  const shown = []; // [id, {what, host, start, deadline, wait?}]
  const covered = new Set(); // keys a request of the page already stands for
  for (const wait of [...waits]) {
    if (wait.held && wait.held()) {
      // The agent waits for the user: nothing is said, the timeout starts again after.
      wait.start = now;
      wait.deadline = now + wait.timeout;
      if (wait.key) agentSince.delete(wait.key);
      continue;
    }
    if (wait.key) covered.add(wait.key);
    if (now >= wait.deadline) {
      stopWait(wait, 'timeout');
      continue;
    }
    if (now - wait.start >= WAIT_SHOWN) {
      shown.push([wait, {what: wait.what, host: wait.host, start: wait.start,
        deadline: wait.deadline, wait}]);
    }
  }
  const working = agentWork();
  for (const work of working) {
    if (!agentSince.has(work.key)) agentSince.set(work.key, now);
    if (covered.has(work.key)) continue;
    const start = agentSince.get(work.key);
    if (now - start >= WAIT_SHOWN) {
      shown.push([work.key, {what: work.what, host: true, start,
        deadline: start + HOST_WAIT, wait: null}]);
    }
  }
  for (const key of [...agentSince.keys()]) {
    const waited = [...waits].some((wait) => wait.key === key);
    if (!waited && !working.some((work) => work.key === key)) agentSince.delete(key);
  }
  const list = $('wait-lines');
  const keep = new Set(shown.map(([id]) => id));
  for (const [id, line] of waitLines) {
    if (!keep.has(id)) {
      line.remove();
      waitLines.delete(id);
    }
  }
  for (const [id, wait] of shown) {
    let line = waitLines.get(id);
    if (!line) {
      line = waitLine(wait);
      waitLines.set(id, line);
      list.append(line);
    }
    const seconds = Math.floor((now - wait.start) / 1000);
    const late = now >= wait.deadline; // the agent's own work only: it ends by itself
    const text = late
      ? t('The DMP host has not answered for {seconds} s: check the connection ({what})',
        {seconds, what: wait.what})
      : (wait.host ? t('Waiting for the DMP host: {what}…', {what: wait.what})
        : t('Waiting for the agent: {what}…', {what: wait.what}));
    const what = line.querySelector('.wait-what');
    if (what.textContent !== text) what.textContent = text;
    line.dataset.kind = late ? 'error' : '';
    const since = late ? '' : t(' — for {seconds} s', {seconds});
    const counter = line.querySelector('.wait-since');
    if (counter.textContent !== since) counter.textContent = since;
  }
  const busy = waits.size > 0 || working.length > 0;
  if (busy && waitTicker === null) {
    waitTicker = setInterval(drawWaits, 250);
  } else if (!busy && waitTicker !== null) {
    clearInterval(waitTicker);
    waitTicker = null;
  }
}

function waitLine(wait) {
  const line = el('p', {class: 'wait'},
    el('span', {class: 'wait-what'}),
    // The seconds change every second: not read out each time (the line itself is).
    el('span', {class: 'wait-since', 'aria-live': 'off'}));
  if (wait.wait) {
    line.append(el('button', {type: 'button', class: 'wait-cancel',
      'aria-label': t('Cancel: {what}', {what: wait.what}),
      onclick: () => stopWait(wait.wait, 'cancelled')}, t('Cancel')));
  }
  return line;
}

// -- the event stream --------------------------------------------------------------------
// EventSource cannot send the Authorization header: fetch() and the stream's reader.
async function followEvents() {
  try {
    await readEvents();
  } finally {
    following = false; // a new token starts them again
  }
}

async function readEvents() {
  let delay = 500;
  while (token) {
    try {
      const response = await fetch('/api/events', {cache: 'no-store', credentials: 'omit',
        headers: {Authorization: `Bearer ${token}`, Accept: 'text/event-stream'}});
      if (!response.ok) {
        const error = await failure(response);
        if (error.code === 'bad-token') return;
        throw error;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let kind = 'message';
      let data = [];
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, '');
          buffer = buffer.slice(end + 1);
          if (line === '') { // a blank line ends an event
            if (data.length) {
              onEvent(kind, data.join('\n'));
              delay = 500;
            }
            kind = 'message';
            data = [];
          } else if (line.startsWith(':')) {
            continue; // a comment: the agent's keepalive
          } else {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') kind = text;
            else if (field === 'data') data.push(text);
          }
        }
      }
    } catch (error) {
      if (error instanceof ApiError && error.code === 'bad-token') return;
    }
    if (!token) return;
    setOffline(true, Math.round(delay / 100) / 10);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 4000); // loopback: a retry costs nothing
  }
}

function onEvent(kind, text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return;
  }
  if (kind === 'status') {
    state = data;
    setOffline(false);
  } else if (kind === 'notice') {
    notice(data);
    return;
  } else if (state && ['cards', 'session', 'patient', 'outbox', 'host'].includes(kind)) {
    state[kind] = data;
    if (kind === 'cards') refreshProblem();
    if (kind === 'outbox') followDeposits();
  } else {
    return;
  }
  render();
}

let problemTimer = null;
function refreshProblem() {
  // `problem` travels only in the full status: read it again when the cards change.
  clearTimeout(problemTimer);
  problemTimer = setTimeout(async () => {
    try {
      const status = await api('GET', '/api/status', undefined,
        {what: t("Reading the agent's state"), host: false});
      if (state) {
        state.problem = status.problem;
        render();
      }
    } catch {
      // the stream reports an unreachable agent
    }
  }, 200);
}

function setOffline(offline, retryIn = null) {
  show('offline-banner', offline && token !== null);
  // What is on screen may be out of date until the agent answers again.
  $('app').classList.toggle('stale', offline);
  $('app').setAttribute('aria-busy', offline ? 'true' : 'false');
  $('offline-detail').textContent = retryIn === null ? t('retrying soon')
    : t('retrying in {seconds} s', {seconds: decimal(retryIn)});
  if (token) {
    $('connection').textContent = offline ? t('Agent unreachable')
      : (state && state.version ? t('Connected to the agent {version}', {version: state.version})
        : t('Connected to the agent'));
    $('connection').dataset.kind = offline ? 'error' : 'ok';
  }
}

function notice(data) {
  // A blocked CPS is said once, where the session is (the panel and the status bar).
  if (data.code === 'cps-blocked') return;
  const box = el('div', {class: `notice ${data.level || 'info'}`},
    el('strong', {text: data.title || ''}), el('span', {text: data.text || ''}));
  const list = $('notices');
  list.append(box);
  while (list.children.length > 3) list.firstElementChild.remove();
  setTimeout(() => box.remove(), 8000);
}

// -- tabs --------------------------------------------------------------------------------
function tabs() {
  return [...document.querySelectorAll('[role="tab"]')];
}

function select(section, focus = false) {
  if (!SECTIONS.includes(section)) section = 'session';
  current = section;
  if (NEEDS_SESSION.has(section)) returnTo = section;
  for (const tab of tabs()) {
    const on = tab.dataset.section === section;
    tab.setAttribute('aria-selected', on ? 'true' : 'false');
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute('aria-controls')).hidden = !on;
    if (on && focus) tab.focus();
  }
  history.replaceState(null, '', `${location.pathname}${location.search}#section=${section}`);
  if (section === 'diagnostics') loadDiagnostics();
  if (section === 'settings') loadSettings();
  render();
}

function onTabKey(event) {
  const all = tabs();
  const at = all.indexOf(event.target);
  let next = null;
  if (event.key === 'ArrowRight') next = all[(at + 1) % all.length];
  else if (event.key === 'ArrowLeft') next = all[(at - 1 + all.length) % all.length];
  else if (event.key === 'Home') next = all[0];
  else if (event.key === 'End') next = all[all.length - 1];
  if (next) {
    event.preventDefault();
    select(next.dataset.section, true);
  }
}

// -- drawing -----------------------------------------------------------------------------
function render() {
  if (!state) return;
  show('no-token', false);
  show('app', true);
  const patient = state.patient || {};
  const mode = patient.accessMode;
  // The red banner says an emergency access is open: only while the dossier is read in
  // that mode (a refusal is said once, as the patient's error).
  show('emergency-banner', Boolean(mode) && patient.state !== 'error');
  if (mode) {
    const btg = breakTheGlass(mode);
    $('emergency-title').textContent = btg ? t('EMERGENCY ACCESS (BREAK THE GLASS)')
      : t('EMERGENCY ACCESS — CENTRE 15 (REGULATION)');
    show('emergency-why', Boolean(mode.justification));
    $('emergency-justification').textContent = mode.justification || '';
  }
  show('problem-banner', Boolean(state.problem));
  $('problem-text').textContent = state.problem || '';
  renderStatusBar();
  renderSession();
  renderEcps(state); // after the session: no PIN form while the phone is asked
  renderPatient();
  renderDossier();
  renderDeposit();
  renderCreate();
  renderEmergency();
  watchPatient();
  drawWaits(); // the agent's own host work, as the state now says
}

function slotText(slot) {
  const status = slot.status;
  if (status === 'none' || !slot.kind && status !== 'reader-error') {
    return status === 'none' ? t('empty') : (slot.message || status);
  }
  if (status === 'reader-error') return t('reader error {detail}', {detail: slot.message || ''});
  const kind = slot.kind === 'cps' ? 'CPS' : slot.kind === 'vitale' ? 'Vitale' : t('card');
  if (status === 'blocked') return t('{card} blocked', {card: kind});
  if (status === 'expired') return t('{card} expired — to be renewed', {card: kind});
  if (slot.kind === 'cps' && slot.cps) return `CPS — ${personName(slot.cps)}`;
  if (slot.kind === 'vitale' && slot.vitale) {
    const people = slot.vitale.beneficiaries || [];
    const more = people.length > 1 ? ` (+${people.length - 1})` : '';
    return `Vitale — ${people.length ? personName(people[0]) : ''}${more}`;
  }
  return slot.label || slot.message || kind;
}

// The CPS and the session as one state, derived from state.session and state.cards only:
// every panel (status bar, Session, the hints of the other tabs) says the same.
function cardState() {
  const session = (state && state.session) || {};
  const slots = (state && state.cards && state.cards.slots) || [];
  const cps = slots.find((slot) => slot.kind === 'cps'
    && (!session.reader || slot.reader === session.reader)) || null;
  const who = personName(session.professional || (cps && cps.cps));
  const s = session.state;
  if (s === 'open') return {kind: 'open', who};
  if (s === 'choosing') return {kind: 'choosing', who};
  if (s === 'opening') return {kind: 'opening', who};
  if ((cps && cps.status === 'blocked') || session.pinTriesLeft === 0) {
    return {kind: 'blocked', who, serial: cps && cps.cps ? cps.cps.serialNumber : '',
      text: (cps && cps.status === 'blocked' && cps.message) || session.error || blockedText()};
  }
  if (cps && cps.status === 'expired') {
    return {kind: 'expired', who, text: cps.message || session.error || expiredText()};
  }
  if (s === 'locked') return {kind: 'locked', who};
  if (session.error) return {kind: 'error', who, text: session.error};
  return {kind: 'none', who};
}

function blockedText() {
  return t('CPS card blocked: unblock it below with its unblocking code (PUK) and a new PIN. '
    + "Without that code, ask the card's issuer (ANS) to unblock or replace it.");
}

function expiredText() {
  return t("CPS card expired: have it renewed by the CPS cards' issuer (ANS).");
}

function renderStatusBar() {
  const slots = (state.cards && state.cards.slots) || [];
  if (changed('sb-readers', [state.cards && state.cards.service, slots])) {
    const list = $('sb-readers');
    list.replaceChildren();
    if (state.cards && state.cards.service === 'down') {
      list.append(el('li', {class: 'bad', text: t('Smart-card service down')}));
    } else if (!slots.length) {
      list.append(el('li', {text: t('No reader')}));
    }
    for (const slot of slots) {
      const bad = ['blocked', 'expired', 'reader-error', 'unknown'].includes(slot.status);
      list.append(el('li', {class: bad ? 'bad' : slot.kind ? 'card' : 'empty'},
        el('span', {class: 'reader', text: slot.reader}), ' ', slotText(slot)));
    }
  }
  const session = state.session || {};
  const card = cardState();
  const who = card.who;
  const holder = who ? ` (${who})` : '';
  const sessionText = {
    none: () => t('No CPS card'),
    locked: () => t('Locked — PIN expected') + holder,
    opening: () => t('Opening…'),
    choosing: () => t('Choosing the practice situation'),
    blocked: () => t('CPS blocked — see the Session tab') + holder,
    expired: () => t('CPS expired — to be renewed') + holder,
    error: () => card.text || '',
    open: () => t('Open — {who}', {who}),
  }[card.kind];
  $('sb-session').textContent = sessionText ? sessionText() : '';
  $('sb-session').dataset.state = card.kind;
  // The structure the session works for (the practice situation chosen at the opening).
  $('sb-structure').textContent = card.kind === 'open' && session.situation
    ? t('Structure: {name}', {name: session.situation.name}) : '';
  const patient = state.patient || {};
  let patientText = {
    none: () => t('None'),
    choosing: () => t('Choosing the person'),
    loading: () => t('Reading the dossier…'),
    error: () => patient.error || t('Error'),
    'choosing-identity': () => t('Choosing the identity (INS)'),
  }[patient.state];
  patientText = patientText ? patientText() : '';
  if (patient.state === 'ready' && patient.patient) {
    const dmp = patient.dmp || {};
    patientText = `${personName(patient.patient)} — ${dmpStatus(dmp.status)}`;
  }
  $('sb-patient').textContent = patientText;
  $('sb-patient').dataset.state = patient.state || '';
  const outbox = state.outbox || {};
  // What stops the outbox (a full or read-only disk), what it set aside, a rebuild: said
  // beside the counts, where the user looks for their deposits.
  const held = outbox.quarantine;
  // The DMP's pace (fewer than 5 deposits per second): said while it holds deposits back.
  const notes = [outbox.problem, outbox.recovered,
    held ? t('{count} file(s) in quarantine: {path} (dmp-agent doctor)',
      {count: held.files, path: held.path}) : '',
    outbox.throttle ? outbox.throttle.message : ''].filter(Boolean);
  $('sb-outbox').textContent = t('{pending} waiting, {failed} refused',
    {pending: outbox.pending || 0, failed: outbox.failed || 0})
    + (outbox.sending ? t(' — sending') : '') + notes.map((note) => ` — ${note}`).join('');
  $('sb-outbox').dataset.kind = outbox.failed || outbox.problem ? 'error' : '';
  renderHost();
}

// The host as the agent's last calls saw it (one source: state.host), with what to do.
function renderHost() {
  const host = state.host || {state: 'unknown'};
  const text = {
    unknown: () => t('Not contacted yet'),
    reachable: () => t('Reachable'),
    slow: () => host.reason,
    unreachable: () => t('{reason} — since {time}', {reason: host.reason,
      time: clock(host.since)}),
    certificate: () => host.reason,
  }[host.state];
  $('sb-host').textContent = text ? text() : host.state;
  $('sb-host').dataset.kind = ['unreachable', 'certificate'].includes(host.state) ? 'error'
    : '';
  $('sb-host-fix').textContent = host.fix || '';
  $('sb-host-fix').hidden = !host.fix;
}

function clock(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString(LOCALE, {hour: '2-digit', minute: '2-digit'});
}

function breakTheGlass(mode) {
  // The policies' mode code (bris_de_glace / centre_15), whatever its case.
  return String(mode.code || '').toLowerCase() === 'bris_de_glace';
}

function dmpStatus(status) {
  const text = {open: () => t('DMP open'), closed: () => t('DMP closed'),
    absent: () => t('no DMP')}[status];
  return text ? text() : (status || '');
}

function authorizationText(value) {
  const text = {valid: () => t('Valid'), none: () => t('None (authorization)'),
    expired: () => t('Expired'), forbidden: () => t('Refused: the patient blocked you')}[value];
  return text ? text() : (value || '');
}

function sessionOpen() {
  return Boolean(state && state.session && state.session.state === 'open');
}

function patientReady() {
  const patient = state && state.patient;
  return Boolean(sessionOpen() && patient && patient.state === 'ready' && patient.patient);
}

function patientKey() {
  const p = (state && state.patient) || {};
  const mode = p.accessMode ? p.accessMode.code : '';
  return `${p.reader}|${p.personIndex}|${p.patient ? p.patient.ins : ''}|${mode}`;
}

// The hint a section shows when it cannot be used yet; '' when it can.
function prerequisite() {
  if (!sessionOpen()) {
    const card = cardState();
    if (card.kind === 'blocked' || card.kind === 'expired') {
      return card.kind === 'blocked' ? t('CPS card blocked: see the Session tab.')
        : t('CPS card expired: see the Session tab.');
    }
    return t('Open the session first: CPS card and PIN (Session tab).');
  }
  const patient = state.patient || {};
  if (patient.state === 'none') return t("Insert the patient's Vitale card.");
  if (patient.state === 'choosing') {
    return t('Choose the person on the Vitale card (Patient tab).');
  }
  if (patient.state === 'loading') return t('Reading the dossier…');
  if (patient.state === 'error') return patient.error || t('Error');
  return identity.prerequisite(patient);
}

let lastCardKind = null;
function renderSession() {
  const session = state.session || {};
  const card = cardState();
  const s = card.kind;
  if (s !== lastCardKind) {
    // A message of the last state must not stay beside the new one ("Session ouverte"
    // under "Insérez votre carte CPS").
    // A wrong PIN's message stays through opening -> locked; a session's end, a card
    // gone, expired or blocked clear it.
    const stale = lastCardKind === 'open' || ['none', 'expired', 'blocked', 'error']
      .includes(s);
    if (lastCardKind !== null && stale) say('pin-message', '');
    lastCardKind = s;
  }
  show('session-none', s === 'none');
  show('session-blocked', ['blocked', 'expired', 'error'].includes(s));
  $('session-blocked').textContent = card.text || '';
  renderUnblock(card);
  const locked = s === 'locked' || s === 'opening';
  show('pin-form', locked);
  $('pin-submit').disabled = s === 'opening';
  if (!locked) $('pin').value = '';
  $('pin-holder').textContent = card.who;
  const tries = session.pinTriesLeft;
  $('pin-tries').textContent = typeof tries === 'number' && tries < 3 && tries > 1
    ? t('— {tries} tries left', {tries}) : '';
  // Before the last try: said where the PIN is typed.
  show('pin-last-try', locked && tries === 1);
  renderSituations(session, locked);
  show('session-open', s === 'open');
  const situations = session.situations || [];
  show('change-situation', s === 'open' && situations.length > 1);
  if (s === 'open') {
    const who = session.professional || {};
    $('session-who').textContent = `${personName(who)} (${who.idNatPs || ''})`;
    $('session-profession').textContent = profession(who.profession)
      + (who.testCard ? t(' — test card') : '');
    $('session-structure').textContent = session.situation
      ? `${session.situation.name} (${session.situation.structureId})` : '';
    $('session-until').textContent = localDate(session.notAfter);
  }
}

// -- practice situations ----------------------------------------------------------------
function rememberedSituations() {
  try {
    const map = JSON.parse(localStorage.getItem(SITUATIONS_KEY) || '{}');
    return map && typeof map === 'object' ? map : {};
  } catch {
    return {};
  }
}

function remembered(idNatPs) {
  return idNatPs ? rememberedSituations()[idNatPs] || null : null;
}

function remember(idNatPs, structureId) {
  if (!idNatPs || !structureId) return;
  const map = rememberedSituations();
  map[idNatPs] = structureId;
  localStorage.setItem(SITUATIONS_KEY, JSON.stringify(map));
}

function situationLabel(situation) {
  return [situation.name, situation.role].filter(Boolean).join(' — ');
}

function renderSituations(session, locked) {
  const situations = session.situations || [];
  const id = session.professional && session.professional.idNatPs;
  // Before the PIN: the card's situations, once known (read behind the PIN at an opening).
  const several = locked && situations.length > 1;
  show('pin-situation-field', several);
  if (several && changed('pin-situation', [id, situations])) {
    const select = $('pin-situation');
    select.replaceChildren(...situations.map((sit) => el('option', {value: sit.index,
      text: situationLabel(sit)})));
    const mine = situations.find((sit) => sit.structureId === remembered(id));
    select.value = String(mine ? mine.index : situations[0].index);
  }
  // After the PIN, the first time: the opening waits for the choice.
  const choosing = session.state === 'choosing';
  show('situation-choose', choosing);
  show('situation-cancel-row', choosing);
  if (choosing && changed('situation-choices', [id, situations])) {
    const mine = remembered(id);
    $('situation-choices').replaceChildren(...situations.map((sit) => el('li', {},
      el('button', {type: 'button', class: sit.structureId === mine ? 'primary' : '',
        'data-index': sit.index, onclick: () => chooseSituation(sit)},
      situationLabel(sit)))));
  }
}

async function chooseSituation(situation) {
  const session = state.session || {};
  remember(session.professional && session.professional.idNatPs, situation.structureId);
  try {
    await api('POST', '/api/session/situation', {index: situation.index},
      {what: t('Choosing the practice situation'), host: false});
  } catch (error) {
    failed('pin-message', error);
  }
}

async function changeSituation() {
  // Another structure: the session is locked, the PIN form offers the card's situations.
  try {
    await api('DELETE', '/api/session', undefined, {what: t('Locking the session')});
    say('pin-message', t('Choose the practice situation, then enter the PIN.'));
    select('session', true);
  } catch (error) {
    failed('pin-message', error);
  }
}

function beneficiaryItem(person, currentIndex) {
  const name = personName(person);
  const chosen = person.index === currentIndex;
  return el('li', {},
    el('button', {type: 'button', 'aria-current': chosen ? 'true' : null, disabled: chosen,
      'data-index': person.index, onclick: () => choose(person.index)},
    `${name}`, el('span', {class: 'small', text: t(' born {date} — {quality}',
      {date: person.birthDate, quality: person.quality || ''})})));
}

function renderPatient() {
  identity.render();
  const patient = state.patient || {};
  const open = sessionOpen();
  const choosing = open && patient.state === 'choosing';
  const ready = patientReady();
  show('patient-choose', choosing);
  show('patient-ready', ready);
  // A choice waiting (a person of the card, an INS identity) is said by its own list.
  const waiting = choosing || (open && patient.state === 'choosing-identity');
  say('patient-message', ready || waiting ? '' : prerequisite(),
    patient.state === 'error' ? 'error' : 'info');
  const people = patient.beneficiaries || [];
  if (choosing && changed('beneficiaries', [people, patient.reader])) {
    $('beneficiaries').replaceChildren(...people.map((p) => beneficiaryItem(p, null)));
  }
  if (!ready) {
    say('authorize-message', '');
    return;
  }
  const who = patient.patient;
  const dmp = patient.dmp || {};
  $('patient-name').textContent = `${who.firstName || ''} ${who.birthName || ''}`.trim();
  $('patient-birth').textContent = birthDate(who.birthDate);
  $('patient-ins').textContent = who.ins;
  $('patient-dmp').textContent = dmpStatus(dmp.status);
  $('patient-authorization').textContent = authorizationText(dmp.authorization)
    + (dmp.medecinTraitant ? t(' — médecin traitant') : '');
  const mode = patient.accessMode;
  $('patient-mode').textContent = !mode ? t('Normal')
    : breakTheGlass(mode) ? t('Emergency: break the glass')
      : t('Emergency: centre 15 (regulation)');
  $('patient-mode').dataset.kind = mode ? 'error' : '';
  show('patient-create', dmp.status === 'absent');
  const mayAuthorize = dmp.status === 'open' && !mode
    && ['none', 'expired'].includes(dmp.authorization);
  show('authorize-form', mayAuthorize);
  if (!mayAuthorize) $('authorize-confirm').checked = false;
  $('authorize-submit').disabled = !$('authorize-confirm').checked;
  const professional = (state.session || {}).professional || {};
  // Only a doctor can be médecin traitant DMP; the host refuses anyone else anyway.
  confirmForm('traitant', dmp.status === 'open' && !mode && professional.profession === '10'
    && !dmp.medecinTraitant);
  confirmForm('close', dmp.status === 'open' && !mode, () => $('close-reason').value.trim());
  confirmForm('reactivate', dmp.status === 'closed' && !mode);
  const others = people.filter((p) => p.index !== patient.personIndex);
  show('patient-others', people.length > 1 && others.length > 0);
  if (changed('beneficiaries-others', [others, patient.personIndex])) {
    $('beneficiaries-others').replaceChildren(...others.map((p) => beneficiaryItem(p, null)));
  }
}

function documentsShown() {
  const patient = state.patient || {};
  if (filtered && filtered.key === patientKey()) return filtered.list;
  return patient.documents || [];
}

let dossierKey = null;
function renderDossier() {
  const ready = patientReady();
  if (!ready || (filtered && filtered.key !== patientKey())) filtered = null;
  if (dossierKey !== patientKey()) { // another patient: nothing of the last one stays
    dossierKey = patientKey();
    say('document-message', '');
  }
  show('dossier-body', ready);
  const patient = state.patient || {};
  const dmp = patient.dmp || {};
  let hint = prerequisite();
  if (!hint && dmp.status === 'absent') {
    hint = t('This patient has no DMP.');
  } else if (!hint && !patient.accessMode && dmp.authorization !== 'valid'
             && !dmp.medecinTraitant) {
    hint = t("Without the patient's authorization you see only your own documents "
      + '(Patient tab).');
  }
  say('dossier-message', hint);
  // Drawn again when the documents change (a deposit, a replacement): the agent keeps
  // what it fetched in the visit, only a new document is downloaded.
  renderSections(ready, `${patientKey()}|${(patient.documents || []).map((d) => d.uniqueId)}`);
  if (!ready) {
    closeViewer();
    memo.delete('documents');
    documentRows = new Map();
    $('documents-body').replaceChildren();
    return;
  }
  const all = patient.documents || [];
  const list = documentsShown();
  const types = new Map();
  for (const doc of [...all, ...list]) types.set(doc.typeCode, doc.typeLabel || doc.typeCode);
  if (changed('filter-type', [...types])) {
    const select = $('filter-type');
    const chosen = select.value;
    select.replaceChildren(el('option', {value: '', text: t('All')}),
      ...[...types].sort((a, b) => a[1].localeCompare(b[1], LOCALE))
        .map(([code, label]) => el('option', {value: code, text: label})));
    select.value = types.has(chosen) ? chosen : '';
  }
  // A list the host could not refresh says so, and from when it is.
  $('documents-count').textContent = t('{count} document(s)', {count: list.length})
    + (filtered ? t(' — filtered') : '')
    + (patient.stale && patient.fetchedAt ? t(' — list from {time}, not refreshed: {reason}',
      {time: clock(patient.fetchedAt), reason: patient.stale}) : '');
  $('documents-count').dataset.kind = patient.stale ? 'error' : '';
  if (!changed('documents', list)) return;
  const drawn = new Map();
  const rows = list.map((doc) => {
    const key = JSON.stringify(doc);
    const kept = documentRows.get(doc.uniqueId);
    const row = kept && kept.key === key ? kept.row : documentRow(doc);
    drawn.set(doc.uniqueId, {key, row});
    return row;
  });
  documentRows = drawn;
  if (!rows.length) {
    rows.push(el('tr', {}, el('td', {colspan: 6, class: 'empty',
      text: t('No document to show.')})));
  }
  const body = $('documents-body');
  // The same rows in the same order: nothing is moved (a node moved loses its press).
  if (rows.length === body.children.length
      && rows.every((row, index) => body.children[index] === row)) return;
  body.replaceChildren(...rows);
}

function flag(text, kind) {
  return el('span', {class: `flag ${kind}`, text});
}

function documentRow(doc) {
  const flags = el('td', {class: 'flags'});
  if (doc.masked) flags.append(flag(t('Masked'), 'masked'));
  if (doc.invisibleToPatient) flags.append(flag(t('Invisible to the patient'), 'invisible'));
  if (doc.archived) flags.append(flag(t('Archived'), 'archived'));
  if (doc.ownDocument) flags.append(flag(t('My document'), 'own'));
  // New since this professional's last consultation (the ANS's incremental consultation).
  if (doc.new && !doc.ownDocument) flags.append(flag(t('New'), 'new'));
  // The buttons in a box of their own: the cell stays a table cell (its row line aligned).
  const actions = el('div', {class: 'actions'},
    el('button', {type: 'button', class: 'primary',
      'aria-label': t('Open {title}', {title: doc.title}),
      onclick: () => openDocument(doc)}, t('Open')));
  if (doc.ownDocument) {
    // The care-team rules let a professional change only their own documents.
    if (doc.masked) actions.append(action(doc, 'unmask', t('Unmask')));
    else actions.append(action(doc, 'mask', t('Mask')));
    if (!doc.invisibleToPatient) {
      actions.append(action(doc, 'hide-from-patient', t('Invisible to the patient')));
    } else {
      actions.append(action(doc, 'show-to-patient', t('Visible to the patient')));
    }
    if (!doc.archived) {
      actions.append(action(doc, 'archive', t('Archive')));
      actions.append(el('button', {type: 'button',
        'aria-label': `${t('New version')} ${doc.title}`,
        onclick: () => {
          titleEdited = true; // the old title is kept unless the professional changes it
          say('deposit-message', ''); // the last deposit's line is not this one's
          setProgress(0);
          startReplacement(doc, depositKey());
          typeChosen();
        }}, t('New version')));
    }
    actions.append(action(doc, 'delete', t('Delete'), 'danger'));
  }
  return el('tr', {'data-unique-id': doc.uniqueId},
    el('td', {text: localDate(doc.created)}),
    el('td', {text: doc.title}),
    el('td', {text: doc.typeLabel || doc.typeCode}),
    el('td', {text: doc.author}),
    flags, el('td', {class: 'actions-cell'}, actions));
}

// What each change of a document asks before it is made, and what it waits for.
const ACTIONS = {
  mask: () => t('Hide this document from the other professionals?'),
  unmask: () => t('Make this document visible to the professionals?'),
  'hide-from-patient': () => t('Make this document invisible to the patient?'),
  'show-to-patient': () => t('Make this document visible to the patient (announcement '
    + 'consultation done)?'),
  archive: () => t('Archive this document?'),
  delete: () => t('Delete this document from the DMP? Nobody will see it any more.'),
};

function action(doc, name, label, kind = '') {
  return el('button', {type: 'button', class: kind, 'aria-label': `${label} ${doc.title}`,
    onclick: () => changeDocument(doc, name)}, label);
}

// Whose deposit form it is: the session's professional and the patient (a replacement
// chosen under one pair is not offered to another).
function depositKey() {
  const session = state.session || {};
  const patient = (state.patient || {}).patient;
  if (!sessionOpen() || !patient) return null;
  return `${session.professional && session.professional.idNatPs}|${patient.ins}`;
}

function renderDeposit() {
  const hint = prerequisite();
  say('deposit-message-top', hint);
  show('deposit-form', !hint);
  const patient = state.patient || {};
  // The form names the patient it deposits for.
  $('deposit-patient').textContent = !hint && patient.patient
    ? t('{name} — born {date}', {name: personName(patient.patient),
      date: birthDate(patient.patient.birthDate)}) : '';
  const session = state.session || {};
  const key = sessionOpen() ? `${session.professional && session.professional.idNatPs}` : null;
  if (key !== depositTypes.key) {
    depositTypes = {key, list: []};
    tracked.clear(); // the deposits followed here were the last professional's
    $('deposit-type').value = '';
    fillTypes();
    if (key) loadDepositTypes(key);
  }
  identity.holdDeposit($('deposit-form')); // RNIV: held until the identity is qualified
  renderReplacement(depositKey()); // a replacement chosen under another session or patient ends
  renderVaccination({hint, key, patient: $('deposit-patient').textContent});
  identity.holdDeposit($('vaccination-form')); // the vaccination note is a deposit too
  typeChosen();
  followDeposits();
  renderDeposits();
}

function renderCreate() {
  let hint = prerequisite();
  const patient = state.patient || {};
  const dmp = patient.dmp || {};
  if (!hint && dmp.status !== 'absent' && !patient.sheet) {
    hint = dmp.status === 'open' ? t('This patient already has a DMP.')
      : `${dmpStatus(dmp.status)}.`;
  }
  say('create-message-top', hint);
  show('create-form', !hint && dmp.status === 'absent');
  if (!hint) $('create-patient').textContent = personName(patient.patient);
  $('create-submit').disabled = !$('create-consent').checked;
  show('sheet', Boolean(sessionOpen() && patient.sheet));
}

function renderEmergency() {
  let hint = prerequisite();
  const patient = state.patient || {};
  const dmp = patient.dmp || {};
  if (!hint && dmp.status !== 'open') hint = dmpStatus(dmp.status);
  const mode = patient.accessMode;
  say('emergency-message-top', hint, patient.state === 'error' ? 'error' : 'info');
  if (patient.state === 'error' && $('emergency-message').dataset.kind === 'ok') {
    say('emergency-message', '');
  }
  show('emergency-forms', !hint || Boolean(mode && sessionOpen()));
  show('btg-form', !mode);
  // Centre 15 only where the host says this session may use it (a regulation centre).
  const modes = (state.session && state.session.accessModes) || [];
  show('regulation-form', !mode && modes.includes('centre_15'));
  show('emergency-end-panel', Boolean(mode));
  $('emergency-end-panel').textContent = patient.state === 'error'
    ? t('Back to normal access') : t('End the emergency access');
  $('btg-submit').disabled = $('btg-justification').value.trim().length < MIN_JUSTIFICATION;
}

// -- actions -----------------------------------------------------------------------------
async function submitPin(event) {
  event.preventDefault();
  const input = $('pin');
  const pin = input.value; // handed to the API once, never stored
  input.value = '';
  if (!/^[0-9]{4}$/.test(pin)) {
    say('pin-message', t('The PIN has 4 digits.'), 'error');
    input.focus();
    return;
  }
  $('pin-submit').disabled = true;
  say('pin-message', t('Checking the PIN…'));
  const session = state.session || {};
  const id = session.professional && session.professional.idNatPs;
  const body = {pin};
  if (!$('pin-situation-field').hidden) {
    const index = Number($('pin-situation').value);
    body.situation = index;
    const chosen = (session.situations || []).find((sit) => sit.index === index);
    if (chosen) remember(id, chosen.structureId);
  } else if (remembered(id)) {
    body.structureId = remembered(id); // not on the card: the agent asks
  } else {
    body.situation = null; // several situations: the agent asks once it has read them
  }
  try {
    await api('POST', '/api/session', body, {what: t('Opening the DMP session'),
      key: 'session', control: $('pin-submit'), onCancel: cancelOpening,
      // While the agent waits for the structure to be chosen, it waits for the user.
      held: () => Boolean(state && state.session && state.session.state === 'choosing')});
    say('pin-message', t('Session open.'), 'ok');
    if (current === 'session') select(returnTo || 'patient');
  } catch (error) {
    if (error.code === 'wrong-pin') {
      const left = error.extra.triesLeft;
      say('pin-message', t('Wrong PIN: {tries} tries left.', {tries: left}), 'error');
    } else if (error.status === 423 || waitEnded(error)) {
      say('pin-message', ''); // the panel (or the waits' line) says it, once
    } else {
      say('pin-message', error.message, 'error');
    }
    input.focus();
  } finally {
    input.value = '';
    // An opening the agent goes on with (cancelled here, see cancelOpening) keeps it
    // disabled until the agent ends it: its line says so.
    $('pin-submit').disabled = cardState().kind === 'opening';
  }
}

// -- unblocking a blocked CPS with its PUK -----------------------------------------------
// What the agent said of the last PUK typed for a card (by serial): its tries left, or
// blocked. Never the PUK nor the PIN: the inputs are emptied at each submission.
let pukState = {serial: null, triesLeft: null, blocked: false};

function renderUnblock(card) {
  const blocked = card.kind === 'blocked';
  if (!blocked || pukState.serial !== card.serial) {
    pukState = {serial: blocked ? card.serial : null, triesLeft: null, blocked: false};
  }
  const offered = blocked && !pukState.blocked;
  show('unblock-form', offered);
  if (!offered) {
    for (const id of UNBLOCK_INPUTS) $(id).value = '';
    if (!blocked) say('unblock-message', '');
  }
  const left = pukState.triesLeft;
  $('unblock-tries').textContent = typeof left === 'number'
    ? t('{tries} PUK tries left before it blocks', {tries: left}) : '';
}

const UNBLOCK_INPUTS = ['unblock-puk', 'unblock-pin', 'unblock-pin-again'];

async function submitUnblock(event) {
  event.preventDefault();
  // Handed to the API once, never stored: the form is emptied before anything else.
  const [puk, newPin, again] = UNBLOCK_INPUTS.map((id) => $(id).value);
  for (const id of UNBLOCK_INPUTS) $(id).value = '';
  let problem = '';
  if (!/^[0-9]{8}$/.test(puk)) {
    problem = t('The unblocking code (PUK) has 8 digits.');
  } else if (!/^[0-9]{4,8}$/.test(newPin)) {
    problem = t('The new PIN has 4 to 8 digits.');
  } else if (newPin !== again) {
    problem = t('The two entries of the new PIN differ.');
  }
  if (problem) {
    say('unblock-message', problem, 'error');
    $('unblock-puk').focus();
    return;
  }
  const serial = pukState.serial;
  say('unblock-message', t('Unblocking…'));
  try {
    await api('POST', '/api/session/unblock', {puk, newPin}, {what: t('Unblocking the CPS card'),
      host: false, control: $('unblock-submit')});
    say('unblock-message', '');
    say('pin-message', t('CPS card unblocked: enter the new PIN.'), 'ok');
  } catch (error) {
    if (error.code === 'wrong-puk' || error.code === 'puk-blocked') {
      pukState = {serial, triesLeft: error.extra.pukTriesLeft,
        blocked: error.code === 'puk-blocked'};
    }
    // A blocked PUK hides the form: the agent then says it (only the issuer now) where
    // the blocked card is said, once.
    failed('unblock-message', error);
    if (state) render();
  }
}

// "Annuler" on a session opening. The API cancels an opening that waits for the practice
// situation (DELETE /api/session); one talking to the host cannot be cancelled: the page
// stops waiting for it, and the agent's line goes on until the agent ends it.
function cancelOpening() {
  if (state && state.session && state.session.state === 'choosing') cancelChoice();
}

async function cancelChoice() {
  try {
    await api('DELETE', '/api/session', undefined, {what: t('Cancelling the opening'),
      host: false});
  } catch (error) {
    failed('pin-message', error);
  }
}

async function lock() {
  try {
    await api('DELETE', '/api/session', undefined, {what: t('Locking the session'),
      control: $('lock')});
    say('pin-message', t('Session locked.'));
  } catch (error) {
    failed('pin-message', error);
  }
}

async function choose(index) {
  say('patient-message', t('Reading the dossier…'));
  try {
    await api('POST', '/api/patient/select', {index}, {what: t('Reading the dossier'),
      key: 'patient'});
  } catch (error) {
    failed('patient-message', error);
  }
}

function confirmForm(name, visible, ready = () => true) {
  show(`${name}-form`, visible);
  if (!visible) $(`${name}-confirm`).checked = false;
  $(`${name}-submit`).disabled = !($(`${name}-confirm`).checked && ready());
}

// name -> [path, body, what it says when done, what it waits for]
const LIFECYCLE = {
  traitant: ['/api/dmp/medecin-traitant', () => ({confirmed: true}),
    () => t('Médecin traitant DMP recorded.'), () => t('Recording the médecin traitant')],
  close: ['/api/dmp/close', () => ({reason: $('close-reason').value.trim(), patientRequest: true}),
    () => t('DMP closed: kept ten years, can be reactivated.'), () => t('Closing the DMP')],
  reactivate: ['/api/dmp/reactivate', () => ({consent: true}),
    () => t('DMP reactivated.'), () => t('Reactivating the DMP')],
};

async function lifecycle(event, name) {
  event.preventDefault();
  if (!$(`${name}-confirm`).checked) return;
  const [path, body, done, what] = LIFECYCLE[name];
  $(`${name}-submit`).disabled = true;
  try {
    await api('POST', path, body(), {what: what(), control: $(`${name}-submit`)});
    $(`${name}-confirm`).checked = false;
    if (name === 'close') $('close-reason').value = '';
    say('lifecycle-message', done(), 'ok');
  } catch (error) {
    failed('lifecycle-message', error);
  } finally {
    render();
  }
}

async function authorize(event) {
  event.preventDefault();
  if (!$('authorize-confirm').checked) return;
  $('authorize-submit').disabled = true;
  try {
    await api('POST', '/api/authorizations', {confirmed: true},
      {what: t("Recording the patient's authorization"), control: $('authorize-submit')});
    $('authorize-confirm').checked = false;
    say('authorize-message', t('Authorization recorded.'), 'ok');
  } catch (error) {
    failed('authorize-message', error);
  } finally {
    render();
  }
}

function filterQuery() {
  const params = new URLSearchParams();
  const type = $('filter-type').value;
  if (type) params.append('typeCode', type);
  const text = $('filter-q').value.trim();
  if (text) params.set('q', text);
  if ($('filter-since').value) params.set('since', $('filter-since').value);
  if ($('filter-until').value) params.set('until', $('filter-until').value);
  if ($('filter-archived').checked) params.set('archived', 'true');
  if ($('filter-new').checked) params.set('new', 'true');
  return params;
}

let filterRun = 0;
async function applyFilters(event) {
  if (event) event.preventDefault();
  const params = filterQuery();
  const key = patientKey();
  const run = ++filterRun;
  if (![...params.keys()].length) {
    filtered = null;
    render();
    return;
  }
  say('document-message', t('Searching…'));
  $('filter-apply').disabled = true;
  try {
    const list = await api('GET', `/api/documents?${params}`, undefined,
      {what: t('Searching the documents'), control: $('filter-apply')});
    if (run !== filterRun || key !== patientKey()) return; // a newer search or patient
    filtered = {key, list};
    say('document-message', '');
  } catch (error) {
    failed('document-message', error);
  } finally {
    $('filter-apply').disabled = false; // a newer search's result is checked by its run
  }
  render();
}

function resetFilters() {
  // The form's reset runs after this handler: draw once the fields are empty.
  filtered = null;
  filterRun++;
  setTimeout(render, 0);
}

let refilter = null;
function refreshFiltered() {
  if (!filtered) return;
  clearTimeout(refilter);
  refilter = setTimeout(() => applyFilters(), 300);
}

function safeType(header) {
  const type = (header || '').split(';')[0].trim().toLowerCase();
  // A blob: document runs in this page's origin: only types that cannot run script open in
  // the browser, anything else is saved.
  if (type === 'text/plain') return 'text/plain;charset=utf-8';
  return VIEWABLE.has(type) ? type : 'application/octet-stream';
}

// The tab shows the document in a frame under its own title (a blob: URL opened directly
// would be titled by its address); the frame's blob: is allowed by the page's CSP
// (frame-src blob:) and holds PDF or text only.
function showInTab(win, url, type, title) {
  const doc = win.document;
  doc.title = title;
  if (type === 'application/octet-stream') {
    win.location.href = url; // saved, never rendered
    return;
  }
  doc.documentElement.lang = language;
  doc.body.style.margin = '0';
  const frame = doc.createElement('iframe');
  frame.title = title;
  frame.src = url;
  Object.assign(frame.style, {border: '0', display: 'block', width: '100vw',
    height: '100vh'});
  doc.body.replaceChildren(frame);
}

async function openInTab(path, messageId, title, what, host = true) {
  // Opened at the click (a popup opened later would be blocked), filled once fetched.
  const win = window.open('', '_blank');
  if (win) win.document.title = t('{title} — opening…', {title});
  say(messageId, t('Opening…'));
  try {
    const [header, body] = await request('GET', path, {what, host,
      read: async (response) => [response.headers.get('content-type') || '',
        await response.arrayBuffer()]});
    // A level 1 CDA comes here as the PDF or text it wraps (the agent's /view unwraps it).
    const type = safeType(header);
    const blob = new Blob([body], {type});
    const url = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(url), 120000);
    if (win) {
      win.opener = null;
      showInTab(win, url, type, title);
      say(messageId, t('Opened in a new tab.'), 'ok');
    } else {
      const node = $(messageId);
      node.replaceChildren(t('The browser blocked the tab: '),
        el('a', {href: url, target: '_blank', rel: 'opener', text: t('open the document')}));
    }
  } catch (error) {
    if (win) win.close();
    failed(messageId, error);
  }
}

function openDocument(doc) {
  openViewer(doc); // in the Dossier tab's viewer panel (viewer.js)
}

function confirmAction(text) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

// What a change of a document waits for, in words.
const CHANGING = {
  mask: (title) => t('Masking the document “{title}”', {title}),
  unmask: (title) => t('Unmasking the document “{title}”', {title}),
  'hide-from-patient': (title) => t('Hiding the document “{title}” from the patient', {title}),
  'show-to-patient': (title) => t('Showing the document “{title}” to the patient', {title}),
  archive: (title) => t('Archiving the document “{title}”', {title}),
  delete: (title) => t('Deleting the document “{title}”', {title}),
};

async function changeDocument(doc, name) {
  // Busy from the press to the answer, the confirmation included: never a second request.
  const button = pressed;
  busy(button, true);
  try {
    if (!await confirmAction(`${ACTIONS[name]()}\n${t('“{title}”', {title: doc.title})}`)) {
      return;
    }
    await api('POST', `/api/documents/${encodeURIComponent(doc.uniqueId)}/${name}`, undefined,
      {what: CHANGING[name](doc.title)});
    say('document-message', t('Done: “{title}”.', {title: doc.title}), 'ok');
    refreshFiltered();
  } catch (error) {
    failed('document-message', error);
  } finally {
    busy(button, false);
  }
}

async function loadDepositTypes(key) {
  try {
    const list = await api('GET', '/api/deposit-types', undefined,
      {what: t('Reading the document types'), host: false});
    if (depositTypes.key !== key) return;
    depositTypes = {key, list};
    fillTypes();
  } catch (error) {
    failed('deposit-message', error);
  }
}

function fillTypes() {
  // No type is preselected: the professional chooses one (the submit waits for it).
  const select = $('deposit-type');
  const chosen = select.value;
  select.replaceChildren(el('option', {value: '', text: t('— Choose the type —')}),
    ...depositTypes.list.map((type) => el('option', {value: type.code, text: type.label})));
  select.value = depositTypes.list.some((type) => type.code === chosen) ? chosen : '';
  typeChosen();
}

// A CDA document from the practice's software names its own type and title (its header):
// the form does not ask them, and says so.
function cdaChosen() {
  const file = $('deposit-file').files[0];
  return Boolean(file) && fileType(file) === 'text/xml';
}

function typeChosen() {
  const chosen = depositTypes.list.find((type) => type.code === $('deposit-type').value);
  const cda = cdaChosen();
  // Hidden, not disabled: the identity hold (identity.js) owns the controls' disabled state.
  $('deposit-type-field').hidden = cda;
  $('deposit-type').required = !cda; // a hidden required field would block the submit
  $('deposit-title-field').hidden = cda;
  $('deposit-cda-hint').hidden = !cda;
  $('deposit-submit').disabled = !(chosen || cda) || depositing
    || $('deposit-form').dataset.identity === 'held';
  // The title follows the type the professional chose, until they write their own.
  if (!titleEdited) $('deposit-title').value = chosen && !cda ? chosen.label : '';
}

function fileType(file) {
  if (VIEWABLE.has(file.type)) return file.type;
  const name = file.name.toLowerCase();
  if (name.endsWith('.pdf')) return 'application/pdf';
  if (name.endsWith('.txt')) return 'text/plain';
  // A structured CDA R2 from the practice's software (VSM, CR-BIO...): checked by the agent.
  if (name.endsWith('.xml') || file.type === 'text/xml' || file.type === 'application/xml') {
    return 'text/xml';
  }
  return null;
}

function showFile() {
  const file = $('deposit-file').files[0];
  $('deposit-file-name').textContent = file
    ? t('{name} — {size} KiB', {name: file.name, size: Math.ceil(file.size / 1024)}) : '';
  typeChosen();
}

function setProgress(percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  $('deposit-progress').value = value;
  $('deposit-percent').textContent = `${value} %`;
}

function deposit(event) {
  event.preventDefault();
  const file = $('deposit-file').files[0];
  const type = $('deposit-type').value;
  if (!file) {
    say('deposit-message', t('Choose a file.'), 'error');
    return;
  }
  const mime = fileType(file);
  if (!mime) {
    say('deposit-message', t('PDF, text or CDA (XML) files only.'), 'error');
    return;
  }
  if (file.size === 0 || file.size > MAX_UPLOAD) {
    say('deposit-message', file.size ? t('File too large (64 MB at most).')
      : t('Empty file.'), 'error');
    return;
  }
  const cda = mime === 'text/xml'; // its type and title are its header's
  if (!type && !cda) {
    say('deposit-message', t('Choose the type of the document.'), 'error');
    return;
  }
  const title = cda ? '' : $('deposit-title').value.trim();
  const params = new URLSearchParams({masked: String($('deposit-masked').checked),
    invisibleToPatient: String($('deposit-invisible').checked)});
  if (!cda) {
    params.set('typeCode', type);
    params.set('title', title);
  }
  // XMLHttpRequest: fetch() reports no upload progress.
  const xhr = new XMLHttpRequest();
  const replaced = replacing();
  xhr.open('POST', depositPath(params));
  xhr.setRequestHeader('Authorization', `Bearer ${token}`);
  xhr.setRequestHeader('Content-Type', mime);
  xhr.upload.addEventListener('progress', (e) => {
    if (e.lengthComputable) setProgress((100 * e.loaded) / e.total);
  });
  xhr.upload.addEventListener('load', () => setProgress(100));
  // The upload and the signature on this computer; the sending to the host is followed
  // through the outbox's events, never waited for here.
  const wait = beginWait(t('Sending the document to the agent (signature, queueing)'), {
    host: false, timeout: HOST_WAIT, control: $('deposit-submit'), abort: () => xhr.abort()});
  xhr.addEventListener('loadend', () => endWait(wait));
  xhr.addEventListener('abort', () => {
    // Cancelled or past its timeout (said where the waits are); the form is usable again.
    depositing = false;
    typeChosen();
    setProgress(0);
    say('deposit-message', '');
  });
  xhr.addEventListener('load', () => {
    depositing = false;
    typeChosen();
    let answer = {};
    try {
      answer = JSON.parse(xhr.responseText);
    } catch {
      answer = {};
    }
    if (xhr.status === 202) {
      tracked.set(answer.id, {id: answer.id, title: answer.title || title, state: 'pending',
        lastError: '', attempts: 0, seen: false});
      // A replacement asked for here, or one the practice's CDA says it is (the agent
      // found the version it names in the dossier).
      const old = replaced || answer.replaces || null;
      say('deposit-message', old === null
        ? t('“{title}” signed and queued for sending.', {title: answer.title || title})
        : t('New version of “{old}” signed and queued for sending.', {old: old.title}),
      'ok');
      endReplacement();
      $('deposit-form').reset();
      titleEdited = false;
      showFile();
      $('deposit-type').value = ''; // the next document's type is chosen again
      typeChosen();
      checkOutbox();
    } else {
      if (xhr.status === 401 && answer.code === 'bad-token') {
        noToken(pageText('text-bad-token'));
        return;
      }
      say('deposit-message', answer.message || t('Error {status}', {status: xhr.status}),
        'error');
    }
    renderDeposits();
  });
  xhr.addEventListener('error', () => {
    depositing = false;
    typeChosen();
    say('deposit-message', pageText('text-unreachable'), 'error');
  });
  depositing = true;
  $('deposit-submit').disabled = true;
  setProgress(0);
  say('deposit-message', t('Uploading the file…'));
  xhr.send(file);
}

// An item the outbox no longer lists is done; the events may lag behind the deposit's
// reply, so its absence is checked against a fresh read.
function followDeposits() {
  const outbox = (state && state.outbox) || {};
  const items = new Map((outbox.items || []).map((i) => [i.id, i]));
  let missing = false;
  for (const item of tracked.values()) {
    if (item.state === 'done') continue;
    const now = items.get(item.id);
    if (now) {
      Object.assign(item, followed(now));
      if (outbox.sending && outbox.sending.id === item.id) item.state = 'sending';
    } else {
      missing = true;
    }
  }
  if (missing) checkOutbox();
}

let outboxTimer = null;
function checkOutbox() {
  clearTimeout(outboxTimer);
  outboxTimer = setTimeout(async () => {
    try {
      const outbox = await api('GET', '/api/outbox', undefined,
        {what: t('Reading the outbox'), host: false});
      const items = new Map((outbox.items || []).map((i) => [i.id, i]));
      for (const item of tracked.values()) {
        const now = items.get(item.id);
        if (item.state === 'done') continue;
        if (now) Object.assign(item, followed(now));
        else item.state = 'done';
      }
      renderDeposits();
    } catch {
      // the stream reports an unreachable agent
    }
  }, 100);
}

function depositState(item) {
  const text = {pending: () => t('Waiting to be sent'), sending: () => t('Sending…'),
    done: () => t('Deposited'), failed: () => t('Refused')}[item.state];
  return text ? text() : item.state;
}

// Why a deposit waits and when it is tried again: "l'hôte DMP ne répond pas (HTTP 503) —
// nouvel essai à 14:32".
function waitingText(item) {
  if (!item.reasonText || !item.reason) return '';
  let when = '';
  if (item.nextAttempt) {
    const at = new Date(item.nextAttempt);
    const time = at.toLocaleTimeString(LOCALE, {hour: '2-digit', minute: '2-digit'});
    when = at <= new Date() ? t(' — retrying now') : t(' — next try at {time}', {time});
  }
  return item.reasonText + when;
}

function renderDeposits() {
  const outbox = (state && state.outbox) || {};
  const all = new Map([...tracked.values()].map((i) => [i.id, i]));
  for (const item of outbox.items || []) {
    if (!all.has(item.id)) all.set(item.id, item);
  }
  const list = [...all.values()].sort((a, b) => b.id - a.id);
  const others = outbox.others || {};
  const otherCount = (others.pending || 0) + (others.failed || 0);
  if (!changed('deposits', [list, otherCount])) return;
  show('deposits-empty', list.length === 0);
  // Other professionals' deposits (or older ones, queued before the agent recorded whose
  // they are): counted, never listed; the agent sends them all.
  $('deposits-others').textContent = otherCount
    ? t('{count} other deposit(s) queued on this workstation, from other sessions: the agent '
      + 'sends them.', {count: otherCount}) : '';
  $('deposits').replaceChildren(...list.map((item) => {
    const li = el('li', {class: `deposit ${item.state}`, 'data-id': item.id},
      el('strong', {text: item.title || `#${item.id}`}), ' — ',
      el('span', {class: 'deposit-state', text: depositState(item)}));
    if (item.attempts > 1) {
      li.append(el('span', {class: 'small', text: t(' ({count} attempts)',
        {count: item.attempts})}));
    }
    if (item.state === 'pending' && waitingText(item)) {
      li.append(el('p', {class: 'reason', text: waitingText(item)}));
    }
    if (item.state === 'failed') {
      li.append(el('p', {class: 'reason', text: [item.reasonText, item.lastError]
        .filter(Boolean).join(' — ')}),
        el('button', {type: 'button', 'aria-label': t('Retry {title}', {title: item.title}),
          onclick: () => retry(item.id)}, t('Retry')));
    }
    return li;
  }));
}

async function retry(id) {
  try {
    await api('POST', `/api/outbox/${id}/retry`, undefined,
      {what: t('Retrying the deposit'), host: false});
    const item = tracked.get(id);
    if (item) item.state = 'pending';
    say('deposit-message', t('Retry requested.'), 'ok');
    checkOutbox();
  } catch (error) {
    failed('deposit-message', error);
  }
  renderDeposits();
}

async function createDmp(event) {
  event.preventDefault();
  if (!$('create-consent').checked) return;
  $('create-submit').disabled = true;
  say('create-message', t('Creating the DMP…'));
  try {
    const body = {
      consent: true, breakTheGlass: $('create-btg').checked,
      regulationCentre: $('create-regulation').checked,
      emergencySeesMasked: $('create-masked').checked};
    const email = $('create-email').value.trim();
    if (email) body.email = email;  // optional: checked by the agent (bad-email)
    const created = await api('POST', '/api/dmp', body, {what: t('Creating the DMP'),
      control: $('create-submit')});
    say('create-message', t('DMP created — identifier {identifier}.',
      {identifier: created.identifier}), 'ok');
    $('create-form').reset();
    show('sheet', true);
  } catch (error) {
    failed('create-message', error);
  } finally {
    render();
  }
}

const MODE_WAIT = {normal: () => t('Back to normal access'),
  'break-the-glass': () => t('Emergency access (break the glass)'),
  regulation: () => t('Emergency access (centre 15)')};

async function setMode(mode, justification = '') {
  say('emergency-message', t('Opening the access…'));
  try {
    const answer = await api('PUT', '/api/patient/access-mode', {mode, justification}, {
      what: MODE_WAIT[mode](), key: 'patient'}); // the dossier is read again in that mode
    if (answer && answer.state === 'error') {
      // Refused (e.g. the patient refused the regulation centre): the panel's hint says
      // why, once; nothing says the access is open.
      say('emergency-message', '');
    } else {
      say('emergency-message', mode === 'normal' ? t('Emergency access ended.')
        : t('Emergency access open (traced).'), 'ok');
    }
    if (mode !== 'normal') $('btg-justification').value = '';
  } catch (error) {
    failed('emergency-message', error);
  }
  render();
}

async function loadDiagnostics() {
  say('diagnostics-message', t('Checking…'));
  try {
    const checks = await api('GET', '/api/diagnostics', undefined,
      {what: t('Checking the workstation (the DMP host included)'),
        control: $('diagnostics-run')});
    const icons = {ok: ['✔', t('OK')], warning: ['⚠', t('Warning')],
      problem: ['✖', t('Problem')]};
    $('diagnostics-body').replaceChildren(...checks.map((c) => {
      const [icon, label] = icons[c.status] || ['?', c.status];
      return el('tr', {class: `check-${c.status}`},
        el('th', {scope: 'row', text: c.title || c.name}),
        el('td', {class: 'status'}, el('span', {class: 'icon', 'aria-hidden': 'true',
          text: icon}), ` ${label}`),
        el('td', {text: c.detail}), el('td', {text: c.fix}));
    }));
    const bad = checks.filter((c) => c.status !== 'ok').length;
    say('diagnostics-message', bad ? t('{count} point(s) to fix', {count: bad})
      : t('All good.'), bad ? 'error' : 'ok');
  } catch (error) {
    failed('diagnostics-message', error);
  }
}

async function loadSettings() {
  try {
    const settings = await api('GET', '/api/settings', undefined,
      {what: t('Reading the settings'), host: false});
    $('settings-file').textContent = settings.file || t('(no file: the defaults)');
    $('settings-system').hidden = !settings.systemFile;
    $('settings-system-file').textContent = settings.systemFile || '';
    $('settings-body').replaceChildren(...settings.keys.map((k) => el('tr', {},
      el('th', {scope: 'row', class: 'mono',
        text: k.locked ? `🔒 ${k.key}` : k.key,
        title: k.locked ? t('Set by the administrator') : null}),
      el('td', {class: 'mono', text: JSON.stringify(k.value)}),
      el('td', {text: k.doc}))));
    if (settings.ignored.length) {
      say('settings-message', t('Set by the administrator, your value is ignored: {keys}',
        {keys: settings.ignored.join(', ')}), 'error');
    } else {
      say('settings-message', '');
    }
  } catch (error) {
    failed('settings-message', error);
  }
}

// -- start -------------------------------------------------------------------------------
function wire() {
  identity = identityView({t, api, el, say, failed, changed, birthDate, localDate, sessionOpen,
    render, select, state: () => state});
  for (const tab of tabs()) {
    tab.addEventListener('click', () => select(tab.dataset.section));
    tab.addEventListener('keydown', onTabKey);
  }
  $('pin-form').addEventListener('submit', submitPin);
  $('unblock-form').addEventListener('submit', submitUnblock);
  $('lock').addEventListener('click', lock);
  $('authorize-confirm').addEventListener('change', () => {
    $('authorize-submit').disabled = !$('authorize-confirm').checked;
  });
  $('authorize-form').addEventListener('submit', authorize);
  for (const name of Object.keys(LIFECYCLE)) {
    $(`${name}-form`).addEventListener('submit', (event) => lifecycle(event, name));
    $(`${name}-confirm`).addEventListener('change', render);
  }
  $('close-reason').addEventListener('input', render);
  $('goto-create').addEventListener('click', () => select('create', true));
  $('filters').addEventListener('submit', applyFilters);
  $('filters').addEventListener('reset', resetFilters);
  $('deposit-form').addEventListener('submit', deposit);
  $('deposit-type').addEventListener('change', typeChosen);
  $('deposit-title').addEventListener('input', () => {
    titleEdited = $('deposit-title').value.trim() !== '';
  });
  $('deposit-file').addEventListener('change', showFile);
  const zone = $('dropzone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) {
      $('deposit-file').files = e.dataTransfer.files;
      showFile();
    }
  });
  $('create-consent').addEventListener('change', () => {
    $('create-submit').disabled = !$('create-consent').checked;
  });
  $('create-form').addEventListener('submit', createDmp);
  $('sheet-open').addEventListener('click', () => openInTab('/api/dmp/sheet', 'create-message',
    t("Patient's sheet — {name}", {name: personName((state.patient || {}).patient)}),
    t("Opening the patient's sheet"), false));
  $('change-situation').addEventListener('click', changeSituation);
  $('situation-cancel').addEventListener('click', cancelChoice);
  $('btg-justification').addEventListener('input', () => {
    $('btg-submit').disabled = $('btg-justification').value.trim().length < MIN_JUSTIFICATION;
  });
  $('btg-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const why = $('btg-justification').value.trim();
    if (why.length >= MIN_JUSTIFICATION) setMode('break-the-glass', why);
  });
  $('regulation-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setMode('regulation');
  });
  $('emergency-end').addEventListener('click', () => setMode('normal'));
  $('emergency-end-panel').addEventListener('click', () => setMode('normal'));
  $('diagnostics-run').addEventListener('click', loadDiagnostics);
  initViewer({request, t, say, failed, openInTab});
  initSections({api, t, el, say, failed, openViewer, localDay: (iso) => (iso
    ? new Date(iso.length === 10 ? `${iso}T12:00:00` : iso).toLocaleDateString(LOCALE) : '')});
  window.addEventListener('hashchange', () => {
    const section = readFragment();
    if (token && !state) start(section);
    else if (section) select(section);
  });
}

let following = false;
async function start(section) {
  if (!token) {
    noToken();
    return;
  }
  show('no-token', false);
  await loadMessages();
  try {
    state = await api('GET', '/api/status', undefined,
      {what: t("Reading the agent's state"), host: false});
    setOffline(false);
  } catch (error) {
    if (!token) return; // the token was refused
    state = null;
  }
  select(section || (state && state.session.state === 'open' ? 'patient' : 'session'));
  if (!following) {
    following = true;
    followEvents();
  }
}

// Patient events redraw the documents; a filtered list is asked again.
const previousPatient = {key: null, docs: null};
function watchPatient() {
  if (!state) return;
  const docs = JSON.stringify((state.patient || {}).documents || []);
  const key = patientKey();
  if (key === previousPatient.key && docs !== previousPatient.docs) refreshFiltered();
  previousPatient.key = key;
  previousPatient.docs = docs;
}

wire();
wireEcps({api, t, failed, say});
wireVaccination({api, t, failed, say});
wireReplacement({t, select, cancelled: () => {
  titleEdited = false;
  showFile();
  typeChosen();
}});
start(readFragment());
