"""Pseudonymous customer references for logs: a keyed hash (HMAC-SHA256) of the customer id.

The service writes prediction and trigger logs with :func:`customer_ref`; monitoring hashes the
purchase ids it joins them with by the same key, so joins still work without raw ids in the
logs. The key is ``privacy.log_hmac_secret``: there is no fallback (not an API key, not a
constant), and :func:`log_key` refuses to run pseudonymised without one.
"""

from __future__ import annotations

import hashlib
import hmac

from tenure.settings import Settings, SettingsError

REF_LENGTH = 16
"""Hex characters kept of the HMAC (64 bits: no collision among billions of customers in practice)."""


def logs_are_pseudonymous(settings: Settings) -> bool:
    """Whether logs carry pseudonyms: ``privacy.pseudonymize_logs``, else on under the production profile.

    ``serving.pseudonymize_customer_ids`` (the older switch) turns it on too.
    """
    if settings.privacy.pseudonymize_logs is not None:
        return settings.privacy.pseudonymize_logs
    return settings.serving.pseudonymize_customer_ids or settings.feast.profile == "production"


def log_key(settings: Settings) -> bytes | None:
    """The HMAC key of log pseudonyms, or None when logs keep raw ids.

    Raises
    ------
    SettingsError
        When logs must be pseudonymised (see :func:`logs_are_pseudonymous`) and
        ``privacy.log_hmac_secret`` is not set; the message says how to set it.
    """
    if not logs_are_pseudonymous(settings):
        return None
    secret = settings.privacy.log_hmac_secret
    if secret is None or not secret.get_secret_value():
        why = ("the production profile pseudonymises logs" if settings.privacy.pseudonymize_logs is None
               else "privacy.pseudonymize_logs is on")
        raise SettingsError(
            f"{why}, but privacy.log_hmac_secret is not set (env TENURE_PRIVACY__LOG_HMAC_SECRET): set a random "
            "secret of at least 16 characters, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, "
            "and keep it stable; or set privacy.pseudonymize_logs: false to log raw ids")
    return secret.get_secret_value().encode()


def customer_ref(key: bytes | None, customer_id: str) -> str:
    """The customer id as written to logs: the first 16 hex characters of HMAC-SHA256, or the id without a key."""
    if key is None:
        return customer_id
    return hmac.new(key, str(customer_id).encode(), hashlib.sha256).hexdigest()[:REF_LENGTH]
