"""The core's viewing of documents and the dossier's sections (docs/cda-viewer.md).

A document's bytes are fetched once per visit (the patient context's ``generation``) through
the DMP client's retrieve path (its hash checked), then kept in memory for the visit: the
viewer and the sections read the same copy, never downloading twice. The copy is bounded
(least recently used first out) and dropped with the patient.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from agent.client.refusals import host_text
from agent.core.work import WorkPart
from agent.i18n import _

# lxml and the stylesheet load at the first document viewed, not at start (issue 11).
if TYPE_CHECKING:
    from agent.core.cda_view import Viewable
    from wire.documents import DocumentEntry

log = logging.getLogger("agent.core")

FETCHED_BYTES = 128 << 20  # what one visit keeps in memory of the documents it fetched


class Fetched:
    """The bytes of the documents fetched in one visit, by uniqueId (LRU, bounded)."""

    def __init__(self, generation: int, limit: int = FETCHED_BYTES) -> None:
        self.generation = generation
        self.limit = limit
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self.downloads = 0  # how many documents this visit retrieved from the host
        self._lock = threading.Lock()

    def get(self, unique_id: str) -> bytes | None:
        with self._lock:
            body = self._items.get(unique_id)
            if body is not None:
                self._items.move_to_end(unique_id)
            return body

    def put(self, unique_id: str, body: bytes) -> None:
        with self._lock:
            if unique_id in self._items or len(body) > self.limit:
                return
            self._items[unique_id] = body
            self._size += len(body)
            while self._size > self.limit:
                _old, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


class ViewingPart(WorkPart):
    _fetched: Fetched | None = None

    def _visit_cache(self, generation: int) -> Fetched:
        with self._lock:
            if self._fetched is None or self._fetched.generation != generation:
                self._fetched = Fetched(generation)  # another patient: nothing kept
            return self._fetched

    def _held_entry(self, unique_id: str) -> DocumentEntry | None:
        p = self._patient_ready()
        with self._lock:
            return next((e for e in p.documents if e.unique_id == unique_id), None)

    def fetched_content(self, entry: DocumentEntry) -> bytes:
        """``entry``'s bytes: from this visit's copy, else retrieved (hash checked) and kept."""
        p = self._patient_ready()
        cache = self._visit_cache(p.generation)
        body = cache.get(entry.unique_id)
        if body is None:
            body = self.retrieve(entry)
            cache.downloads += 1
            cache.put(entry.unique_id, body)
        return body

    def view_document(self, unique_id: str) -> Viewable:
        """What the viewer shows of document ``unique_id`` (`ViewRefused` when it cannot)."""
        entry = self._held_entry(unique_id)
        if entry is None:
            p = self._patient_ready()
            with self._calls() as dmp:
                entry = self._entry(dmp, p, unique_id)
        from agent.core.cda_view import view

        body = self.fetched_content(entry)
        return view(body, entry.mime_type, entry.title)

    def patient_sections(self) -> dict[str, Any]:
        """The dossier's sections from the CDA level 3 documents of the dossier."""
        from agent.core import dossier_sections as ds
        from agent.core.cda_view import ViewRefused
        from wire import cda

        entries = [e for e in self.document_entries() if e.format_code in ds.SOURCE_FORMATS]
        parsed, problems = [], []
        for entry in entries:
            source = ds.Source(entry.unique_id, entry.title, entry.creation_time,
                               entry.format_code)
            try:
                root = cda.read(self.fetched_content(entry)).root
            except cda.CdaError as error:  # one bad document does not hide the others
                problems.append({"source": source.as_json(), "code": error.code,
                                 "message": _("Not read: {reason}").format(
                                     reason=host_text(error.message))})
                continue
            except ViewRefused as error:
                problems.append({"source": source.as_json(), "code": error.code,
                                 "message": str(error)})
                continue
            parsed.append(ds.Parsed(source, root))
        return {"sections": [s.as_json() for s in ds.sections(parsed)],
                "problems": problems}
