"""The one error every CDA reader, builder and check raises: a stable ``code`` the host turns
into an OperationOutcome and the agent into a refusal, and a message in French then English."""

from __future__ import annotations

from ..fhir import WireError


class CdaError(WireError):
    """A CDA document refused: ``code`` is stable (docs/cda.md lists them); ``message`` says
    what and where; ``rule`` and ``location`` are the failing schematron assertion's id and
    XPath when a schematron refused it."""

    def __init__(self, code: str, message: str, *, rule: str | None = None,
                 location: str | None = None) -> None:
        super().__init__(code, message)
        self.rule = rule
        self.location = location
