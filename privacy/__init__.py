"""Privacy: consent scopes with their history, erasure of a person from every store with a receipt, subject access.

Every room that stores personal data owns a ``forget`` of its own store; this room composes them
(:mod:`tenure.privacy.erasure`), writes receipts and verifies. It imports the rooms below it
(``features``, ``feature_repo``, ``registry``); the stores of the rooms above it (the service's
logs) are passed in by their callers, so imports still flow one way.
"""
