// The document viewer in the page (docs/cda-viewer.md): a document opened in a panel of the
// Dossier tab, from GET /api/documents/{id}/view. The agent did the rendering and the checks
// (a CDA level 3 as sanitised HTML, a level 1 as its PDF, images, text); the page only puts
// the answer in a frame: HTML through srcdoc in a frame sandboxed without scripts, images and
// text as blob: URLs in the same sandbox, a PDF as a blob: URL in a frame of its own (the
// browser's PDF viewer does not run in a sandboxed frame; a blob of type application/pdf
// cannot run script in the page).

const KINDS = {
  html: 'text/html',
  pdf: 'application/pdf',
  image: null, // image/png or image/jpeg, as the agent says
  text: 'text/plain;charset=utf-8',
};
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg']);

let deps = null; // {request, t, say, failed, openInTab}
let current = null; // {url, run}
let run = 0;

const $ = (id) => document.getElementById(id);

export function initViewer(given) {
  deps = given;
  $('viewer-close').addEventListener('click', closeViewer);
}

function release() {
  if (current && current.url) URL.revokeObjectURL(current.url);
  current = null;
}

export function closeViewer() {
  run++;
  release();
  $('viewer-frame').replaceChildren();
  $('viewer-title').textContent = ''; // nothing of the last patient stays on the page
  $('viewer-tab').onclick = null;
  $('viewer').hidden = true;
  deps.say('viewer-message', '');
}

function viewPath(uniqueId) {
  return `/api/documents/${encodeURIComponent(uniqueId)}/view`;
}

// openViewer({uniqueId, title}): the document in the panel, its title above it.
export async function openViewer(doc) {
  const {request, t, say, failed} = deps;
  const title = doc.title || doc.typeLabel || t('Document');
  const mine = ++run;
  release();
  $('viewer').hidden = false;
  $('viewer-title').textContent = title;
  $('viewer-frame').replaceChildren();
  $('viewer-tab').hidden = true;
  say('viewer-message', t('Opening…'));
  $('viewer').scrollIntoView({block: 'nearest'});
  try {
    const [kind, type, bytes] = await request('GET', viewPath(doc.uniqueId), {
      what: t('Opening the document “{title}”', {title}), host: true,
      read: async (response) => [response.headers.get('x-view-kind') || '',
        (response.headers.get('content-type') || '').split(';')[0].trim().toLowerCase(),
        await response.arrayBuffer()]});
    if (mine !== run) return; // another document was opened meanwhile
    show(kind, type, bytes, title);
    say('viewer-message', '');
    $('viewer-tab').onclick = () => deps.openInTab(viewPath(doc.uniqueId), 'viewer-message',
      title, t('Opening the document “{title}”', {title}));
  } catch (error) {
    if (mine === run) failed('viewer-message', error);
  }
}

function show(kind, type, bytes, title) {
  const {t} = deps;
  if (!Object.hasOwn(KINDS, kind) || (kind === 'image' && !IMAGE_TYPES.has(type))) {
    throw new Error(t('The agent answered a kind of document the page cannot show.'));
  }
  const frame = document.createElement('iframe');
  frame.title = title;
  frame.className = `viewer-frame ${kind}`;
  frame.referrerPolicy = 'no-referrer';
  // Sandboxed without allow-scripts: nothing in the frame can run. The HTML keeps the page's
  // origin (allow-same-origin) only so that its one stylesheet, /static/cda-view.css, loads:
  // an opaque origin's request says "Origin: null", which the agent's guard refuses.
  if (kind === 'html') frame.setAttribute('sandbox', 'allow-same-origin');
  else if (kind !== 'pdf') frame.setAttribute('sandbox', '');
  if (kind === 'html') {
    frame.srcdoc = new TextDecoder('utf-8').decode(bytes);
  } else {
    const url = URL.createObjectURL(new Blob([bytes], {type: KINDS[kind] || type}));
    current = {url};
    frame.src = url;
  }
  $('viewer-frame').replaceChildren(frame);
  // A new tab titled by the document, for a PDF or text (what a blob: tab may hold).
  $('viewer-tab').hidden = !(kind === 'pdf' || kind === 'text');
}
