"""The professionals the reference PSC knows, and the claims it says about them.

The real PSC reads the Annuaire Santé (RPPS); ours reads `professionals.json`, the same people
as the virtual CPS cards (a test checks both agree: the host side may not import `cardreader`).
Claim names are the public ones of PSC's userinfo (docs/psc.md): ``SubjectNameID``,
``SubjectRefPro.exercices[].codeProfession``, ``codeSavoirFaire``, ``activities[]``...
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIRECTORY_FILE = Path(__file__).with_name("professionals.json")
FORMAT = "dmp-psc-professionals"


class DirectoryError(ValueError):
    """The directory file is malformed (the message names the file and the entry)."""


@dataclass(frozen=True)
class Situation:
    structure_id: str
    name: str
    mode: str
    role: str


@dataclass(frozen=True)
class Professional:
    id_nat_ps: str
    last_name: str
    first_name: str
    profession: str
    specialty: str | None
    situations: tuple[Situation, ...]

    def claims(self) -> dict[str, Any]:
        """What PSC says of this professional in the ID token and at userinfo."""
        return {
            "SubjectNameID": self.id_nat_ps,
            "preferred_username": self.id_nat_ps,
            "given_name": self.first_name,
            "family_name": self.last_name,
            "SubjectRefPro": {"exercices": [{
                "codeProfession": self.profession,
                "codeSavoirFaire": self.specialty or "",
                "nomDexercice": self.last_name,
                "prenomDexercice": self.first_name,
                "activities": [{
                    "ancienIdentifiantDeLaStructure": situation.structure_id,
                    "raisonSocialeSite": situation.name,
                    "codeModeExercice": situation.mode,
                    "codeRole": situation.role,
                } for situation in self.situations],
            }]},
        }


def load_directory(path: Path = DIRECTORY_FILE) -> dict[str, Professional]:
    """The professionals of ``path`` by idNat_PS, checked."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DirectoryError(f"{path}: unreadable directory ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
        raise DirectoryError(f"{path}: not a version 1 {FORMAT} file")
    out: dict[str, Professional] = {}
    for index, entry in enumerate(data.get("professionals") or []):
        where = f"{path}: professionals[{index}]"
        try:
            professional = Professional(
                id_nat_ps=str(entry["idNatPs"]), last_name=str(entry["lastName"]),
                first_name=str(entry["firstName"]), profession=str(entry["profession"]),
                specialty=entry.get("specialty") or None,
                situations=tuple(
                    Situation(str(s["structureId"]), str(s["name"]), str(s["mode"]),
                              str(s["role"]))
                    for s in entry["situations"]
                ),
            )
        except (KeyError, TypeError):
            raise DirectoryError(f"{where}: idNatPs, names, profession and situations "
                                 "are required") from None
        if professional.id_nat_ps in out:
            raise DirectoryError(f"{where}: idNatPs {professional.id_nat_ps} twice")
        out[professional.id_nat_ps] = professional
    return out
