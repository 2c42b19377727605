"""Documents on the reference host: IHE MHD as profiled by PDSm (docs/host-documents.md).

`deposit` (ITI-65), `search` (ITI-67), `retrieve` (ITI-68 and DocumentReference read),
`patch` (metadata changes) serve the routes of `host.routes.documents`; `validate` and
`signing` check what a deposit declares, `uploads` holds bodies streamed before a deposit,
`records` maps the `documents` rows to the wire and to the access rules.
"""
