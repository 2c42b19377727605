// The e-CPS login in the page (docs/psc.md): "Se connecter avec e-CPS" asks the agent to
// start a login approved on the professional's phone (POST /api/session/ecps), shows the
// binding message the phone shows too and a countdown of its expiry, and cancels it
// (DELETE /api/session/ecps). The choice of the practice situation and the open session
// are the card's panels (app.js). Every text goes in through textContent.

const IDNAT_KEY = 'dmp-agent-ecps-idnat'; // the last national id typed here (no secret)
let tools = null; // app.js's helpers: {api, t, failed, say}
let deadline = null; // Date.now() when the phone's answer expires
let ticker = null;

const $ = (id) => document.getElementById(id);

function tick() {
  const left = deadline === null ? 0 : Math.max(0, Math.round((deadline - Date.now()) / 1000));
  $('ecps-countdown').textContent = tools.t('{seconds} s left to approve', {seconds: left});
}

function follow(seconds) {
  // The agent says the seconds left at each change; the page counts down between them.
  if (typeof seconds === 'number') deadline = Date.now() + seconds * 1000;
  if (ticker === null) ticker = setInterval(tick, 1000);
  tick();
}

function stop() {
  if (ticker !== null) clearInterval(ticker);
  ticker = null;
  deadline = null;
}

export function renderEcps(state) {
  if (!tools) return;
  const session = (state && state.session) || {};
  const login = session.ecps;
  // Offered while no session is open; while a login runs its progress replaces the form.
  $('ecps-login').hidden = session.state === 'open' || (session.state === 'choosing' && !login);
  const waiting = Boolean(login) && login.phase === 'waiting';
  $('ecps-form').hidden = Boolean(login);
  $('ecps-waiting').hidden = !login;
  $('ecps-countdown').hidden = !waiting;
  if (login) {
    $('pin-form').hidden = true; // no PIN: the phone approves
    // Shown once the phone has it (phase waiting): the two screens say the same.
    $('ecps-binding').textContent = waiting ? login.bindingMessage || '' : '';
    $('ecps-phase').textContent = waiting ? tools.t('Approve the login on your phone. It shows:')
      : tools.t('Approved: opening the session…');
    if (waiting) follow(login.secondsLeft);
    else stop();
  } else {
    stop();
    $('ecps-binding').textContent = ''; // never the last login's code beside a new one
  }
}

async function start(event) {
  event.preventDefault();
  const idNatPs = $('ecps-idnat').value.trim();
  if (idNatPs) localStorage.setItem(IDNAT_KEY, idNatPs);
  tools.say('ecps-message', '');
  try {
    await tools.api('POST', '/api/session/ecps', idNatPs ? {idNatPs} : {},
      {what: tools.t('Starting the e-CPS login'), host: false});
  } catch (error) {
    tools.failed('ecps-message', error);
  }
}

async function cancel() {
  try {
    await tools.api('DELETE', '/api/session/ecps', undefined,
      {what: tools.t('Cancelling the e-CPS login'), host: false});
  } catch (error) {
    tools.failed('ecps-message', error);
  }
}

export function wireEcps(helpers) {
  tools = helpers;
  $('ecps-idnat').value = localStorage.getItem(IDNAT_KEY) || '';
  $('ecps-form').addEventListener('submit', start);
  $('ecps-cancel').addEventListener('click', cancel);
}
