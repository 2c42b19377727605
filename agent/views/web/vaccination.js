// The vaccination record in the page (docs/cda.md "The vaccination record"): a pharmacist,
// a nurse, a midwife or a doctor records a vaccination they gave; the agent writes the
// CI-SIS vaccination note and deposits it as every deposit (POST /api/vaccinations). The
// form shows only when the session's profession may record one (GET
// /api/vaccinations/choices, which also gives the lists), names the patient, preselects
// no vaccine. Once the note is sent, the dossier's vaccinations section shows it
// (sections.js). Every text goes in through textContent.

let tools = null; // app.js's helpers: {api, t, failed, say}
let loadedFor = null; // the session the choices were asked for
let allowed = false;

const $ = (id) => document.getElementById(id);

function today() {
  // The local day, as the date field speaks it (YYYY-MM-DD).
  const now = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function fill(select, items, text) {
  const first = select.options[0]; // the empty choice: nothing preselected
  select.replaceChildren(first, ...items.map((item) => {
    const option = document.createElement('option');
    option.value = item.code;
    option.textContent = text(item);
    return option;
  }));
  select.value = '';
}

async function loadChoices(key) {
  try {
    const choices = await tools.api('GET', '/api/vaccinations/choices', undefined,
      {what: tools.t('Reading the vaccines offered'), host: false});
    if (key !== loadedFor) return;
    allowed = Boolean(choices.allowed);
    fill($('vaccination-vaccine'), choices.vaccines || [],
      (v) => `${v.disease} — ${v.label}`);
    fill($('vaccination-route'), choices.routes || [], (r) => r.label);
    fill($('vaccination-site'), choices.sites || [], (s) => s.label);
  } catch (error) {
    if (key === loadedFor) loadedFor = null; // asked again at the next drawing
    allowed = false;
  }
  $('vaccination').hidden = !(allowed && !$('vaccination').dataset.hint);
}

// renderVaccination({hint, key, patient}): ``hint`` is why nothing can be deposited now
// ('' when the form may show), ``key`` the open session (null when none), ``patient`` the
// text naming the patient.
export function renderVaccination({hint, key, patient}) {
  if (!tools) return;
  const section = $('vaccination');
  section.dataset.hint = hint || '';
  if (!key) {
    loadedFor = null;
    allowed = false;
  } else if (key !== loadedFor) {
    loadedFor = key;
    allowed = false;
    loadChoices(key);
  }
  section.hidden = !(allowed && !hint);
  $('vaccination-patient').textContent = hint ? '' : patient;
  const date = $('vaccination-date');
  date.max = today();
  if (!date.value) date.value = today();
}

async function record(event) {
  event.preventDefault();
  const {api, t, say, failed} = tools;
  const dose = $('vaccination-dose').value.trim();
  const body = {
    vaccine: $('vaccination-vaccine').value,
    date: $('vaccination-date').value,
    lot: $('vaccination-lot').value,
    dose: dose === '' ? null : Number(dose),
    route: $('vaccination-route').value || null,
    site: $('vaccination-site').value || null,
  };
  const chosen = $('vaccination-vaccine').selectedOptions[0];
  say('vaccination-message', t('Recording the vaccination…'));
  try {
    // The note is checked against the volet's schematrons and signed with the card.
    await api('POST', '/api/vaccinations', body,
      {what: t('Recording the vaccination'), host: false, timeout: 120000});
    say('vaccination-message', t('Vaccination recorded ({vaccine}, lot {lot}): the note is '
      + 'sent to the DMP.', {vaccine: chosen ? chosen.textContent : '', lot: body.lot.trim()}),
    'ok');
    $('vaccination-form').reset();
    $('vaccination-date').value = today();
  } catch (error) {
    failed('vaccination-message', error);
  }
}

export function wireVaccination(helpers) {
  tools = helpers;
  $('vaccination-form').addEventListener('submit', record);
}
