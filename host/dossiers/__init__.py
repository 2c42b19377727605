"""A DMP's state on the host: its lifecycle and who may see it (authorizations, médecins
traitants); the SQL of each, beside `host/documents/`."""
