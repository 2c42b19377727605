"""The patient portal (the patient's side of the reference host): sign-in with the secrets
sheet's code then a one-time code by email, the access history, masking, blocking, the
médecin traitant, oppositions, closure. Served by ``dmp-host portal serve``."""
