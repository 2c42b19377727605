"""The reference INS service (INSi-like): the national identity service the agent asks for
a patient's INS, and the population it answers from (docs/ins.md).

- `host.ins.query`: the three questions the service answers (search from the Vitale card,
  search from typed traits, verification of a known INS), over the `patients` table that
  `host.seed` fills from `host/seed_identities.json` and `host.ins.population` grows.
- `wire.ins` (both sides read it): the answers as FHIR resources shaped like FR Core's
  `fr-core-patient-ins`, and the identity's RNIV status as FR Core's identity-reliability.
- `host.ins.population`: a seeded generator of a national-like population.
- `host.ins.cli`: ``dmp-host seed --ins-people N`` and ``dmp-host ins correct``.

The routes are `host.routes.ins`. The real INSi is a SOAP service whose contract is not
public; only its identifiers and the FHIR shapes of the French core profiles are.
"""
