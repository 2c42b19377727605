"""What the outbox does with what it finds on disk (docs/agent-outbox.md, "Recovery").

The outbox is the one place a deposit lives before the host has it, so it deletes a file
only when it can say why: a temporary file (an unfinished write, never promised), the copy
of an item the host acknowledged, a second copy of an item that has a sound one. Anything
else is either rebuilt into the queue from its sealed label (a file whose row was lost: the
database was damaged, lost, or replaced) or moved to a dated folder of ``quarantine/``, with
the reason, for a person to look at (`dmp-agent doctor` and the page report it;
`dmp-agent outbox --recover` brings back what can be opened again, e.g. once the key is
restored). Nothing is ever deleted from ``quarantine/``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import fsync_dir, private_dir
from agent.outbox.model import Description, ItemState, OutboxDamagedError
from agent.outbox.sealed import TEMP_PREFIX, OutboxCipher, SealedFiles

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
REASONS = "reasons.txt"  # in each quarantine folder: one line per thing put there, and why
CONTENT_KEY = "content"  # metadata[CONTENT_KEY] names an item's file in contents/


class Quarantine:
    """``root``'s dated folders (``YYYYmmdd-HHMMSS``), made on first use: one per opening
    of the outbox that had something to put aside."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock
        self.folder: Path | None = None

    def _current(self) -> Path:
        if self.folder is None:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
            folder, number = self.root / stamp, 1
            while folder.exists():
                number += 1
                folder = self.root / f"{stamp}-{number}"
            self.folder = private_dir(folder)
        return self.folder

    def put(self, path: Path, reason: str, part: str) -> Path:
        """Move ``path`` into the current folder's ``part`` (bundles, contents, database)
        and note why; returns where it went."""
        folder = self._current()
        target = private_dir(folder / part) / path.name
        os.replace(path, target)
        fsync_dir(target.parent)
        fsync_dir(path.parent)
        with open(folder / REASONS, "a", encoding="utf-8") as notes:
            notes.write(f"{part}/{path.name}: {reason}\n")
        log.warning("outbox: %s/%s put in quarantine (%s): %s", part, path.name, folder, reason)
        return target


@dataclass(frozen=True)
class QuarantineReport:
    """What ``quarantine/`` holds: its path, its dated folders and how many files."""

    path: Path
    folders: tuple[Path, ...]
    files: int


def quarantine_report(outbox_dir: Path) -> QuarantineReport | None:
    """``outbox_dir``'s quarantine, or None when it holds nothing. Read-only: `doctor` and
    the page call it while the agent owns the outbox."""
    root = outbox_dir / QUARANTINE
    try:
        folders = tuple(sorted(p for p in root.iterdir() if p.is_dir()))
    except OSError:
        return None
    count = sum(1 for folder in folders for p in folder.rglob("*")
                if p.is_file() and p.name != REASONS)
    return QuarantineReport(root, folders, count) if count else None


@dataclass(frozen=True)
class Found:
    """A file of ``bundles/`` or ``contents/`` no row points to, and what it says it is."""

    path: Path
    description: Description | None  # None: it does not open (``problem`` says why)
    problem: str = ""


@dataclass
class Repair:
    """What one accounting of the files did."""

    rebuilt: int = 0  # items made again from their files' labels
    removed: int = 0  # files deleted, each with its reason (logged)
    quarantined: int = 0
    restored: int = 0  # files brought back from quarantine


def _context(unique_id: str, column: str) -> str:
    # Binds a sealed value to its row and column: moved elsewhere, it does not open.
    return f"item {unique_id} {column}"


def describe(files: SealedFiles, path: Path) -> Found:
    """``path`` with its authenticated label, or why it has none."""
    try:
        label = files.label(path)
        if label is None:
            return Found(path, None, "format 2 file without a label")
        return Found(path, Description.from_bytes(label))
    except OutboxDamagedError as error:
        return Found(path, None, str(error))
    except OSError as error:
        return Found(path, None, f"unreadable ({error.strerror})")


class Recovery:
    """The accounting of the outbox's files, mixed into `Outbox` (which provides the
    attributes below)."""

    directory: Path
    bundles: Path
    contents: Path
    files: SealedFiles
    quarantine: Quarantine
    _cipher: OutboxCipher
    _clock: Callable[[], float]
    _db: sqlite3.Connection
    _lock: threading.RLock
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def _row_opens(self, row: sqlite3.Row) -> bool:
        try:
            for column in ("personal", "last_error", "acknowledgement"):
                if row[column] is not None:
                    self._cipher.open(row[column], _context(row["unique_id"], column))
        except OutboxDamagedError:
            return False
        return True

    def _file_problem(self, row: sqlite3.Row) -> str | None:
        """Why the row's bundle file cannot serve it, or None."""
        if row["bundle"] is None:
            return None
        path = self.bundles / row["bundle"]
        if not path.exists():
            return "bundle file missing"
        found = describe(self.files, path)
        if found.description is None:
            return f"bundle file {found.problem}"
        said = found.description
        if (said.unique_id, said.size, said.sha256) != (row["unique_id"], row["size"],
                                                       row["sha256"]):
            return "bundle file damaged (it is not this item's)"
        return None

    def _unreferenced(self, directory: Path, referenced: set[str]) -> Iterator[Found]:
        """The files of ``directory`` no row names; temporary files (unfinished writes,
        never promised to anyone) are removed on the way."""
        for path in sorted(directory.iterdir()):
            if path.name in referenced or not path.is_file():
                continue
            if path.name.startswith(TEMP_PREFIX):
                log.info("outbox: removing %s, an unfinished write", path.name)
                path.unlink(missing_ok=True)
                continue
            yield describe(self.files, path)

    def _recover(self) -> Repair:
        """Account for every bundle file at open: items caught mid-send go back to pending;
        a row whose file is missing or damaged takes a sound spare copy of the same item if
        there is one, else fails (never dropped); a file no row names is rebuilt into the
        queue, deleted when the host has its item or a sound copy already serves it, and
        put in quarantine otherwise (it does not open, or it would replace nothing)."""
        now, repair = self._clock(), Repair()
        delete: list[tuple[Path, str]] = []
        aside: list[tuple[Path, str]] = []
        with self._transaction() as db:
            db.execute("UPDATE items SET state = 'pending', updated = ? WHERE state = 'sending'",
                       (now,))
            rows = {r["unique_id"]: r for r in db.execute("SELECT * FROM items").fetchall()}
            referenced = {r["bundle"] for r in rows.values() if r["bundle"] is not None}
            spares: dict[str, list[Found]] = {}
            for found in self._unreferenced(self.bundles, referenced):
                if found.description is None:
                    aside.append((found.path, found.problem))
                else:
                    spares.setdefault(found.description.unique_id, []).append(found)
            served = set()  # items whose own file is sound, or that need none any more
            for unique_id, row in rows.items():
                if row["purged"] is not None or row["state"] == ItemState.DONE \
                        or self._check_row(db, row, spares, now):
                    served.add(unique_id)
            left = [(uid, found) for uid, found in spares.items() if found]
            # Oldest first: rebuilt rows keep one patient's deposits in their order.
            for unique_id, copies in sorted(left, key=lambda kv: min(
                    f.description.created for f in kv[1] if f.description)):
                if unique_id not in rows:
                    # A row lost with the database (or an add cut between its rename and
                    # its commit): the item is rebuilt and sent; the host is idempotent.
                    first, *copies = copies
                    self._rebuild(db, first, now)
                    repair.rebuilt += 1
                    assert first.description is not None
                    other = [f for f in copies if f.description is not None
                             and f.description.sha256 != first.description.sha256]
                    aside += [(f.path, "other bytes under the uniqueId of a rebuilt item")
                              for f in other]
                    copies = [f for f in copies if f not in other]
                elif unique_id not in served:
                    aside += [(f.path, "a copy of an item whose own file is not sound, but "
                               "not the same bytes") for f in copies]
                    continue
                done = unique_id in rows and rows[unique_id]["state"] == ItemState.DONE
                why = "its item was acknowledged" if done else "another copy of the same item"
                delete += [(f.path, why) for f in copies]
        for path, why in delete:
            log.info("outbox: removing %s: %s", path.name, why)
            path.unlink(missing_ok=True)
        for path, why in aside:
            self.quarantine.put(path, why, "bundles")
        repair.removed, repair.quarantined = len(delete), len(aside)
        if repair.rebuilt:
            log.warning("outbox: %d item(s) rebuilt from their files", repair.rebuilt)
        return repair

    def _check_row(self, db: sqlite3.Connection, row: sqlite3.Row,
                   spares: dict[str, list[Found]], now: float) -> bool:
        """Check a waiting item's row and file; True when its file is sound (or made sound
        with a spare copy), else the item is failed with the reason, never dropped."""
        reason = None
        if not self._row_opens(row):
            # Unreadable anyway: blanked, so that listing the outbox still works.
            db.execute("UPDATE items SET personal = NULL, last_error = NULL, "
                       "acknowledgement = NULL WHERE id = ?", (row["id"],))
            reason = "row damaged (its sealed fields fail authentication)"
        problem = self._file_problem(row)
        same = [f for f in spares.get(row["unique_id"], []) if f.description is not None
                and (f.description.size, f.description.sha256) == (row["size"], row["sha256"])]
        if problem is not None and same:
            db.execute("UPDATE items SET bundle = ? WHERE id = ?", (same[0].path.name,
                                                                   row["id"]))
            spares[row["unique_id"]].remove(same[0])
            log.warning("outbox: item %d takes its spare copy %s (%s)", row["id"],
                        same[0].path.name, problem)
            problem = None
        reason = reason or problem
        if reason is not None:
            db.execute("UPDATE items SET state = 'failed', last_error = ?, cause = 'damaged', "
                       "updated = ? WHERE id = ?", (self._cipher.seal_text(
                           f"outbox: {reason}", _context(row["unique_id"], "last_error")),
                           now, row["id"]))
        return problem is None

    def _rebuild(self, db: sqlite3.Connection, found: Found, now: float) -> None:
        said = found.description
        assert said is not None
        personal = json.dumps({"patient": said.patient, "metadata": dict(said.metadata)},
                              ensure_ascii=False, sort_keys=True)
        db.execute(
            "INSERT INTO items (unique_id, patient_tag, personal, bundle, size, sha256, state, "
            "attempts, next_attempt, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            (said.unique_id, self._cipher.tag(said.patient),
             self._cipher.seal(personal.encode(), _context(said.unique_id, "personal")),
             found.path.name, said.size, said.sha256, now, said.created, now))
        log.warning("outbox: item %s rebuilt from %s", said.unique_id, found.path.name)

    def _rows(self) -> tuple[dict[str, sqlite3.Row], dict[str, str]]:
        """Every row by uniqueId, and the document copies waiting items name (name ->
        uniqueId)."""
        with self._lock:
            rows = {r["unique_id"]: r for r in self._db.execute("SELECT * FROM items")}
        kept: dict[str, str] = {}
        for row in rows.values():
            if row["state"] != ItemState.DONE and row["personal"] is not None \
                    and self._row_opens(row):
                name = json.loads(self._cipher.open(row["personal"], _context(
                    row["unique_id"], "personal")))["metadata"].get(CONTENT_KEY)
                if isinstance(name, str):
                    kept[name] = row["unique_id"]
        return rows, kept

    def sweep_contents(self) -> int:
        """Account for the document copies of ``contents/`` (those queued by reference,
        agent/core/deposit.py): kept while a pending or failed item names them; deleted when
        the host has their item, or their item has another sound copy; put in quarantine
        when they do not open, or when no item exists for them (a deposit cut before it was
        queued: the document is kept for a person, it cannot be sent without its signed
        bundle). Returns how many files left ``contents/``."""
        rows, kept = self._rows()
        gone = 0
        for found in self._unreferenced(self.contents, set(kept)):
            said = found.description
            row = rows.get(said.unique_id) if said is not None else None
            if said is None:
                self.quarantine.put(found.path, found.problem, "contents")
            elif row is None:
                self.quarantine.put(found.path, "no item for it (a deposit cut before it "
                                    f"was queued), uniqueId {said.unique_id}", "contents")
            elif row["state"] == ItemState.DONE:
                log.info("outbox: removing %s: its item was acknowledged", found.path.name)
                found.path.unlink(missing_ok=True)
            elif self._content_sound(said.unique_id, kept):
                log.info("outbox: removing %s: another copy of the same item", found.path.name)
                found.path.unlink(missing_ok=True)
            else:
                self.quarantine.put(found.path, "a copy of an item whose own copy is missing "
                                    f"or damaged, uniqueId {said.unique_id}", "contents")
            gone += 1
        return gone

    def _content_sound(self, unique_id: str, kept: dict[str, str]) -> bool:
        names = [name for name, owner in kept.items() if owner == unique_id]
        said = describe(self.files, self.contents / names[0]).description if names else None
        return said is not None and said.unique_id == unique_id

    def _restore(self, part: str, home: Path, wanted: Callable[[Description, str], bool]
                 ) -> int:
        restored = 0
        for path in sorted(self.quarantine.root.glob(f"*/{part}/*")):
            said = describe(self.files, path).description
            if said is None or (home / path.name).exists() or not wanted(said, path.name):
                continue
            os.replace(path, home / path.name)
            fsync_dir(home)
            log.warning("outbox: %s brought back from %s", path.name, path.parent)
            restored += 1
        return restored

    def recover(self) -> Repair:
        """Bring back from ``quarantine/`` the files that open now (say, the key was
        restored) of items the outbox does not have, and the document copies such items
        name; then account for everything (`dmp-agent outbox --recover`). The rest stays in
        quarantine, and so do the damaged databases put there."""
        known, _ = self._rows()
        restored = self._restore("bundles", self.bundles,
                                 lambda said, _name: said.unique_id not in known)
        repair = self._recover()
        _, kept = self._rows()
        restored += self._restore("contents", self.contents,
                                  lambda said, name: kept.get(name) == said.unique_id)
        repair.quarantined += self.sweep_contents()
        repair.restored = restored
        return repair


def recovery_record(repair: Repair, reason: str, aside: Path | None, now: float) -> str:
    """What the database keeps of a rebuild (meta ``recovery``), for the page and doctor."""
    return json.dumps({"when": now, "reason": reason, "rebuilt": repair.rebuilt,
                       "quarantine": str(aside) if aside else ""})


def read_record(value: str | None) -> dict[str, Any] | None:
    try:
        record = json.loads(value) if value else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


__all__ = ["QUARANTINE", "Quarantine", "QuarantineReport", "Recovery", "Repair",
           "describe", "quarantine_report"]
