"""One Redis client for the service's own keys (trigger stream, event idempotency), from Feast's connection string.

The production profile already names its Redis in ``feast.redis_connection_string``
(``host:port[,db=N,password=...,ssl=true]``, Feast's format); the service's own keys live in the
same server, under a ``tenure:`` prefix of their own, so one server is configured once.
"""

from __future__ import annotations

from typing import Any


def parse_connection_string(text: str) -> dict[str, Any]:
    """Feast's Redis connection string -> keyword arguments of ``redis.Redis``.

    Raises
    ------
    ValueError
        When the host:port part or an option is not understood (the message quotes it).
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or ":" not in parts[0]:
        raise ValueError(f"feast.redis_connection_string must start with host:port, got {text!r}")
    host, _, port = parts[0].rpartition(":")
    try:
        kwargs: dict[str, Any] = {"host": host, "port": int(port)}
    except ValueError:
        raise ValueError(f"feast.redis_connection_string: port {port!r} is not a number") from None
    for option in parts[1:]:
        name, _, value = option.partition("=")
        name = name.strip().lower()
        if name == "db":
            kwargs["db"] = int(value)
        elif name == "password":
            kwargs["password"] = value
        elif name in ("username", "user"):
            kwargs["username"] = value
        elif name == "ssl":
            kwargs["ssl"] = value.strip().lower() in ("1", "true", "yes")
        else:
            raise ValueError(f"feast.redis_connection_string: unknown option {option!r} "
                             "(known: db, password, username, ssl)")
    return kwargs


def redis_client(connection_string: str, timeout_s: float = 5.0):
    """A ``redis.Redis`` client (connections are made lazily, so this never blocks)."""
    import redis

    return redis.Redis(**parse_connection_string(connection_string), socket_timeout=timeout_s,
                       socket_connect_timeout=timeout_s)
