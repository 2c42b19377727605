"""A reference Pro Santé Connect: the national OpenID provider of health professionals, as the
DMP host's tests and the sandbox need it (docs/psc.md).

It is a service of its own, like the host: `dmp-host psc serve` runs it on its own port with
its own TLS certificate, and the host only meets it over HTTPS (discovery, JWKS). Nothing
here imports `agent`, `cardreader` or the host's database.

- `directory`: the professionals it knows (`professionals.json`) and their PSC claims;
- `keys`: the signing keys, rotated with a grace period (JWKS);
- `logins`: pending logins (CIBA requests and browser authorizations) and their states;
- `app`: the HTTP endpoints (discovery, JWKS, authorize, token, CIBA, the e-CPS app's);
- `vecps`, `vecps_cli`: the virtual e-CPS phone app (`dmp-vecps`).
"""
