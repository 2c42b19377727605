"""The patient's side in the sandbox: a post office (`dmp-host notify mailbox`), the
notification sender (`dmp-host notify run`) and the patient portal (`dmp-host portal serve`),
each its own process beside the host; and the patient at home, who reads her email and uses
the portal's forms over HTTP exactly as a browser posts them (cookie, CSRF token, Origin)."""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import html
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agent.i18n import _

from .services import free_port, say, service

COOKIE = "__Host-dmp-portail"
PATIENT_EMAIL = "claire.martin@example.org"
# The password the sandbox's patient chooses at her first sign-in (written on the sandbox's
# own sheet, so that a person can sign in after the scenario with `--keep`).
SANDBOX_PASSWORD = "bac à sable du DMP, pas en vrai"


@dataclass
class PostOffice:
    """The sandbox's mail: every message the host sends, as NNNN.eml files."""

    directory: Path
    url: str

    def messages(self) -> list[tuple[Path, email.message.EmailMessage]]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)  # the default policy's
            found.append((path, message))
        return found

    def wait_for(self, wanted: Callable[[email.message.EmailMessage], bool], *,
                 after: int = 0, timeout: float = 30.0) -> tuple[Path, email.message.EmailMessage]:
        """The first message past the ``after`` first ones that ``wanted`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for path, message in self.messages()[after:]:
                if wanted(message):
                    return path, message
            if time.monotonic() > deadline:
                raise SystemExit(f"sandbox: the expected email did not arrive in "
                                 f"{self.directory}")
            time.sleep(0.1)


def body_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return "" if part is None else str(part.get_content())


@contextlib.contextmanager
def patient_side(state: Path, database_url: str, bin_dir: Path
                 ) -> Iterator[tuple[PostOffice, str]]:
    """The post office, the sender and the portal running; yields (post office, portal
    address as a person types it)."""
    smtp_port, portal_port = free_port(), free_port()
    office = PostOffice(state / "mail", f"smtp://127.0.0.1:{smtp_port}")
    host = str(bin_dir / "dmp-host")
    with contextlib.ExitStack() as stack:
        stack.enter_context(service(
            [host, "notify", "mailbox", "--port", str(smtp_port), "--dir",
             str(office.directory)], state / "mailbox.log", smtp_port, name="the mailbox"))
        stack.enter_context(service(
            [host, "portal", "serve", "--database", database_url, "--smtp", office.url,
             "--port", str(portal_port), "--uds", str(state / "portal.sock")],
            state / "portal.log", portal_port,
            name="the patient portal"))
        stack.enter_context(service(
            [host, "notify", "run", "--database", database_url, "--smtp", office.url,
             "--interval", "0.5"], state / "notify.log", None, name="the sender"))
        yield office, f"http://localhost:{portal_port}"


@dataclass
class Browser:
    """The portal's forms posted as a browser posts them: its cookie, the page's CSRF
    token and the portal's Origin. (httpx keeps no Secure cookie on plain http, which
    browsers do on localhost: the cookie is carried here.)"""

    base: str
    cookie: str | None = None
    page: str = ""
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def _send(self, method: str, path: str, data: dict[str, str] | None = None) -> str:
        headers = {"origin": self.base}
        if self.cookie:
            headers["cookie"] = f"{COOKIE}={self.cookie}"
        response = self.client.request(method, self.base + path, data=data, headers=headers)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name == COOKIE:
                self.cookie = rest.split(";")[0] or None
        if response.status_code == 303:
            return self._send("GET", response.headers["location"])
        self.page = response.text
        return self.page

    def get(self, path: str) -> str:
        return self._send("GET", path)

    def post(self, path: str, **form: str) -> str:
        token = re.search(r'name="csrf" value="([^"]+)"', self.page)
        data = {**form, **({"csrf": html.unescape(token.group(1))} if token else {})}
        return self._send("POST", path, data)

    def error(self) -> str | None:
        found = re.search(r'<p class="error"[^>]*>(.*?)</p>', self.page, re.S)
        return None if found is None else html.unescape(found.group(1))


def table_rows(page: str) -> list[str]:
    """The history table's rows as text, one line each."""
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", " ", cell)) for cell in
                 re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells:
            rows.append(" | ".join(" ".join(cell.split()) for cell in cells))
    return rows


def patient_at_home(office: PostOffice, portal: str, ins: str, access_code: str,
                    doctor_id: str, doctor_name: str) -> None:
    """The patient signs in (sheet code, emailed code, password), reads who looked at her
    DMP and blocks ``doctor_id``."""
    browser = Browser(portal.replace("localhost", "127.0.0.1"))
    seen = len(office.messages())
    browser.get("/connexion")
    browser.post("/connexion", ins=ins, secret=access_code)
    if browser.error():
        raise SystemExit(f"sandbox: the portal refused the sheet's code: {browser.error()}")
    path, message = office.wait_for(lambda m: "code de connexion" in str(m["Subject"]),
                                    after=seen)
    code = re.search(r"\b(\d{6})\b", str(message["Subject"]))
    assert code is not None
    say(_("email received: « {subject} » ({file})").format(subject=message["Subject"],
                                                          file=path.name))
    browser.post("/code", code=code.group(1))
    browser.post("/mot-de-passe", password=SANDBOX_PASSWORD, again=SANDBOX_PASSWORD)
    if browser.error():
        raise SystemExit(f"sandbox: the portal refused the sign-in: {browser.error()}")
    say(_("signed in to the portal (the sheet's code, the code received, a password "
          "chosen)"))
    chain = re.search(r'id="chain">(.*?)</p>', browser.page, re.S)
    if chain:
        say(html.unescape(chain.group(1)))
    rows = table_rows(browser.page)  # the professionals' accesses, newest first
    for row in rows[:8]:
        say(_("history: {row}").format(row=row))
    if len(rows) > 8:
        say(_("... ({count} more)").format(count=len(rows) - 8))
    browser.get("/professionnels")
    browser.post("/professionnels/blocage", professionnel=doctor_id, bloquer="oui")
    if browser.error() or "ne peut plus accéder" not in browser.page:
        raise SystemExit(f"sandbox: blocking failed: {browser.error()}")
    # The portal's own French words, quoted as the patient reads them.
    say(_("she blocks {doctor}: « {portal} »").format(
        doctor=doctor_name, portal="Ce professionnel ne peut plus accéder à votre DMP."))
    browser.post("/deconnexion")
