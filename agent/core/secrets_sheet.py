"""The patient's secrets sheet: the printable A4 PDF handed over when a DMP is created.

It carries the patient's identity, the DMP identifier, the one-time access code, how to
connect and what to do with the code, the address given for the notifications and the
patient space's sign-in codes (or that none was given), and the emergency-access consents
recorded. The secrets
reach the patient on paper, not over an electronic channel (DOMAIN.md, "DMP creation"), so the
file is written owner-only and nothing here logs its content: the caller prints it and should
delete it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.client.dmp import PatientContext
from agent.config import fsync_dir
from cardreader.vitale import BirthDate

__all__ = ["EmergencyConsents", "SecretsSheet", "render_pdf", "render_pdf_apart",
           "write_private_pdf", "write_secrets_sheet"]

PORTAL_URL = "https://www.monespacesante.fr"  # where a patient opens their DMP today
FIRST_SIGN_IN = ("Première connexion à votre espace patient : votre identifiant et le code "
                 "d'accès ci-dessus, puis un code reçu à cette adresse. Vous choisirez alors "
                 "un mot de passe ; ce code ne servira plus.")
NO_ADDRESS = ("Aucune adresse électronique n'a été donnée : pas de notification ni d'espace "
              "patient tant qu'une adresse n'est pas ajoutée.")
MARGIN = 18.0  # mm
# Embedded (subset) in the PDF, so the sheet prints the same everywhere and writes any name
# (Łukasz, Nguyễn): the PDF core fonts are Latin-1 only and are not embedded, so a printer's
# substitute with other widths made the text overflow. Open licence: fonts/LICENSE.
FONT = "DejaVuSans"
FONTS = Path(__file__).resolve().parent / "fonts"
BODY = 10  # points: DejaVu Sans is about a tenth wider than Helvetica was at 11


@dataclass(frozen=True)
class EmergencyConsents:
    """The patient's three emergency-access choices, as recorded by the host."""

    regulation_centre: bool = True
    break_the_glass: bool = True
    emergency_sees_masked: bool = True

    @classmethod
    def from_host(cls, document: dict[str, object]) -> EmergencyConsents:
        """From the host's ``consents`` object (regulationCentre, breakTheGlass, ...)."""
        return cls(bool(document.get("regulationCentre", True)),
                   bool(document.get("breakTheGlass", True)),
                   bool(document.get("emergencySeesMasked", True)))


@dataclass(frozen=True)
class SecretsSheet:
    """What the sheet says. ``repr`` hides the access code (tracebacks, debug logs)."""

    first_name: str
    birth_name: str
    birth_date: str  # as on French forms, DD/MM/YYYY
    identifier: str
    access_code: str
    consents: EmergencyConsents
    created: dt.date
    created_by: str = ""  # the professional who opened it, as shown to the patient
    structure: str = ""  # where: the practice situation's name (a pharmacy, a practice)
    email: str | None = None  # where notifications and the sign-in codes go, if given

    def __repr__(self) -> str:
        return f"SecretsSheet(identifier={self.identifier!r}, access_code='****')"

    @classmethod
    def for_created_dmp(cls, patient: PatientContext, created: Mapping[str, Any],
                        created_by: str, email: str | None = None, structure: str = ""
                        ) -> SecretsSheet:
        """The sheet of a DMP the host just created (``created``: its answer; ``email``:
        the address sent with the creation, if any; ``structure``: the creator's)."""
        return cls(
            first_name=patient.first_name, birth_name=patient.birth_name,
            birth_date=display_date(patient.birth_date), identifier=created["identifier"],
            access_code=created["accessCode"],
            consents=EmergencyConsents.from_host(created.get("consents", {})),
            created=dt.date.today(), created_by=created_by, structure=structure, email=email)


def display_date(value: str) -> str:
    """DD/MM/YYYY from the host's YYYYMMDD (lunar dates keep their zeros) or ISO date."""
    with contextlib.suppress(ValueError):
        return str(BirthDate.parse(value))
    with contextlib.suppress(ValueError):
        return dt.date.fromisoformat(value).strftime("%d/%m/%Y")
    return value


def _yes_no(value: bool) -> str:
    return "OUI (accepté)" if value else "NON (refusé)"


def _french_date(value: dt.date) -> str:
    return value.strftime("%d/%m/%Y")


def render_pdf(sheet: SecretsSheet) -> bytes:
    """The sheet as an A4 PDF (French), its font embedded."""
    from fpdf import FPDF  # half a second to import: only the command that prints pays it

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_title("Fiche patient - Dossier Médical Partagé")
    pdf.set_author(sheet.created_by or "dmp-agent")
    pdf.set_creator("dmp-agent")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, MARGIN)
    pdf.add_font(FONT, "", FONTS / f"{FONT}.ttf")
    pdf.add_font(FONT, "B", FONTS / f"{FONT}-Bold.ttf")
    pdf.add_page()
    width = pdf.w - 2 * MARGIN

    def heading(text: str) -> None:
        pdf.ln(4)
        pdf.set_font(FONT, "B", 12)
        pdf.cell(width, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", BODY)

    def line(label: str, value: str, bold: bool = False) -> None:
        pdf.set_font(FONT, "", BODY)
        pdf.cell(62, 7, label)
        pdf.set_font(FONT, "B" if bold else "", BODY + 1 if bold else BODY)
        pdf.cell(width - 62, 7, value, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", BODY)

    def paragraph(text: str) -> None:
        pdf.multi_cell(width, 6, text, new_x="LMARGIN", new_y="NEXT")

    def address(email: str) -> None:
        # After its label on the same line; a long one (254 characters at most) on lines of
        # its own, smaller, so that the sheet stays one page whatever the address.
        label = "Adresse de notification et de connexion : "
        pdf.set_font(FONT, "", BODY)
        room = width - pdf.get_string_width(label)
        pdf.set_font(FONT, "B", BODY)
        bold_width = pdf.get_string_width(email)  # at BODY points; proportional to the size
        if bold_width <= room:
            line_height, size = 6.0, BODY
        else:
            pdf.set_font(FONT, "", BODY)
            pdf.cell(width, 6, label, new_x="LMARGIN", new_y="NEXT")
            label, size = "", BODY
            while size > 7 and bold_width * size / BODY > 2 * width:
                size -= 1
            line_height = size * 0.45
        if label:
            pdf.set_font(FONT, "", BODY)
            pdf.write(line_height, label)
        pdf.set_font(FONT, "B", size)
        pdf.write(line_height, email)
        pdf.set_font(FONT, "", BODY)
        pdf.ln(line_height + 1)

    pdf.set_font(FONT, "B", 18)
    pdf.cell(width, 11, "Votre Dossier Médical Partagé (DMP)", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", BODY)
    pdf.cell(width, 7, "Fiche personnelle et confidentielle - à conserver",
             align="C", new_x="LMARGIN", new_y="NEXT")

    heading("Titulaire du dossier")
    line("Prénom(s) :", sheet.first_name)
    line("Nom de naissance :", sheet.birth_name)
    line("Date de naissance :", sheet.birth_date)
    line("Dossier créé le :", _french_date(sheet.created))
    if sheet.created_by:
        line("Par :", sheet.created_by)
    if sheet.structure:
        line("Structure :", sheet.structure)

    heading("Vos identifiants")
    line("Identifiant du DMP :", sheet.identifier, bold=True)
    line("Code d'accès (usage unique) :", sheet.access_code, bold=True)
    if sheet.email:
        address(sheet.email)
        paragraph(FIRST_SIGN_IN)
    else:
        paragraph(NO_ADDRESS)

    heading("Comment accéder à votre dossier")
    paragraph(
        f"1. Rendez-vous sur {PORTAL_URL} (ou l'application Mon espace santé).\n"
        "2. Choisissez « Activer mon profil » et saisissez votre identifiant et le code "
        "d'accès ci-dessus.\n"
        "3. Choisissez ensuite votre propre mot de passe : le code d'accès ne sert qu'une "
        "fois.\n"
        "Ne communiquez jamais ce code, ni par téléphone ni par courriel : aucun "
        "professionnel ni organisme ne vous le demandera. Une fois votre accès activé, "
        "détruisez cette fiche ou rangez-la en lieu sûr."
    )

    heading("Accès en situation d'urgence (vos choix)")
    consents = sheet.consents
    line("Centre de régulation (SAMU-15) :", _yes_no(consents.regulation_centre))
    line("Accès « bris de glace » :", _yes_no(consents.break_the_glass))
    line("Masqués visibles en urgence :", _yes_no(consents.emergency_sees_masked))
    paragraph(
        "Chaque accès en urgence vous est notifié et figure dans l'historique des accès de "
        "votre dossier. Vous pouvez modifier ces choix à tout moment depuis votre espace "
        "en ligne ou auprès d'un professionnel de santé."
    )

    heading("Vos droits")
    paragraph(
        "Vous décidez quels professionnels peuvent consulter votre dossier, pouvez masquer "
        "un document, consulter l'historique des accès et fermer votre dossier à tout "
        "moment (ses données sont alors conservées 10 ans et il peut être réactivé)."
    )
    return bytes(pdf.output())


def write_secrets_sheet(sheet: SecretsSheet, path: Path) -> Path:
    """Write the PDF to ``path``, mode 0600 from its first byte (replacing an old file).

    The directory must exist: a sheet in an unexpected place is worse than an error.
    """
    return write_private_pdf(render_pdf(sheet), path)


def write_private_pdf(data: bytes, path: Path) -> Path:
    """Write ``data`` to ``path``, mode 0600 from its first byte, fsync'd, replacing an old
    file (the secrets sheet rendered by the agent core)."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if sys.platform == "win32":
        flags |= os.O_BINARY  # else the descriptor's writes turn the PDF's \n into \r\n
    fd = os.open(temp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)  # O_CREAT's mode is masked by umask: never wider, but be exact
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


RENDER_TIMEOUT = 30.0  # seconds for the child process to make the PDF


def render_pdf_apart(sheet: SecretsSheet) -> bytes:
    """`render_pdf` in a short-lived child process: the PDF library (fpdf and fontTools,
    ~20 MiB that Python would keep for the agent's whole life) never loads into the agent.
    The sheet goes through a pipe, never through a file or the command line."""
    import json
    import subprocess

    data = {"firstName": sheet.first_name, "birthName": sheet.birth_name,
            "birthDate": sheet.birth_date, "identifier": sheet.identifier,
            "accessCode": sheet.access_code, "created": sheet.created.isoformat(),
            "createdBy": sheet.created_by, "structure": sheet.structure, "email": sheet.email,
            "consents": {"regulationCentre": sheet.consents.regulation_centre,
                         "breakTheGlass": sheet.consents.break_the_glass,
                         "emergencySeesMasked": sheet.consents.emergency_sees_masked}}
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NO_WINDOW  # no console flashes by
    done = subprocess.run([sys.executable, "-m", "agent.core.secrets_sheet"],
                          input=json.dumps(data).encode(), capture_output=True,
                          timeout=RENDER_TIMEOUT, check=False, **options)
    if done.returncode != 0 or not done.stdout.startswith(b"%PDF"):
        # The child's own error, never the sheet's content (its stderr holds no secret).
        raise RuntimeError(f"secrets sheet: the PDF could not be made "
                           f"({done.stderr.decode(errors='replace').strip()[-300:]})")
    pdf: bytes = done.stdout
    return pdf


def _render_from_stdin() -> None:
    import json

    data = json.loads(sys.stdin.buffer.read())
    sheet = SecretsSheet(
        first_name=data["firstName"], birth_name=data["birthName"],
        birth_date=data["birthDate"], identifier=data["identifier"],
        access_code=data["accessCode"], consents=EmergencyConsents.from_host(data["consents"]),
        created=dt.date.fromisoformat(data["created"]), created_by=data["createdBy"],
        structure=data.get("structure", ""), email=data.get("email"))
    sys.stdout.buffer.write(render_pdf(sheet))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _render_from_stdin()
