// The dossier's sections in the page (docs/cda-viewer.md): GET /api/patient/sections, read
// by the agent from the dossier's CDA documents. Every item links back to its document (it
// opens in the viewer); a section without a source document says so. Texts go in through
// textContent; a lab plot is the agent's SVG shown as an image (an SVG in <img> runs nothing).

let deps = null; // {api, t, el, say, failed, openViewer, localDay}
let loadedFor = null; // the patient key the sections were drawn for
let loading = 0;

const $ = (id) => document.getElementById(id);

export function initSections(given) {
  deps = given;
  $('sections-refresh').addEventListener('click', () => loadSections(loadedFor, true));
}

function names(t) {
  return {
    allergies: t('Allergies'),
    history: t('Medical history'),
    bloodGroup: t('Blood group'),
    pathologies: t('Current pathologies'),
    treatments: t('Current treatments'),
    vaccinations: t('Vaccinations'),
    labResults: t('Lab results'),
    emergencyContacts: t('Emergency contacts'),
  };
}

function sources(t) {
  return {
    allergies: t('from the latest medical summary (VSM)'),
    history: t('from the latest medical summary (VSM)'),
    pathologies: t('from the latest medical summary (VSM)'),
    treatments: t('from the latest medical summary (VSM)'),
    bloodGroup: t('from the medical summaries and lab reports'),
    vaccinations: t('from the vaccination notes'),
    labResults: t('from the lab reports (CR-BIO)'),
    emergencyContacts: t('from the structured documents'),
  };
}

// renderSections(ready, key): called with the dossier; loads once per patient.
export function renderSections(ready, key) {
  $('dossier-sections').hidden = !ready;
  if (!ready) {
    loadedFor = null;
    $('sections-body').replaceChildren();
    deps.say('sections-message', '');
    return;
  }
  if (key !== loadedFor) loadSections(key, false);
}

export async function loadSections(key, again) {
  const {api, t, say, failed} = deps;
  loadedFor = key;
  const mine = ++loading;
  if (!again) $('sections-body').replaceChildren();
  say('sections-message', t('Reading the dossier’s documents…'));
  try {
    const answer = await api('GET', '/api/patient/sections', undefined,
      {what: t('Reading the dossier’s documents'), host: true});
    if (mine !== loading || key !== loadedFor) return;
    draw(answer);
    say('sections-message', '');
  } catch (error) {
    if (mine === loading) failed('sections-message', error);
  }
}

function sourceLink(source) {
  const {el, t, openViewer, localDay} = deps;
  return el('button', {type: 'button', class: 'link source',
    'aria-label': t('Open the source document {title}', {title: source.title}),
    onclick: () => openViewer({uniqueId: source.uniqueId, title: source.title})},
  `${source.title} (${localDay(source.date)})`);
}

function draw(answer) {
  const {el, t} = deps;
  const label = names(t);
  const from = sources(t);
  const cards = (answer.sections || []).map((section) => {
    const box = el('article', {class: `summary-section ${section.status}`,
      'data-key': section.key},
    el('h4', {text: label[section.key] || section.key}),
    el('p', {class: 'small', text: from[section.key] || ''}));
    if (section.status === 'no-source') {
      box.append(el('p', {class: 'empty', text: t('No source document in the dossier.')}));
    } else if (section.status === 'empty') {
      box.append(el('p', {class: 'empty',
        text: t('Nothing recorded in {count} source document(s).',
          {count: section.sources.length})}));
    } else if (section.key === 'labResults') {
      box.append(...section.analyses.map(analysis));
    } else {
      box.append(el('ul', {class: 'summary-items'}, ...section.items.map((item) => el('li', {},
        el('span', {class: 'item-label', text: item.label}),
        item.detail ? el('span', {class: 'item-detail', text: ` — ${item.detail}`}) : null,
        item.date ? el('span', {class: 'item-date', text: ` (${deps.localDay(item.date)})`})
          : null,
        ' ', sourceLink(item.source)))));
    }
    return box;
  });
  const problems = (answer.problems || []).map((p) => el('p', {class: 'message',
    'data-kind': 'error', text: `${p.source.title}: ${p.message}`}));
  $('sections-body').replaceChildren(...cards, ...problems);
}

function analysis(item) {
  const {el, t} = deps;
  const rows = item.results.map((r) => el('tr', {},
    el('td', {text: deps.localDay(r.date)}),
    el('td', {text: `${r.value} ${r.unit || ''}`.trim()}),
    el('td', {text: r.low !== null && r.high !== null ? `${r.low} – ${r.high}` : ''}),
    el('td', {text: r.interpretation || ''}),
    el('td', {}, sourceLink(r.source))));
  const figure = el('figure', {class: 'lab'},
    el('figcaption', {text: item.label}),
    item.svg ? el('img', {class: 'lab-plot', alt: t('{analysis} over time',
      {analysis: item.label}),
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(item.svg)}`}) : null,
    el('div', {class: 'table-wrap'}, el('table', {class: 'table'},
      el('thead', {}, el('tr', {},
        el('th', {scope: 'col', text: t('Date')}),
        el('th', {scope: 'col', text: t('Result')}),
        el('th', {scope: 'col', text: t('Reference range')}),
        el('th', {scope: 'col', text: t('Interpretation')}),
        el('th', {scope: 'col', text: t('Document')}))),
      el('tbody', {}, ...rows))));
  return figure;
}
