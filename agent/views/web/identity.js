// The patient's identity in the page (issue 13, docs/ins.md "What the page shows"): its RNIV
// status as a badge beside the name, the INS traits to compare with the identity document,
// the document checked, a notice when the INS service changed the identity, the choice
// among several identities (never made for the user), the search by typed traits with no
// card, and the deposit form held while the identity is not qualifiée. Everything comes from
// the agent's state (GET /api/status and the `patient` events); texts through t().

// app.js's helpers (t, api, el, say, failed, birthDate, localDate, state, sessionOpen,
// select, render), handed over once by identityView().
let page = null;
const t = (id, params = {}) => page.t(id, params);
const $ = (id) => document.getElementById(id);
const MAJORITY = 18; // the agent's rule (agent/core/identity.py): minor-only documents

// The four RNIV statuses, as the agent says them (its French words are the RNIV's).
const STATUSES = {
  'qualifiée': {kind: 'ok', label: () => t('Identity qualified')},
  'récupérée': {kind: 'warning', label: () => t('Identity retrieved — check an identity '
    + 'document')},
  'validée': {kind: 'warning', label: () => t('Identity validated — no INS found')},
  provisoire: {kind: 'bad', label: () => t('Provisional identity')},
};

let documents = null; // GET /api/patient/identity/documents, read once
let lastState = null; // the patient's state last drawn: a new one opens the card-less form
let changedFrom = null; // the traits held when a check met other traits (409)

function patientOf() {
  const state = page.state();
  return (state && state.patient) || {};
}

function identityOf(patient) {
  return patient.identity || {status: 'provisoire', qualified: false, traits: null};
}

// -- what the traits look like -----------------------------------------------------------
function sexText(sex) {
  return {F: () => t('female'), M: () => t('male')}[sex]?.() || sex || '';
}

function placeText(code) {
  if (!code) return '';
  // 99xxx: born abroad (the INSEE code of the country).
  return code.startsWith('99') ? t('abroad (INSEE code {code})', {code})
    : t('INSEE code {code}', {code});
}

function traitList(traits, {rank = false, before = null} = {}) {
  // The traits to compare with the document, each named; with ``before``, those that
  // differ from the traits held before are marked (in words, not by colour alone).
  const rows = [
    ['birthName', t('Birth name'), traits.birthName],
    ['firstNames', t('First names'), traits.firstNames],
    ['sex', t('Sex'), sexText(traits.sex)],
    ['birthDate', t('Birth date'), page.birthDate(traits.birthDate)],
    ['birthPlace', t('Birth place'), placeText(traits.birthPlace)],
    ['ins', 'INS', traits.ins],
  ];
  if (rank || traits.birthRank > 1) {
    rows.push(['birthRank', t('Birth rank'), String(traits.birthRank || 1)]);
  }
  const list = page.el('dl', {class: 'facts id-traits'});
  for (const [key, name, value] of rows) {
    const differs = before && before[key] !== traits[key];
    list.append(page.el('dt', {text: name}),
      page.el('dd', {class: key === 'ins' ? 'mono' : (differs ? 'id-changed' : null)},
        value || '—', differs ? page.el('strong', {text: t(' (changed)')}) : null));
  }
  return list;
}

function personText(traits) {
  return `${traits.firstNames || ''} ${traits.birthName || ''}`.trim();
}

// -- the badge beside the name -------------------------------------------------------------
function badge(node, identity) {
  const known = STATUSES[identity.status];
  node.hidden = !known;
  node.textContent = known ? known.label() : '';
  node.dataset.kind = known ? known.kind : '';
}

function ageOf(raw) {
  if (!/^\d{8}$/.test(raw || '')) return null;
  const year = Number(raw.slice(0, 4));
  const month = Number(raw.slice(4, 6)) || 1;
  const day = Number(raw.slice(6)) || 1;
  const today = new Date();
  const before = today.getMonth() + 1 < month
    || (today.getMonth() + 1 === month && today.getDate() < day);
  return today.getFullYear() - year - (before ? 1 : 0);
}

// -- drawing -----------------------------------------------------------------------------
function render() {
  const patient = patientOf();
  const open = page.sessionOpen();
  const identity = identityOf(patient);
  const traits = identity.traits;
  $('identity').hidden = !open;
  badge($('identity-badge'), identity);
  if (!open) return;
  if (patient.state !== lastState) {
    // No patient: the card-less search is what there is to do. A Vitale card's patient folds
    // it; one searched with it keeps it open (its answer, or traits to correct, are there).
    if (patient.state === 'none') $('identity-search-box').open = true;
    else if (patient.source === 'card' && (lastState === 'none' || lastState === null)) {
      $('identity-search-box').open = false;
    }
    if (patient.state !== 'choosing-identity') page.say('identity-choose-message', '');
    lastState = patient.state;
  }
  const notice = identity.notice || '';
  $('identity-notice').hidden = !notice;
  $('identity-notice-text').textContent = notice;
  renderCandidates(patient);
  const shown = Boolean(traits) || identity.status === 'validée';
  $('identity-shown').hidden = !shown || patient.state === 'choosing-identity';
  if (shown && page.changed('identity-traits', [identity])) {
    badge($('identity-status'), identity);
    $('identity-traits').replaceChildren(...(traits ? [traitList(traits)] : []));
    const checked = identity.document;
    $('identity-checked').textContent = checked ? checkedText(identity) : '';
  }
  renderForm(patient, identity);
}

function checkedText(identity) {
  const doc = identity.document;
  const parent = doc.parent ? t(' — parent: {document}', {document: doc.parent.label}) : '';
  return t('Identity document checked: {document}{parent}, on {date}', {
    document: doc.label, parent, date: page.localDate(identity.validatedAt)});
}

function renderCandidates(patient) {
  const choosing = patient.state === 'choosing-identity';
  $('identity-choose').hidden = !choosing;
  const candidates = choosing ? patient.candidates || [] : [];
  if (!page.changed('identity-candidates', candidates)) return;
  $('identity-candidates').replaceChildren(...candidates.map((c) => page.el('li',
    {class: 'id-candidate', 'data-ins': c.ins},
    page.el('p', {class: 'id-candidate-name', text: personText(c)}),
    traitList(c, {rank: true}),
    page.el('button', {type: 'button', class: 'primary',
      'aria-label': t('Choose {name}, born {date}, {place}', {name: personText(c),
        date: page.birthDate(c.birthDate), place: placeText(c.birthPlace)}),
      onclick: () => choose(c.index)}, t('Choose this identity')))));
  if (candidates.length) {
    // Said once the list is there: the user's eyes go to the choice, not a default.
    setTimeout(() => $('identity-choose-title').focus(), 0);
  }
}

function renderForm(patient, identity) {
  // A check is asked for an identity the INS service returned and not yet qualifiée.
  const asked = Boolean(identity.traits) && !identity.qualified
    && ['ready', 'error', 'loading'].includes(patient.state);
  const form = $('identity-form');
  form.hidden = !asked;
  if (!asked) return;
  if (documents === null) {
    documents = [];
    loadDocuments();
  }
  const minor = (ageOf(identity.traits.birthDate) ?? MAJORITY) < MAJORITY;
  if (page.changed('identity-documents', [documents, minor])) {
    const select = $('identity-document');
    const chosen = select.value;
    const offered = documents.filter((d) => minor || !d.minorOnly);
    select.replaceChildren(page.el('option', {value: '', text: t('— Choose the document —')}),
      ...offered.map((d) => page.el('option', {value: d.type, text: d.label})));
    select.value = offered.some((d) => d.type === chosen) ? chosen : '';
    const parent = $('identity-parent');
    parent.replaceChildren(page.el('option', {value: '', text: t('— Choose the document —')}),
      ...documents.filter((d) => !d.minorOnly)
        .map((d) => page.el('option', {value: d.type, text: d.label})));
  }
  documentChosen();
}

function documentChosen() {
  const kind = (documents || []).find((d) => d.type === $('identity-document').value);
  const needsParent = Boolean(kind && kind.minorOnly);
  $('identity-parent-field').hidden = !needsParent;
  $('identity-parent').required = needsParent;
  if (!needsParent) $('identity-parent').value = '';
  $('identity-submit').disabled = !kind || (needsParent && !$('identity-parent').value);
}

async function loadDocuments() {
  try {
    documents = await page.api('GET', '/api/patient/identity/documents', undefined,
      {what: t('Reading the identity document types'), host: false});
  } catch (error) {
    documents = null; // asked again at the next drawing
    page.failed('identity-message', error);
  }
  render();
}

// -- the deposit form, held until the identity is qualified ------------------------------
// The reason the deposit is held ('' when it is not): the agent refuses anyway (409).
function depositBlock() {
  const patient = patientOf();
  if (patient.state !== 'ready' || !patient.patient) return '';
  const identity = identityOf(patient);
  if (identity.qualified) return '';
  return t("The patient's identity is not qualified (status: {status}): no document can be "
    + 'deposited before an identity document is checked (Patient tab, “Identity document '
    + 'checked”).', {status: identity.status});
}

// Holds (or releases) the deposit form's controls; true while it is held.
function holdDeposit(form) {
  const reason = depositBlock();
  page.say('deposit-identity', reason, 'error');
  $('deposit-identity-go').hidden = !reason;
  form.dataset.identity = reason ? 'held' : '';
  for (const control of form.elements) {
    if (reason && !control.disabled) {
      control.disabled = true;
      control.dataset.identityHeld = 'true';
    } else if (!reason && control.dataset.identityHeld) {
      control.disabled = false;
      delete control.dataset.identityHeld;
    }
  }
  return Boolean(reason);
}

// What the other panels say while the patient waits for the identity to be chosen.
function prerequisite(patient) {
  if (patient.state === 'choosing-identity') {
    return t('Several identities were answered by the INS service: choose the patient’s '
      + '(Patient tab).');
  }
  return '';
}

// -- actions -----------------------------------------------------------------------------
async function choose(index) {
  page.say('identity-choose-message', t('Reading the dossier…'));
  try {
    await page.api('POST', '/api/patient/identity/choose', {index},
      {what: t('Choosing the identity'), key: 'patient'});
    page.say('identity-choose-message', '');
    $('identity-title').focus();
  } catch (error) {
    page.failed('identity-choose-message', error);
  }
  page.render();
}

async function validate(event) {
  event.preventDefault();
  const body = {document: $('identity-document').value};
  if (!$('identity-parent-field').hidden) body.parentDocument = $('identity-parent').value;
  if (!body.document) return;
  const before = identityOf(patientOf()).traits;
  $('identity-submit').disabled = true;
  page.say('identity-message', t('Verifying the INS with the INS service…'));
  try {
    await page.api('POST', '/api/patient/identity/validate', body,
      {what: t('Verifying the INS with the INS service'), control: $('identity-submit')});
    $('identity-form').reset();
    page.say('identity-message', t('Identity qualified: deposits are allowed.'), 'ok');
    changedFrom = null;
    $('identity-title').focus();
  } catch (error) {
    if (error.code === 'identity-changed') {
      changedFrom = before;
      await showChanged(error.message);
    } else {
      page.failed('identity-message', error);
    }
  }
  page.render();
}

// The INS service answered other traits than those shown: said with the new ones (the
// agent's state holds them now), those that differ marked, to compare again.
async function showChanged(message) {
  let traits = null;
  try {
    const status = await page.api('GET', '/api/status', undefined,
      {what: t("Reading the agent's state"), host: false});
    traits = status.patient && status.patient.identity && status.patient.identity.traits;
  } catch {
    traits = identityOf(patientOf()).traits;
  }
  const node = $('identity-message');
  node.dataset.kind = 'error';
  node.replaceChildren(page.el('span', {text: message}));
  if (traits) {
    node.append(page.el('span', {class: 'id-new-title', text: t('The traits the INS service '
      + 'answers now:')}), traitList(traits, {before: changedFrom}));
  }
  node.focus();
}

function firstNamesOf(text) {
  return text.split(/\s+/).filter(Boolean);
}

// JJ/MM/AAAA (00 for an unknown day or month: lunar dates) or AAAAMMJJ -> AAAAMMJJ; anything
// else is sent as typed, and the agent names the trait.
function typedDate(text) {
  const value = text.trim();
  const french = /^(\d{2})[/.-](\d{2})[/.-](\d{4})$/.exec(value);
  return french ? `${french[3]}${french[2]}${french[1]}` : value;
}

async function search(event) {
  event.preventDefault();
  const sex = $('identity-search').querySelector('input[name="identity-sex"]:checked');
  const body = {birthName: $('identity-birth-name').value.trim(),
    firstNames: firstNamesOf($('identity-first-names').value),
    sex: sex ? sex.value : '', birthDate: typedDate($('identity-birth-date').value)};
  const place = $('identity-birth-place').value.trim().toUpperCase();
  if (place) body.birthPlace = place;
  $('identity-search-submit').disabled = true;
  page.say('identity-search-message', t('Searching the INS service…'));
  try {
    const found = await page.api('POST', '/api/patient/identity/search', body,
      {what: t('Searching the INS service'), control: $('identity-search-submit')});
    const count = (found.candidates || []).length;
    page.say('identity-search-message', found.state === 'error' ? found.error
      : count ? t('{count} identities found: choose the patient’s above.', {count})
        : t('Identity found: {name}.', {name: personText(found.identity.traits || {})}),
    found.state === 'error' ? 'error' : 'ok');
  } catch (error) {
    page.failed('identity-search-message', error);
  } finally {
    $('identity-search-submit').disabled = false;
  }
  page.render();
}

// -- start -------------------------------------------------------------------------------
// identityView(helpers): the identity part, wired to the page; what app.js calls back.
export function identityView(helpers) {
  page = helpers;
  $('identity-form').addEventListener('submit', validate);
  $('identity-document').addEventListener('change', documentChosen);
  $('identity-parent').addEventListener('change', documentChosen);
  $('identity-search').addEventListener('submit', search);
  $('deposit-identity-go').addEventListener('click', () => page.select('patient', true));
  return {render, prerequisite, holdDeposit};
}
