"""Running the CI-SIS schematrons (ISO Schematron, XSLT 2 query binding) on a CDA document.

The CI-SIS schematrons of ansforge/TestContenuCDA-3-0 declare ``queryBinding="xslt2"``, which
lxml's `isoschematron` (XSLT 1) cannot run; SaxonC-HE (`saxonche`) does. A schematron is
turned into XSLT once by the ISO reference pipeline (include → abstract patterns → SVRL) and
kept: beside it at installation (`compile_schematron`, `dmp-cisis-data`), else in the user's
cache (`generated_stylesheet`), sealed with the key of the files it comes from and its own
SHA-256, written atomically; each process then only compiles that XSLT (with the
schematron's base URI: its ``doc()`` calls name value-set files relative to it) and runs it
on the document; the SVRL report's failed assertions are the refusal.

The document given to Saxon is the one `wire.cda.safe_xml` already parsed (no DTD, no
entity, bounded), serialized again: Saxon never parses bytes from outside.

Saxon's processor and its compiled stylesheets are not thread-safe: one processor per
process, one lock around compiling and running (a check takes milliseconds). And SaxonC
holds Python's GIL while it works: compiling the 10 MB header schematron (10-50 s) inside a
server would freeze it, every thread, that long (measured: no other thread ran for 26 s).
So `run` and `preload` hand the work to one worker process (spawned, daemonic: it ends with
its parent), which compiles once and then checks; the caller only waits on a pipe. The
in-process functions (`run_here`, `compile_schematron`) are what that worker and
`scripts/cisis-data` call.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from lxml import etree

from .errors import CdaError

SVRL = "http://purl.oclc.org/dsdl/svrl"
# Where `scripts/cisis-data` puts the CI-SIS files (wire/cda/cisis/README.md).
DATA_DIR = Path(os.environ.get("DMP_CISIS_DIR") or Path(__file__).with_name("cisis") / "data")
PIPELINE = ("iso_dsdl_include.xsl", "iso_abstract_expand.xsl", "iso_svrl_for_xslt2.xsl")
SKELETON_DIR = "schematrons/moteur"
PIPELINE_FILES = tuple(f"{SKELETON_DIR}/{step}" for step in PIPELINE)
# Roles the CI-SIS uses for what does not make a document non-conformant.
NOT_ERRORS = frozenset({"warning", "warn", "info", "information", "note"})


@dataclass(frozen=True)
class Failure:
    """One failed assertion: its id (or its pattern's), its text and where (XPath)."""

    schematron: str
    rule: str
    text: str
    location: str
    role: str | None = None


_lock = threading.RLock()  # compiling happens inside a run
_processor: Any = None
_compiled: dict[Path, Any] = {}


def data_dir() -> Path:
    return DATA_DIR


def available(relative: str) -> bool:
    return (DATA_DIR / relative).is_file()


def _saxon() -> Any:
    global _processor
    if _processor is None:
        from saxonche import PySaxonProcessor  # a 60 MB native library: load it on first use

        _processor = PySaxonProcessor(license=False)
    return _processor


# Ours: bumped when the pipeline or what we make of its output changes, so that a cached
# stylesheet made by an older one is never used.
PIPELINE_VERSION = "1"
CACHE_VARIABLE = "DMP_CISIS_CACHE"  # where generated stylesheets are kept (tests, installs)
_MARK = b"<!-- dmp schematron cache "


def cache_dir() -> Path:
    """The user's cache of generated stylesheets (``$DMP_CISIS_CACHE``, else the platform's
    user cache: ~/.cache/dmp-agent/schematrons on Linux)."""
    chosen = os.environ.get(CACHE_VARIABLE)
    if chosen:
        return Path(chosen)
    import platformdirs  # light, and needed only when a stylesheet must be generated

    return platformdirs.user_cache_path("dmp-agent") / "schematrons"


def cache_key(sch: Path, skeleton_dir: Path | None = None) -> str:
    """SHA-256 of what the generated stylesheet depends on: our pipeline's version, the ISO
    pipeline's three stylesheets, the schematron and every schematron beside and below it
    (what its includes can name)."""
    skeleton = skeleton_dir or DATA_DIR / SKELETON_DIR
    digest = hashlib.sha256(f"pipeline {PIPELINE_VERSION}\n".encode())
    # Named relative to where they are read from: the same files moved elsewhere keep the key.
    named = [(step, skeleton / step) for step in PIPELINE] + [
        (path.relative_to(sch.parent).as_posix(), path)
        for path in (sch, *sorted(p for p in sch.parent.rglob("*.sch") if p != sch))]
    for name, path in named:
        digest.update(f"{name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _sealed(key: str, text: str) -> bytes:
    """The stylesheet behind a first line naming its key and its own SHA-256: a file cut
    short or altered is seen, not compiled."""
    body = text.encode("utf-8")
    return (_MARK + f"key={key} sha256={hashlib.sha256(body).hexdigest()} -->\n".encode()
            + body)


def _unsealed(path: Path, key: str) -> str | None:
    """The stylesheet in ``path`` when it is whole and made for ``key``; None otherwise."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    first, _, body = data.partition(b"\n")
    expected = _MARK + f"key={key} sha256={hashlib.sha256(body).hexdigest()} -->".encode()
    return body.decode("utf-8") if first == expected else None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)  # a reader sees the old file or the new one, never half
    finally:
        temporary.unlink(missing_ok=True)


def _generate(sch: Path, skeleton_dir: Path | None = None) -> str:
    """The ISO pipeline (include, abstract patterns, SVRL for XSLT 2) run on ``sch``: the
    stylesheet's text (about 5 s for the 10 MB header one)."""
    skeleton = skeleton_dir or DATA_DIR / SKELETON_DIR
    with _lock:
        processor = _saxon()
        xslt = processor.new_xslt30_processor()
        node = processor.parse_xml(xml_file_name=str(sch))  # base URI: includes resolve
        text = ""
        for step in PIPELINE:
            executable = xslt.compile_stylesheet(stylesheet_file=str(skeleton / step))
            text = executable.transform_to_string(xdm_node=node)
            node = processor.parse_xml(xml_text=text)
    return text


def compile_schematron(sch: Path, skeleton_dir: Path | None = None) -> Path:
    """Generate the stylesheet of ``sch`` and write it beside it (``<name>.sch.xsl``, sealed:
    what `dmp-cisis-data` does at installation); its path."""
    target = sch.with_name(sch.name + ".xsl")
    key = cache_key(sch, skeleton_dir)
    _write_atomically(target, _sealed(key, _generate(sch, skeleton_dir)))
    return target


def generated_stylesheet(sch: Path) -> str:
    """The stylesheet of ``sch``, generated once and kept: the one installed beside it when
    it is whole and made from these very files, else the user's cache's, else generated now
    and put in that cache (written atomically; a damaged or stale copy is made again)."""
    key = cache_key(sch)
    for path in (sch.with_name(sch.name + ".xsl"), cache_dir() / f"{key}.xsl"):
        text = _unsealed(path, key)
        if text is not None:
            return text
    text = _generate(sch)
    try:
        _write_atomically(cache_dir() / f"{key}.xsl", _sealed(key, text))
    except OSError as error:  # no cache (a read-only home): this process still checks
        import logging

        logging.getLogger(__name__).warning("schematron cache not written: %s", error)
    return text


def _executable(sch: Path) -> Any:
    executable = _compiled.get(sch)
    if executable is None:
        text = generated_stylesheet(sch)
        # Compiled with the base URI of its schematron: its doc() calls name value-set files
        # relative to it. The header schematron is 10 MB of XSLT: 10-20 s to compile, once
        # per process; SaxonC-HE cannot save the result (SEF export needs Saxon-EE), and its
        # "fast_compile" mode fails at run time in SaxonC-HE 13.1 (a NullPointerException).
        builder = _saxon().new_document_builder()
        builder.set_base_uri(sch.with_name(sch.name + ".xsl").as_uri())
        node = builder.parse_xml(xml_text=text)
        executable = _saxon().new_xslt30_processor().compile_stylesheet(stylesheet_node=node)
        _compiled[sch] = executable
    return executable


def _failures(report: str, schematron: str) -> list[Failure]:
    root = etree.fromstring(report.encode("utf-8"),
                            etree.XMLParser(resolve_entities=False, no_network=True))
    failures: list[Failure] = []
    pattern = ""
    for node in root:
        tag = etree.QName(node).localname
        if tag == "active-pattern":
            pattern = node.get("id") or node.get("name") or ""
        elif tag in ("failed-assert", "successful-report"):
            role = node.get("role")
            if (role or "").lower() in NOT_ERRORS or (tag == "successful-report" and role is None):
                continue
            text = " ".join("".join(node.itertext()).split())
            failures.append(Failure(schematron, node.get("id") or pattern, text,
                                    node.get("location") or "", role))
    return failures


def run_here(text: str, schematrons: tuple[str, ...]) -> list[Failure]:
    """Every failed assertion of ``schematrons`` on the document ``text``, in this process
    (the worker's side of `run`)."""
    failures: list[Failure] = []
    with _lock:
        processor = _saxon()
        node = processor.parse_xml(xml_text=text)
        for name in schematrons:
            report = _executable(DATA_DIR / name).transform_to_string(xdm_node=node)
            failures.extend(_failures(report, Path(name).name))
    return failures


def compile_here(schematrons: tuple[str, ...]) -> None:
    """Compile ``schematrons`` (those installed) in this process (the worker's `preload`)."""
    for name in schematrons:
        if available(name):
            with _lock:
                _executable(DATA_DIR / name)


_WORK = {"run": run_here, "compile": compile_here}


def _serve(connection: Connection, data_dir: str) -> None:
    """The worker process: run what the parent asks, one request at a time, until the
    parent goes (EOF). ``data_dir``: the parent's CI-SIS folder (not re-read from the
    environment: the parent decides)."""
    global DATA_DIR
    DATA_DIR = Path(data_dir)
    while True:
        try:
            name, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            connection.send((True, _WORK[name](*args)))
        except Exception as error:  # said to the parent, which raises it as a CdaError
            connection.send((False, f"{type(error).__name__}: {error}"[:500]))


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of a server's threads
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, str(DATA_DIR)),
                                       daemon=True, name="cda-schematrons")
        self.process.start()
        child.close()
        self.lock = threading.Lock()

    def call(self, name: str, *args: Any) -> Any:
        with self.lock:  # one request at a time: a check waits for a compilation under way
            self.connection.send((name, args))
            ok, value = self.connection.recv()
        if not ok:
            raise CdaError("cda-check-failed", "Le contrôle des schématrons a échoué / the "
                           f"schematron check failed: {value}")
        return value


_worker_lock = threading.Lock()
_worker: _Worker | None = None


def _call(name: str, *args: Any) -> Any:
    """``name`` run by the worker process (started at the first call; a new one if it
    died: killed, out of memory)."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.process.is_alive():
            _worker = _Worker()
        worker = _worker
    try:
        return worker.call(name, *args)
    except (EOFError, OSError, BrokenPipeError):
        raise CdaError("cda-check-failed", "Le contrôle des schématrons s'est interrompu, "
                       "réessayer / the schematron worker stopped: try again") from None


def run(root: etree._Element, schematrons: tuple[str, ...]) -> list[Failure]:
    """Every failed assertion of ``schematrons`` (paths in the data folder) on ``root``,
    computed by the worker process."""
    missing = [name for name in schematrons if not available(name)]
    if missing:
        raise CdaError("cisis-data-missing", "Schématrons du CI-SIS absents (dmp-cisis-data) "
                       f"/ CI-SIS schematrons not installed: {', '.join(missing)}")
    failures: list[Failure] = _call("run", etree.tostring(root, encoding="unicode"),
                                    schematrons)
    return failures


def check(root: etree._Element, schematrons: tuple[str, ...]) -> None:
    """Refuse ``root`` with its first failed assertion (`CdaError` "cda-schematron", with
    ``rule`` and ``location``); the message counts the others."""
    failures = run(root, schematrons)
    if not failures:
        return
    first = failures[0]
    more = f" (+{len(failures) - 1} autre(s) / other(s))" if len(failures) > 1 else ""
    raise CdaError("cda-schematron",
                   f"Non conforme au schématron {first.schematron} / fails the CI-SIS "
                   f"schematron: [{first.rule}] {first.text[:400]} — à / at {first.location}"
                   f"{more}", rule=first.rule, location=first.location)


def preload(schematrons: tuple[str, ...]) -> threading.Thread:
    """Compile ``schematrons`` in the worker process (the header schematron takes seconds),
    waited for by a background thread: a server calls it at start so that its first CDA is
    checked in milliseconds. Missing files are left to `run` to report."""

    def compile_all() -> None:
        try:
            _call("compile", schematrons)
        except CdaError as error:  # the first check will say it again, to its caller
            import logging

            logging.getLogger(__name__).warning("%s", error.message)

    thread = threading.Thread(target=compile_all, name="cda-schematrons", daemon=True)
    thread.start()
    return thread
