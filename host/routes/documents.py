"""MHD document endpoints under /fhir: ITI-65 deposit, Binary upload, ITI-67 search, ITI-68
retrieve, DocumentReference read and conditional PATCH (docs/host-documents.md)."""

from __future__ import annotations

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from policies import Action
from wire.mhd import FHIR_JSON, JSON_PATCH, Patient, WireError

from .. import audit, capability
from ..actors import access_mode
from ..bodies import read_body
from ..documents import deposit as deposit_module
from ..documents import patch as patch_module
from ..documents import retrieve, search
from ..documents.uploads import Uploads
from ..errors import HostError, bad_request
from ..state import host_state

MAX_PATCH = 64 * 1024


def fhir(content: object, status: int = 200, headers: dict[str, str] | None = None
         ) -> JSONResponse:
    return JSONResponse(content, status_code=status, media_type=FHIR_JSON, headers=headers)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


async def provide(request: Request) -> Response:
    """
    summary: ITI-65 Provide Document Bundle (deposit)
    description: >
      A transaction Bundle (PDSm comprehensive provide bundle) with one SubmissionSet List,
      its DocumentReferences, their contents (inline Binary entries, or `Binary/<id>` of a
      body sent before with POST /fhir/Binary) and exactly one signature document (type
      E1762: an IHE DSG detached XAdES signature whose manifest names each document by
      its uniqueId and SHA-256, signed with the author's CPS signature key).
      All or nothing; idempotent on the submission set and document uniqueIds (a replay is
      answered 200 with the stored locations and an informational outcome).
      Refusals (OperationOutcome, code in urn:dmp:host:error): 400 malformed bundle or
      metadata (unknown-type, class-type-mismatch, unknown-format, unknown-confidentiality,
      unknown-facility-type, unknown-practice-setting, size-mismatch, hash-mismatch,
      signature-missing, signature-malformed), 403 (author-mismatch, bad-signature,
      signature-wrong-signer, signature-cert-untrusted, signature-cert-revoked,
      signature-manifest-mismatch, and the access rules: dossier-absent, dossier-closed,
      profession-may-not-write...), 409 (duplicate-unique-id, submission-set-conflict),
      413 document-too-large.
    requestBody:
      content:
        application/fhir+json: {}
    responses:
      200:
        description: transaction-response Bundle, one entry per request entry, in order.
      400: {description: Malformed bundle or metadata}
      403: {description: Refused by the rules or the signature checks}
      409: {description: uniqueId already used otherwise}
      413: {description: Document larger than the host's limit}
    """
    actor = host_state(request).authenticator.session(request)
    mode = access_mode(request)
    status, bundle = await deposit_module.deposit(request, host_state(request), actor, mode)
    return fhir(bundle, status)


async def upload_binary(request: Request) -> Response:
    """
    summary: Upload a document body before the deposit
    description: >
      The raw body (any content type, streamed to the store, never held whole in memory),
      at most the host's max_document_size (413 beyond). Answers a Binary whose id the
      deposit's DocumentReference references as attachment.url `Binary/<id>` within 24 h;
      only the same professional may reference it.
    requestBody:
      content:
        application/octet-stream: {}
    responses:
      201: {description: 'Binary (id, contentType, size) with Location'}
      413: {description: Body larger than the host's limit}
    """
    host = host_state(request)
    actor = host.authenticator.session(request)
    content_type = request.headers.get("content-type", "application/octet-stream")
    content_type = content_type.split(";")[0].strip().lower()
    limit = host.settings.max_document_size
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        from ..blobs import too_large

        raise too_large(limit)
    blob = await host.blobs.put_stream(request.stream(), limit)
    token = Uploads(host.blobs).record(blob, content_type, actor.id_nat_ps, host.clock())
    return fhir({"resourceType": "Binary", "id": token, "contentType": content_type,
                 "meta": {"tag": [{"code": "upload"}]}, "size": blob.size}, 201,
                {"location": f"{base_url(request)}/Binary/{token}"})


async def read_binary(request: Request) -> Response:
    """
    summary: ITI-68 Retrieve Document (the bytes, or a FHIR Binary)
    description: >
      The document's content as deposited, streamed with its mime type. `id` is the
      DocumentReference id (attachment.url is `Binary/<id>`). READ decision, traced. With
      `Accept: application/fhir+json` (and not the document's own type), the same content
      as a FHIR Binary resource (base64 `data`), as FHIR's Binary read and the PDSM4DMP
      draft's TD3.2 offer.
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: The bytes, or a Binary resource}
      403: {description: Refused by the access rules}
      404: {description: No such document}
    """
    host = host_state(request)
    actor = host.authenticator.session(request)
    resource_id = request.path_params["id"]
    row = retrieve.readable(host, actor, access_mode(request), resource_id)
    if _wants_fhir_resource(request.headers.get("accept", ""), row.mime_type):
        chunks, length = retrieve.binary_resource(host, row, resource_id)
        return StreamingResponse(chunks, media_type=FHIR_JSON,
                                 headers={"content-length": str(length),
                                          "x-content-sha256": row.sha256})
    return StreamingResponse(
        retrieve.body(host, row), media_type=row.mime_type,
        headers={"content-length": str(row.size), "etag": f'"{row.sha256}"',
                 "x-content-sha256": row.sha256},
    )


def _wants_fhir_resource(accept: str, mime_type: str) -> bool:
    """The client asks for FHIR JSON (``application/fhir+json``, or the older
    ``application/json+fhir``) and not for the document's own type."""
    asked = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(asked & {FHIR_JSON, "application/json+fhir"}) and mime_type.lower() not in asked


async def read_reference(request: Request) -> Response:
    """
    summary: Read one DocumentReference
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: The DocumentReference (ETag W/"<versionId>")}
      403: {description: Refused by the access rules}
      404: {description: No such document}
    """
    host = host_state(request)
    actor = host.authenticator.session(request)
    row = retrieve.readable(host, actor, access_mode(request), request.path_params["id"])
    return fhir(row.resource, headers={"etag": f'W/"{row.version_id}"'})


class DocumentReferences(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        """
        summary: ITI-67 Find Document References
        description: >
          `patient` (Patient/<INS>) or `patient.identifier` (urn:oid:<INS OID>|<INS>) and
          `status` are mandatory; every parameter of PDSm 3.1.1 and MHD ITI-67 is served
          (docs/wire-search.md; GET /fhir/metadata lists them). Tokens honour system|code,
          |code and code; values OR'ed by commas, repeated parameters AND'ed. Unknown
          parameters are ignored and named in an OperationOutcome entry (search.mode
          outcome), or refused (400) with `Prefer: handling=strict`. Only what the rules
          let the caller see is returned; the `next` link carries an opaque _cursor.
        parameters:
          - {name: Prefer, in: header, required: false, schema: {type: string},
             description: "handling=strict: an unknown parameter is a 400"}
        responses:
          200: {description: searchset Bundle}
          400: {description: 'Malformed or incomplete query (OperationOutcome, expression:
                the parameter)'}
          403: {description: The dossier is closed to the caller}
        """
        host = host_state(request)
        actor = host.authenticator.session(request)
        try:
            parsed = search.parse_request(request.url.query, request.headers.get("prefer"))
            mode = access_mode(request)
            audit.names_patient(parsed.query.patient.ins, actor, mode, Action.SEARCH.value)
            return Response(search.search(host, actor, mode, parsed.query,
                                          base=base_url(request), ignored=parsed.ignored),
                            media_type=FHIR_JSON)
        except search.SearchRefused as error:
            current = audit.current()
            if current is not None:
                current.error_code = error.code  # the reason a refusal is traced with
            return fhir(error.outcome(), error.status)

    async def patch(self, request: Request) -> Response:
        """
        summary: Update document metadata (conditional PATCH, JSON Patch)
        description: >
          `identifier=urn:ietf:rfc:3986|<uniqueId>` (or the bare uniqueId), with or without
          `patient` / `patient.identifier`, or `identifier=urn:dmp:host:document-id|<id>`.
          Without a patient, a uniqueId two patients hold is a 412 (identifier-not-selective).
          Body application/json-patch+json.
          Only status (current -> entered-in-error: delete, author only), securityLabel
          (MASQUE_PS, INVISIBLE_PATIENT) and the PDSm isArchived extension may change; each
          change makes a new meta.versionId. If-Match W/"<versionId>" is honoured.
        responses:
          200: {description: The updated DocumentReference}
          400: {description: Malformed patch or identifier}
          403: {description: Refused by the access rules}
          404: {description: No such document}
          405: {description: The patch touches an element that may not change}
          412: {description: 'If-Match does not match the current version, or the uniqueId is
                not selective (two patients)'}
          415: {description: Not application/json-patch+json}
        """
        host = host_state(request)
        actor = host.authenticator.session(request)
        mode = access_mode(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON_PATCH:
            raise HostError(415, "unsupported-media-type",
                            f"Corps attendu en {JSON_PATCH} / a JSON Patch is expected",
                            issue_type="not-supported")
        params = request.query_params
        identifier = params.get("identifier")
        if not identifier or set(params) - {"identifier", "patient", "patient.identifier"}:
            raise bad_request("invalid-identifier",
                              "PATCH DocumentReference?identifier=<system>|<value>")
        patient_ins = None
        try:
            if "patient.identifier" in params:
                patient_ins = Patient.from_token(params["patient.identifier"]).ins
            elif "patient" in params:
                patient_ins = Patient(params["patient"].removeprefix("Patient/")).ins
        except WireError as error:
            raise bad_request(error.code, f"Patient mal désigné / {error.message}",
                              expression="patient") from None
        body = await read_body(request, MAX_PATCH)
        resource = patch_module.patch(host, actor, mode, identifier=identifier,
                                      patient_ins=patient_ins, body=body,
                                      if_match=request.headers.get("if-match"))
        return fhir(resource, headers={"etag": f'W/"{resource["meta"]["versionId"]}"'})


routes: list[BaseRoute] = [
    Route("/fhir", provide, methods=["POST"]),
    Route("/fhir/Binary", upload_binary, methods=["POST"]),
    Route("/fhir/Binary/{id}", read_binary, methods=["GET"]),
    Route("/fhir/DocumentReference", DocumentReferences, methods=["GET", "PATCH"]),
    Route("/fhir/DocumentReference/{id}", read_reference, methods=["GET"]),
    Route("/fhir/metadata", capability.metadata, methods=["GET"]),
]
