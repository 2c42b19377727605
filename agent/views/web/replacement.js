// A new version of one's own document from the page (docs/agent-page.md): the Dossier's
// "Nouvelle version" button puts the deposit form in replacement mode, which names the
// document replaced and sends the file to POST /api/documents/{uniqueId}/replace. The
// agent writes the CDA that names the version it replaces (relatedDocument RPLC, same
// setId, next versionNumber: docs/cda.md); the DMP keeps the old one as replaced. The mode
// ends with the deposit, its cancel button, or a change of session or patient.

let tools = null; // app.js's helpers: {t, select, cancelled}
let doc = null; // the document being replaced (its snapshot from the list), or null
let owner = null; // the session and patient it was chosen under

const $ = (id) => document.getElementById(id);

export function replacing() {
  return doc;
}

export function depositPath(params) {
  return doc === null ? `/api/deposits?${params}`
    : `/api/documents/${encodeURIComponent(doc.uniqueId)}/replace?${params}`;
}

export function startReplacement(chosen, key) {
  doc = chosen;
  owner = key;
  $('deposit-type').value = chosen.typeCode; // kept when the list offers it, else chosen
  $('deposit-title').value = chosen.title;
  renderReplacement(key);
  tools.select('deposit', true);
}

export function endReplacement() {
  doc = null;
  owner = null;
  renderReplacement(null);
}

export function renderReplacement(key) {
  if (doc !== null && key !== owner) { // another session or patient: not theirs to replace
    doc = null;
    owner = null;
  }
  $('deposit-replacing').hidden = doc === null;
  $('deposit-replacing-text').textContent = doc === null ? ''
    : tools.t('New version of “{title}” ({type}): the DMP will show this one instead.',
      {title: doc.title, type: doc.typeLabel || doc.typeCode});
}

export function wireReplacement(helpers) {
  tools = helpers;
  $('deposit-replacing-cancel').addEventListener('click', () => {
    endReplacement();
    $('deposit-form').reset();
    tools.cancelled();
  });
}
