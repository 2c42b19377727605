// The agent's page: a view over the local API (docs/agent-page.md, docs/agent-local-api.md).
// No framework and no build step. The page holds no data of its own: everything comes from
// the API with the token the tray or `dmp-agent page` put in the URL fragment. Every text
// from the API goes in through textContent, never as HTML.

const TOKEN_KEY = 'dmp-agent-token';
// The practice situation last chosen per card: idNat_PS -> structure id (this browser).
const SITUATIONS_KEY = 'dmp-agent-situations';
const SECTIONS = ['session', 'patient', 'dossier', 'deposit', 'create', 'emergency',
  'diagnostics', 'settings'];
const NEEDS_SESSION = new Set(['patient', 'dossier', 'deposit', 'create', 'emergency']);
const MAX_UPLOAD = 64 * 1024 * 1024; // the agent's and the host's limit per document
const MIN_JUSTIFICATION = 10;
const VIEWABLE = new Set(['application/pdf', 'text/plain']);
const PROFESSIONS = {
  10: 'Médecin', 21: 'Pharmacien', 28: 'Opticien-lunetier', 40: 'Chirurgien-dentiste',
  50: 'Sage-femme', 60: 'Infirmier', 70: 'Masseur-kinésithérapeute', 92: 'Orthoptiste',
};

const $ = (id) => document.getElementById(id);

let token = null;
let state = null; // the last snapshot (GET /api/status, then kept current by the events)
let current = null; // the selected section
let returnTo = null; // the last section that needs a session: shown once it is open
let filtered = null; // {key, list}: the result of GET /api/documents for the filters
let depositTypes = {key: null, list: []};
let titleEdited = false;
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

function frenchDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString('fr-FR', {dateStyle: 'short', timeStyle: 'short'});
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
  return PROFESSIONS[code] || (code ? `profession ${code}` : '');
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
  const wait = beginWait(options.what || 'Réponse de l\'agent', {
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
      throw new ApiError(0, 'unreachable', 'Agent injoignable / the agent cannot be reached');
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
  }
}

async function failure(response) {
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    answer = {};
  }
  const {code = 'error', message = `Erreur ${response.status} / error`, ...extra} = answer;
  if (response.status === 401 && code === 'bad-token') {
    noToken('Le jeton a été refusé : rouvrez la page depuis l\'icône de l\'agent. '
      + '/ The key was refused: open the page again from the agent.');
  }
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
    return `Annulé : ${wait.what} (l'agent peut terminer l'opération en arrière-plan) `
      + '/ cancelled';
  }
  const seconds = Math.round(wait.timeout / 1000);
  return wait.host
    ? `L'hôte DMP ne répond pas depuis ${seconds} s : vérifiez la connexion, ou réessayez `
      + `(${wait.what}). / The DMP host does not answer.`
    : `L'agent ne répond pas depuis ${seconds} s : vérifiez qu'il tourne, ou réessayez `
      + `(${wait.what}). / The agent does not answer.`;
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
    work.push({key: 'session', what: 'Ouverture de la session DMP'});
  }
  if (sessionOpen() && state.patient && state.patient.state === 'loading') {
    work.push({key: 'patient', what: 'Lecture du dossier'});
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
      ? `L'hôte DMP ne répond pas depuis ${seconds} s : vérifiez la connexion (${wait.what})`
      : `${wait.host ? 'En attente de l\'hôte DMP' : 'En attente de l\'agent'} : ${wait.what}…`;
    const what = line.querySelector('.wait-what');
    if (what.textContent !== text) what.textContent = text;
    line.dataset.kind = late ? 'error' : '';
    const since = late ? '' : ` — depuis ${seconds} s`;
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
    el('span', {class: 'wait-since', 'aria-live': 'off'}),
    el('span', {class: 'en', lang: 'en',
      text: wait.host ? 'waiting for the DMP host' : 'waiting for the agent'}));
  if (wait.wait) {
    line.append(el('button', {type: 'button', class: 'wait-cancel',
      'aria-label': `Annuler : ${wait.what}`, onclick: () => stopWait(wait.wait, 'cancelled')},
    'Annuler ', el('span', {class: 'en', lang: 'en', text: 'cancel'})));
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
        {what: 'Lecture de l\'état de l\'agent', host: false});
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
  $('offline-detail').textContent = retryIn === null ? 'nouvel essai bientôt'
    : `nouvel essai dans ${String(retryIn).replace('.', ',')} s`;
  if (token) {
    $('connection').textContent = offline ? 'Agent injoignable / unreachable'
      : `Connecté à l'agent${state && state.version ? ` ${state.version}` : ''} / connected`;
    $('connection').dataset.kind = offline ? 'error' : 'ok';
  }
}

function notice(data) {
  // A blocked CPS is said once, where the session is (the panel and the status bar).
  if (/^Carte CPS bloquée/.test(data.title || '')) return;
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
    $('emergency-title').textContent = btg ? 'ACCÈS EN URGENCE (BRIS DE GLACE)'
      : 'ACCÈS EN URGENCE — CENTRE 15 (RÉGULATION)';
    show('emergency-why', Boolean(mode.justification));
    $('emergency-justification').textContent = mode.justification || '';
  }
  show('problem-banner', Boolean(state.problem));
  $('problem-text').textContent = state.problem || '';
  renderStatusBar();
  renderSession();
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
    return status === 'none' ? 'vide / empty' : (slot.message || status);
  }
  if (status === 'reader-error') return `lecteur en erreur / reader error ${slot.message || ''}`;
  const kind = slot.kind === 'cps' ? 'CPS' : slot.kind === 'vitale' ? 'Vitale' : 'carte';
  if (status === 'blocked') return `${kind} bloquée / blocked`;
  if (status === 'expired') return `${kind} expirée — à renouveler / expired`;
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
      text: (cps && cps.status === 'blocked' && cps.message) || session.error || BLOCKED_TEXT};
  }
  if (cps && cps.status === 'expired') {
    return {kind: 'expired', who, text: cps.message || session.error || EXPIRED_TEXT};
  }
  if (s === 'locked') return {kind: 'locked', who};
  if (session.error) return {kind: 'error', who, text: session.error};
  return {kind: 'none', who};
}

const BLOCKED_TEXT = 'Carte CPS bloquée : débloquez-la ci-dessous avec son code de déblocage '
  + '(PUK) et un nouveau code porteur. Sans ce code, demandez son déblocage ou son remplacement '
  + 'à l\'émetteur de la carte (ANS). / The CPS is blocked: unblock it below with its PUK; '
  + 'without it, ask its issuer.';
const EXPIRED_TEXT = 'Carte CPS expirée : faites-la renouveler auprès de l\'émetteur des '
  + 'cartes CPS (ANS). / The CPS expired: have it renewed.';

function renderStatusBar() {
  const slots = (state.cards && state.cards.slots) || [];
  if (changed('sb-readers', [state.cards && state.cards.service, slots])) {
    const list = $('sb-readers');
    list.replaceChildren();
    if (state.cards && state.cards.service === 'down') {
      list.append(el('li', {class: 'bad', text: 'Service carte arrêté / smart-card service down'}));
    } else if (!slots.length) {
      list.append(el('li', {text: 'Aucun lecteur / no reader'}));
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
  const sessionText = {
    none: 'Aucune carte CPS / no CPS card',
    locked: `Verrouillée — code porteur attendu / locked${who ? ` (${who})` : ''}`,
    opening: 'Ouverture… / opening',
    choosing: 'Choix de la structure / choose the practice situation',
    blocked: `CPS bloquée — voir l'onglet Session / blocked${who ? ` (${who})` : ''}`,
    expired: `CPS expirée — à renouveler / expired${who ? ` (${who})` : ''}`,
    error: card.text || '',
    open: `Ouverte / open — ${who}`,
  }[card.kind] || '';
  $('sb-session').textContent = sessionText;
  $('sb-session').dataset.state = card.kind;
  // The structure the session works for (the practice situation chosen at the opening).
  $('sb-structure').textContent = card.kind === 'open' && session.situation
    ? `Structure : ${session.situation.name}` : '';
  const patient = state.patient || {};
  let patientText = {
    none: 'Aucun / none',
    choosing: 'Choix de la personne / choose the person',
    loading: 'Lecture du dossier… / loading',
    error: patient.error || 'Erreur / error',
  }[patient.state] || '';
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
    held ? `${held.files} fichier(s) en quarantaine / file(s) in quarantine: ${held.path} `
      + '(dmp-agent doctor)' : '',
    outbox.throttle ? outbox.throttle.message : ''].filter(Boolean);
  $('sb-outbox').textContent = `${outbox.pending || 0} en attente, ${outbox.failed || 0} `
    + `refusé(s) / pending, refused${outbox.sending ? ' — envoi en cours / sending' : ''}`
    + notes.map((note) => ` — ${note}`).join('');
  $('sb-outbox').dataset.kind = outbox.failed || outbox.problem ? 'error' : '';
  renderHost();
}

// The host as the agent's last calls saw it (one source: state.host), with what to do.
function renderHost() {
  const host = state.host || {state: 'unknown'};
  const text = {
    unknown: 'Pas encore contacté / not contacted yet',
    reachable: 'Joignable / reachable',
    slow: host.reason,
    unreachable: `${host.reason} — depuis ${clock(host.since)} / since ${clock(host.since)}`,
    certificate: host.reason,
  }[host.state] || host.state;
  $('sb-host').textContent = text;
  $('sb-host').dataset.kind = ['unreachable', 'certificate'].includes(host.state) ? 'error'
    : '';
  $('sb-host-fix').textContent = host.fix || '';
  $('sb-host-fix').hidden = !host.fix;
}

function clock(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString('fr-FR', {hour: '2-digit', minute: '2-digit'});
}

function breakTheGlass(mode) {
  // The policies' mode code (bris_de_glace / centre_15), whatever its case.
  return String(mode.code || '').toLowerCase() === 'bris_de_glace';
}

function dmpStatus(status) {
  return {open: 'DMP ouvert / open', closed: 'DMP fermé / closed',
    absent: 'pas de DMP / no DMP'}[status] || (status || '');
}

function authorizationText(value) {
  return {valid: 'Valide / valid', none: 'Aucune / none', expired: 'Expirée / expired',
    forbidden: 'Refusée : le patient vous a bloqué / blocked by the patient'}[value]
    || (value || '');
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
      return `${card.kind === 'blocked' ? 'Carte CPS bloquée' : 'Carte CPS expirée'} : `
        + 'voir l\'onglet Session. / See the Session tab.';
    }
    return 'Ouvrez d\'abord la session : carte CPS et code porteur (onglet Session). '
      + '/ Open the session first (CPS and PIN).';
  }
  const patient = state.patient || {};
  if (patient.state === 'none') {
    return 'Insérez la carte Vitale du patient. / Insert the patient\'s Vitale card.';
  }
  if (patient.state === 'choosing') {
    return 'Choisissez la personne sur la carte Vitale (onglet Patient). '
      + '/ Choose the person on the card.';
  }
  if (patient.state === 'loading') return 'Lecture du dossier… / loading the dossier…';
  if (patient.state === 'error') return patient.error || 'Erreur / error';
  return '';
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
    ? `— ${tries} essai(s) restant(s) / tries left` : '';
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
      + (who.testCard ? ' — carte de test / test card' : '');
    $('session-structure').textContent = session.situation
      ? `${session.situation.name} (${session.situation.structureId})` : '';
    $('session-until').textContent = frenchDate(session.notAfter);
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
      {what: 'Choix de la structure', host: false});
  } catch (error) {
    failed('pin-message', error);
  }
}

async function changeSituation() {
  // Another structure: the session is locked, the PIN form offers the card's situations.
  try {
    await api('DELETE', '/api/session', undefined, {what: 'Verrouillage de la session'});
    say('pin-message', 'Choisissez la structure, puis saisissez le code porteur. / Choose '
      + 'the practice situation, then enter the PIN.');
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
    `${name}`, el('span', {class: 'small', text: ` né(e) le ${person.birthDate} — `
      + `${person.quality || ''}`})));
}

function renderPatient() {
  const patient = state.patient || {};
  const open = sessionOpen();
  const choosing = open && patient.state === 'choosing';
  const ready = patientReady();
  show('patient-choose', choosing);
  show('patient-ready', ready);
  say('patient-message', ready || choosing ? '' : prerequisite(),
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
    + (dmp.medecinTraitant ? ' — médecin traitant / attending doctor' : '');
  const mode = patient.accessMode;
  $('patient-mode').textContent = !mode ? 'Normal'
    : breakTheGlass(mode) ? 'Urgence : bris de glace / break-the-glass'
      : 'Urgence : centre 15 (régulation) / regulation centre';
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
    hint = 'Ce patient n\'a pas de DMP. / This patient has no DMP.';
  } else if (!hint && !patient.accessMode && dmp.authorization !== 'valid'
             && !dmp.medecinTraitant) {
    hint = 'Sans l\'autorisation du patient vous ne voyez que vos propres documents '
      + '(onglet Patient). / Without the patient\'s authorization you see only your own '
      + 'documents.';
  }
  say('dossier-message', hint);
  if (!ready) {
    memo.delete('documents');
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
    select.replaceChildren(el('option', {value: '', text: 'Tous / all'}),
      ...[...types].sort((a, b) => a[1].localeCompare(b[1], 'fr'))
        .map(([code, label]) => el('option', {value: code, text: label})));
    select.value = types.has(chosen) ? chosen : '';
  }
  // A list the host could not refresh says so, and from when it is.
  $('documents-count').textContent = `${list.length} document(s)`
    + (filtered ? ' — filtrés / filtered' : '')
    + (patient.stale && patient.fetchedAt ? ` — liste du ${clock(patient.fetchedAt)}, non `
      + `actualisée / list from ${clock(patient.fetchedAt)}, not refreshed: ${patient.stale}`
      : '');
  $('documents-count').dataset.kind = patient.stale ? 'error' : '';
  if (!changed('documents', list)) return;
  const rows = list.map((doc) => documentRow(doc));
  if (!rows.length) {
    rows.push(el('tr', {}, el('td', {colspan: 6, class: 'empty',
      text: 'Aucun document visible. / No document to show.'})));
  }
  $('documents-body').replaceChildren(...rows);
}

function flag(text, kind) {
  return el('span', {class: `flag ${kind}`, text});
}

function documentRow(doc) {
  const flags = el('td', {class: 'flags'});
  if (doc.masked) flags.append(flag('Masqué / masked', 'masked'));
  if (doc.invisibleToPatient) flags.append(flag('Invisible patient', 'invisible'));
  if (doc.archived) flags.append(flag('Archivé / archived', 'archived'));
  if (doc.ownDocument) flags.append(flag('Mon document / mine', 'own'));
  // New since this professional's last consultation (the ANS's incremental consultation).
  if (doc.new && !doc.ownDocument) flags.append(flag('Nouveau / new', 'new'));
  // The buttons in a box of their own: the cell stays a table cell (its row line aligned).
  const actions = el('div', {class: 'actions'},
    el('button', {type: 'button', class: 'primary', 'aria-label': `Ouvrir ${doc.title}`,
      onclick: () => openDocument(doc)}, 'Ouvrir'));
  if (doc.ownDocument) {
    // The care-team rules let a professional change only their own documents.
    if (doc.masked) actions.append(action(doc, 'unmask', 'Démasquer'));
    else actions.append(action(doc, 'mask', 'Masquer'));
    if (!doc.invisibleToPatient) {
      actions.append(action(doc, 'hide-from-patient', 'Invisible patient'));
    } else {
      actions.append(action(doc, 'show-to-patient', 'Visible patient'));
    }
    if (!doc.archived) actions.append(action(doc, 'archive', 'Archiver'));
    actions.append(action(doc, 'delete', 'Supprimer', 'danger'));
  }
  return el('tr', {'data-unique-id': doc.uniqueId},
    el('td', {text: frenchDate(doc.created)}),
    el('td', {text: doc.title}),
    el('td', {text: doc.typeLabel || doc.typeCode}),
    el('td', {text: doc.author}),
    flags, el('td', {class: 'actions-cell'}, actions));
}

const ACTIONS = {
  mask: 'Masquer ce document aux autres professionnels ? / Hide it from other professionals?',
  unmask: 'Rendre ce document visible aux professionnels ? / Show it to professionals?',
  'hide-from-patient': 'Rendre ce document invisible pour le patient ? / Hide it from the '
    + 'patient?',
  'show-to-patient': 'Rendre ce document visible pour le patient (consultation d\'annonce '
    + 'faite) ? / Show it to the patient?',
  archive: 'Archiver ce document ? / Archive this document?',
  delete: 'Supprimer ce document du DMP ? Personne ne le verra plus. / Delete this document? '
    + 'Nobody will see it any more.',
};

function action(doc, name, label, kind = '') {
  return el('button', {type: 'button', class: kind, 'aria-label': `${label} ${doc.title}`,
    onclick: () => changeDocument(doc, name)}, label);
}

function renderDeposit() {
  const hint = prerequisite();
  say('deposit-message-top', hint);
  show('deposit-form', !hint);
  const patient = state.patient || {};
  // The form names the patient it deposits for.
  $('deposit-patient').textContent = !hint && patient.patient
    ? `${personName(patient.patient)} — né(e) le ${birthDate(patient.patient.birthDate)}` : '';
  const session = state.session || {};
  const key = sessionOpen() ? `${session.professional && session.professional.idNatPs}` : null;
  if (key !== depositTypes.key) {
    depositTypes = {key, list: []};
    tracked.clear(); // the deposits followed here were the last professional's
    $('deposit-type').value = '';
    fillTypes();
    if (key) loadDepositTypes(key);
  }
  followDeposits();
  renderDeposits();
}

function renderCreate() {
  let hint = prerequisite();
  const patient = state.patient || {};
  const dmp = patient.dmp || {};
  if (!hint && dmp.status !== 'absent' && !patient.sheet) {
    hint = dmp.status === 'open' ? 'Ce patient a déjà un DMP. / This patient already has a DMP.'
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
  $('emergency-end-panel').firstChild.textContent = patient.state === 'error'
    ? 'Revenir à l\'accès normal ' : 'Terminer l\'accès d\'urgence ';
  $('btg-submit').disabled = $('btg-justification').value.trim().length < MIN_JUSTIFICATION;
}

// -- actions -----------------------------------------------------------------------------
async function submitPin(event) {
  event.preventDefault();
  const input = $('pin');
  const pin = input.value; // handed to the API once, never stored
  input.value = '';
  if (!/^[0-9]{4}$/.test(pin)) {
    say('pin-message', 'Le code porteur a 4 chiffres. / The PIN has 4 digits.', 'error');
    input.focus();
    return;
  }
  $('pin-submit').disabled = true;
  say('pin-message', 'Vérification du code… / checking the PIN…');
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
    await api('POST', '/api/session', body, {what: 'Ouverture de la session DMP',
      key: 'session', control: $('pin-submit'), onCancel: cancelOpening,
      // While the agent waits for the structure to be chosen, it waits for the user.
      held: () => Boolean(state && state.session && state.session.state === 'choosing')});
    say('pin-message', 'Session ouverte. / Session open.', 'ok');
    if (current === 'session') select(returnTo || 'patient');
  } catch (error) {
    if (error.code === 'wrong-pin') {
      const left = error.extra.triesLeft;
      say('pin-message', `Code porteur erroné : ${left} essai(s) restant(s). / Wrong PIN: `
        + `${left} tries left.`, 'error');
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
    ? `${left} essai(s) de code PUK restant(s) avant son blocage / PUK tries left: ${left}` : '';
}

const UNBLOCK_INPUTS = ['unblock-puk', 'unblock-pin', 'unblock-pin-again'];

async function submitUnblock(event) {
  event.preventDefault();
  // Handed to the API once, never stored: the form is emptied before anything else.
  const [puk, newPin, again] = UNBLOCK_INPUTS.map((id) => $(id).value);
  for (const id of UNBLOCK_INPUTS) $(id).value = '';
  let problem = '';
  if (!/^[0-9]{8}$/.test(puk)) {
    problem = 'Le code de déblocage (PUK) a 8 chiffres. / The PUK has 8 digits.';
  } else if (!/^[0-9]{4,8}$/.test(newPin)) {
    problem = 'Le nouveau code PIN a 4 à 8 chiffres. / The new PIN has 4 to 8 digits.';
  } else if (newPin !== again) {
    problem = 'Les deux saisies du nouveau code PIN diffèrent. / The two new PINs differ.';
  }
  if (problem) {
    say('unblock-message', problem, 'error');
    $('unblock-puk').focus();
    return;
  }
  const serial = pukState.serial;
  say('unblock-message', 'Déblocage… / unblocking…');
  try {
    await api('POST', '/api/session/unblock', {puk, newPin}, {what: 'Déblocage de la carte CPS',
      host: false, control: $('unblock-submit')});
    say('unblock-message', '');
    say('pin-message', 'Carte CPS débloquée : saisissez le nouveau code porteur. / CPS '
      + 'unblocked: type the new PIN.', 'ok');
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
    await api('DELETE', '/api/session', undefined, {what: 'Annulation de l\'ouverture',
      host: false});
  } catch (error) {
    failed('pin-message', error);
  }
}

async function lock() {
  try {
    await api('DELETE', '/api/session', undefined, {what: 'Verrouillage de la session',
      control: $('lock')});
    say('pin-message', 'Session verrouillée. / Session locked.');
  } catch (error) {
    failed('pin-message', error);
  }
}

async function choose(index) {
  say('patient-message', 'Lecture du dossier… / loading…');
  try {
    await api('POST', '/api/patient/select', {index}, {what: 'Lecture du dossier',
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

const LIFECYCLE = {
  traitant: ['/api/dmp/medecin-traitant', () => ({confirmed: true}),
    'Médecin traitant DMP enregistré. / Recorded as médecin traitant.',
    'Enregistrement du médecin traitant'],
  close: ['/api/dmp/close', () => ({reason: $('close-reason').value.trim(), patientRequest: true}),
    'DMP fermé : conservé dix ans, réactivable. / DMP closed: kept ten years.',
    'Fermeture du DMP'],
  reactivate: ['/api/dmp/reactivate', () => ({consent: true}),
    'DMP réactivé. / DMP reactivated.', 'Réactivation du DMP'],
};

async function lifecycle(event, name) {
  event.preventDefault();
  if (!$(`${name}-confirm`).checked) return;
  const [path, body, done, what] = LIFECYCLE[name];
  $(`${name}-submit`).disabled = true;
  try {
    await api('POST', path, body(), {what, control: $(`${name}-submit`)});
    $(`${name}-confirm`).checked = false;
    if (name === 'close') $('close-reason').value = '';
    say('lifecycle-message', done, 'ok');
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
      {what: 'Enregistrement de l\'autorisation du patient', control: $('authorize-submit')});
    $('authorize-confirm').checked = false;
    say('authorize-message', 'Autorisation enregistrée. / Authorization recorded.', 'ok');
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
  say('document-message', 'Recherche… / searching…');
  $('filter-apply').disabled = true;
  try {
    const list = await api('GET', `/api/documents?${params}`, undefined,
      {what: 'Recherche des documents', control: $('filter-apply')});
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
  doc.documentElement.lang = 'fr';
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
  if (win) win.document.title = `${title} — ouverture… / opening…`;
  say(messageId, 'Ouverture… / opening…');
  try {
    const [type, bytes] = await request('GET', path, {what, host,
      read: async (response) => [safeType(response.headers.get('content-type')),
        await response.arrayBuffer()]});
    const blob = new Blob([bytes], {type});
    const url = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(url), 120000);
    if (win) {
      win.opener = null;
      showInTab(win, url, type, title);
      say(messageId, 'Ouvert dans un nouvel onglet. / Opened in a new tab.', 'ok');
    } else {
      const node = $(messageId);
      node.replaceChildren('Le navigateur a bloqué l\'onglet : ',
        el('a', {href: url, target: '_blank', rel: 'opener', text: 'ouvrir le document'}),
        ' / the browser blocked the tab.');
    }
  } catch (error) {
    if (win) win.close();
    failed(messageId, error);
  }
}

function openDocument(doc) {
  const title = doc.title || doc.typeLabel || 'Document';
  openInTab(`/api/documents/${encodeURIComponent(doc.uniqueId)}/content`, 'document-message',
    title, `Ouverture du document « ${title} »`);
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
const CHANGING = {mask: 'Masquage', unmask: 'Démasquage',
  'hide-from-patient': 'Masquage au patient', 'show-to-patient': 'Affichage au patient',
  archive: 'Archivage', delete: 'Suppression'};

async function changeDocument(doc, name) {
  if (!await confirmAction(`${ACTIONS[name]}\n« ${doc.title} »`)) return;
  try {
    await api('POST', `/api/documents/${encodeURIComponent(doc.uniqueId)}/${name}`, undefined,
      {what: `${CHANGING[name]} du document « ${doc.title} »`});
    say('document-message', `Fait : « ${doc.title} ». / Done.`, 'ok');
    refreshFiltered();
  } catch (error) {
    failed('document-message', error);
  }
}

async function loadDepositTypes(key) {
  try {
    const list = await api('GET', '/api/deposit-types', undefined,
      {what: 'Lecture des types de documents', host: false});
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
  select.replaceChildren(el('option', {value: '', text: '— Choisissez le type / choose the '
    + 'type —'}), ...depositTypes.list.map((t) => el('option', {value: t.code,
    text: t.label})));
  select.value = depositTypes.list.some((t) => t.code === chosen) ? chosen : '';
  typeChosen();
}

function typeChosen() {
  const chosen = depositTypes.list.find((t) => t.code === $('deposit-type').value);
  $('deposit-submit').disabled = !chosen || depositing;
  // The title follows the type the professional chose, until they write their own.
  if (!titleEdited) $('deposit-title').value = chosen ? chosen.label : '';
}

function fileType(file) {
  if (VIEWABLE.has(file.type)) return file.type;
  const name = file.name.toLowerCase();
  if (name.endsWith('.pdf')) return 'application/pdf';
  if (name.endsWith('.txt')) return 'text/plain';
  return null;
}

function showFile() {
  const file = $('deposit-file').files[0];
  $('deposit-file-name').textContent = file
    ? `${file.name} — ${Math.ceil(file.size / 1024)} Kio` : '';
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
    say('deposit-message', 'Choisissez un fichier. / Choose a file.', 'error');
    return;
  }
  const mime = fileType(file);
  if (!mime) {
    say('deposit-message', 'PDF ou texte seulement. / PDF or text files only.', 'error');
    return;
  }
  if (file.size === 0 || file.size > MAX_UPLOAD) {
    say('deposit-message', file.size ? 'Fichier trop grand (64 Mo au plus). / File too large.'
      : 'Fichier vide. / Empty file.', 'error');
    return;
  }
  if (!type) {
    say('deposit-message', 'Choisissez le type du document. / Choose the type.', 'error');
    return;
  }
  const title = $('deposit-title').value.trim();
  const params = new URLSearchParams({typeCode: type, title,
    masked: String($('deposit-masked').checked),
    invisibleToPatient: String($('deposit-invisible').checked)});
  // XMLHttpRequest: fetch() reports no upload progress.
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/api/deposits?${params}`);
  xhr.setRequestHeader('Authorization', `Bearer ${token}`);
  xhr.setRequestHeader('Content-Type', mime);
  xhr.upload.addEventListener('progress', (e) => {
    if (e.lengthComputable) setProgress((100 * e.loaded) / e.total);
  });
  xhr.upload.addEventListener('load', () => setProgress(100));
  // The upload and the signature on this computer; the sending to the host is followed
  // through the outbox's events, never waited for here.
  const wait = beginWait('Envoi du document à l\'agent (signature, mise en file)', {
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
      say('deposit-message', `« ${answer.title || title} » signé et mis en file d'envoi. `
        + '/ Signed and queued.', 'ok');
      $('deposit-form').reset();
      titleEdited = false;
      showFile();
      $('deposit-type').value = ''; // the next document's type is chosen again
      typeChosen();
      checkOutbox();
    } else {
      if (xhr.status === 401 && answer.code === 'bad-token') {
        noToken('Le jeton a été refusé. / The key was refused.');
        return;
      }
      say('deposit-message', answer.message || `Erreur ${xhr.status} / error`, 'error');
    }
    renderDeposits();
  });
  xhr.addEventListener('error', () => {
    depositing = false;
    typeChosen();
    say('deposit-message', 'Agent injoignable / the agent cannot be reached', 'error');
  });
  depositing = true;
  $('deposit-submit').disabled = true;
  setProgress(0);
  say('deposit-message', 'Envoi du fichier… / uploading…');
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
        {what: 'Lecture de la file d\'envoi', host: false});
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
  return {pending: 'En attente d\'envoi / waiting', sending: 'Envoi en cours… / sending',
    done: 'Déposé / deposited', failed: 'Refusé / refused'}[item.state] || item.state;
}

// Why a deposit waits and when it is tried again: "l'hôte DMP ne répond pas (HTTP 503) —
// nouvel essai à 14:32".
function waitingText(item) {
  if (!item.reasonText || !item.reason) return '';
  let when = '';
  if (item.nextAttempt) {
    const at = new Date(item.nextAttempt);
    const time = at.toLocaleTimeString('fr-FR', {hour: '2-digit', minute: '2-digit'});
    when = at <= new Date() ? ' — nouvel essai imminent / retrying now'
      : ` — nouvel essai à ${time} / next try at ${time}`;
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
    ? `${otherCount} autre(s) dépôt(s) en file sur ce poste, d'autres sessions : envoyés par `
      + 'l\'agent. / other deposits queued on this workstation.' : '';
  $('deposits').replaceChildren(...list.map((item) => {
    const li = el('li', {class: `deposit ${item.state}`, 'data-id': item.id},
      el('strong', {text: item.title || `#${item.id}`}), ' — ',
      el('span', {class: 'deposit-state', text: depositState(item)}));
    if (item.attempts > 1) li.append(el('span', {class: 'small', text: ` (${item.attempts} `
      + 'tentatives / attempts)'}));
    if (item.state === 'pending' && waitingText(item)) {
      li.append(el('p', {class: 'reason', text: waitingText(item)}));
    }
    if (item.state === 'failed') {
      li.append(el('p', {class: 'reason', text: [item.reasonText, item.lastError]
        .filter(Boolean).join(' — ')}),
        el('button', {type: 'button', 'aria-label': `Réessayer ${item.title}`,
          onclick: () => retry(item.id)}, 'Réessayer / retry'));
    }
    return li;
  }));
}

async function retry(id) {
  try {
    await api('POST', `/api/outbox/${id}/retry`, undefined,
      {what: 'Nouvel essai du dépôt', host: false});
    const item = tracked.get(id);
    if (item) item.state = 'pending';
    say('deposit-message', 'Nouvel essai demandé. / Retry requested.', 'ok');
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
  say('create-message', 'Création du DMP… / creating…');
  try {
    const body = {
      consent: true, breakTheGlass: $('create-btg').checked,
      regulationCentre: $('create-regulation').checked,
      emergencySeesMasked: $('create-masked').checked};
    const email = $('create-email').value.trim();
    if (email) body.email = email;  // optional: checked by the agent (bad-email)
    const created = await api('POST', '/api/dmp', body, {what: 'Création du DMP',
      control: $('create-submit')});
    say('create-message', `DMP créé — identifiant ${created.identifier}. / DMP created.`, 'ok');
    $('create-form').reset();
    show('sheet', true);
  } catch (error) {
    failed('create-message', error);
  } finally {
    render();
  }
}

const MODE_WAIT = {normal: 'Retour à l\'accès normal',
  'break-the-glass': 'Accès en urgence (bris de glace)',
  regulation: 'Accès en urgence (centre 15)'};

async function setMode(mode, justification = '') {
  say('emergency-message', 'Accès en cours… / opening…');
  try {
    const answer = await api('PUT', '/api/patient/access-mode', {mode, justification}, {
      what: MODE_WAIT[mode], key: 'patient'}); // the dossier is read again in that mode
    if (answer && answer.state === 'error') {
      // Refused (e.g. the patient refused the regulation centre): the panel's hint says
      // why, once; nothing says the access is open.
      say('emergency-message', '');
    } else {
      say('emergency-message', mode === 'normal' ? 'Accès d\'urgence terminé. / Emergency '
        + 'access ended.' : 'Accès en urgence ouvert (tracé). / Emergency access open.', 'ok');
    }
    if (mode !== 'normal') $('btg-justification').value = '';
  } catch (error) {
    failed('emergency-message', error);
  }
  render();
}

async function loadDiagnostics() {
  say('diagnostics-message', 'Vérifications en cours… / checking…');
  try {
    const checks = await api('GET', '/api/diagnostics', undefined,
      {what: 'Vérifications du poste (dont l\'hôte DMP)', control: $('diagnostics-run')});
    const icons = {ok: ['✔', 'OK'], warning: ['⚠', 'Attention / warning'],
      problem: ['✖', 'Problème / problem']};
    $('diagnostics-body').replaceChildren(...checks.map((c) => {
      const [icon, label] = icons[c.status] || ['?', c.status];
      return el('tr', {class: `check-${c.status}`},
        el('th', {scope: 'row', text: c.name}),
        el('td', {class: 'status'}, el('span', {class: 'icon', 'aria-hidden': 'true',
          text: icon}), ` ${label}`),
        el('td', {text: c.detail}), el('td', {text: c.fix}));
    }));
    const bad = checks.filter((c) => c.status !== 'ok').length;
    say('diagnostics-message', bad ? `${bad} point(s) à corriger / to fix`
      : 'Tout va bien. / All good.', bad ? 'error' : 'ok');
  } catch (error) {
    failed('diagnostics-message', error);
  }
}

async function loadSettings() {
  try {
    const settings = await api('GET', '/api/settings', undefined,
      {what: 'Lecture des paramètres', host: false});
    $('settings-file').textContent = settings.file || '(aucun fichier : valeurs par défaut '
      + '/ no file: defaults)';
    $('settings-system').hidden = !settings.systemFile;
    $('settings-system-file').textContent = settings.systemFile || '';
    $('settings-body').replaceChildren(...settings.keys.map((k) => el('tr', {},
      el('th', {scope: 'row', class: 'mono',
        text: k.locked ? `🔒 ${k.key}` : k.key,
        title: k.locked ? "Fixé par l'administrateur / set by the administrator" : null}),
      el('td', {class: 'mono', text: JSON.stringify(k.value)}),
      el('td', {text: k.doc}))));
    if (settings.ignored.length) {
      say('settings-message', `Fixé par l'administrateur, votre valeur est ignorée / set by `
        + `the administrator, your value is ignored: ${settings.ignored.join(', ')}`, 'error');
    } else {
      say('settings-message', '');
    }
  } catch (error) {
    failed('settings-message', error);
  }
}

// -- start -------------------------------------------------------------------------------
function wire() {
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
    `Fiche du patient — ${personName((state.patient || {}).patient)}`,
    'Ouverture de la fiche du patient', false));
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
  try {
    state = await api('GET', '/api/status', undefined,
      {what: 'Lecture de l\'état de l\'agent', host: false});
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
start(readFragment());
