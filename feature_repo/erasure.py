"""Erasure in the Feast online store (SQLite or Redis): the feature_repo room's own ``forget``.

Feast has no per-entity delete, so this removes a customer's rows the way Feast wrote them:
SQLite: the rows of each customer feature view's table whose ``entity_key`` is the customer's
serialized entity key (with ``PRAGMA secure_delete`` so the bytes are overwritten, not left in
free pages); Redis: the customer's one hash (``serialized entity key + project``), which holds
every view's features. The offline store is the feature tables under ``features_dir``
(:mod:`tenure.features.erasure`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from tenure.feature_repo.definitions import CUSTOMER_ACTIVITY_VIEW, CUSTOMER_PROFILE_VIEW

if TYPE_CHECKING:
    import feast

logger = logging.getLogger(__name__)

CUSTOMER_VIEWS = (CUSTOMER_ACTIVITY_VIEW, CUSTOMER_PROFILE_VIEW)
"""The feature views keyed by customer (their online rows are personal data)."""


def _entity_keys(store: feast.FeatureStore, customer_ids: Iterable[str]) -> dict[str, bytes]:
    from feast.infra.key_encoding_utils import serialize_entity_key

    version = store.config.entity_key_serialization_version
    return {cid: serialize_entity_key(EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(string_val=cid)]),
                                      entity_key_serialization_version=version)
            for cid in dict.fromkeys(map(str, customer_ids))}


def _kind(store: feast.FeatureStore) -> str:
    return type(store._get_provider().online_store).__name__


def _sqlite_tables(store: feast.FeatureStore) -> list[str]:
    from feast.infra.online_stores.sqlite import _table_id

    versioning = getattr(store.config.registry, "enable_online_feature_view_versioning", False)
    return [_table_id(store.config.project, store.get_feature_view(name), versioning) for name in CUSTOMER_VIEWS]


def _sqlite_conn(store: feast.FeatureStore):
    online = store._get_provider().online_store
    return online._get_conn(store.config)


def count_online(store: feast.FeatureStore, customer_ids: Iterable[str]) -> dict[str, int]:
    """Online records held per customer id (SQLite: feature rows; Redis: 1 per hash); only ids with records."""
    keys = _entity_keys(store, customer_ids)
    found: dict[str, int] = {}
    if not keys:
        return found
    if _kind(store) == "RedisOnlineStore":
        client = _redis_client(store)
        for cid, key in keys.items():
            n = client.exists(_redis_key(store, key))
            if n:
                found[cid] = int(n)
        return found
    conn = _sqlite_conn(store)
    by_key = {v: k for k, v in keys.items()}
    for table in _sqlite_tables(store):
        for start in range(0, len(keys), 500):
            chunk = list(keys.values())[start:start + 500]
            try:
                rows = conn.execute(f'SELECT entity_key, COUNT(*) FROM "{table}" WHERE entity_key IN '
                                    f"({','.join('?' * len(chunk))}) GROUP BY entity_key", chunk).fetchall()
            except Exception as exc:  # noqa: BLE001  table not materialized yet: nothing held there
                logger.debug("online table %s not readable: %s", table, exc)
                break
            for key, n in rows:
                cid = by_key[bytes(key)]
                found[cid] = found.get(cid, 0) + int(n)
    return found


def forget_online(store: feast.FeatureStore, customer_ids: Iterable[str]) -> int:
    """Remove these customers' online features; returns records removed (SQLite rows or Redis hashes)."""
    keys = _entity_keys(store, customer_ids)
    if not keys:
        return 0
    if _kind(store) == "RedisOnlineStore":
        client = _redis_client(store)
        removed = 0
        for start in range(0, len(keys), 500):
            chunk = [_redis_key(store, k) for k in list(keys.values())[start:start + 500]]
            removed += int(client.delete(*chunk))
        return removed
    conn = _sqlite_conn(store)
    removed = 0
    conn.execute("PRAGMA secure_delete=ON")  # deleted bytes are zeroed in the file, indexes included
    with conn:
        for table in _sqlite_tables(store):
            for start in range(0, len(keys), 500):
                chunk = list(keys.values())[start:start + 500]
                try:
                    removed += conn.execute(f'DELETE FROM "{table}" WHERE entity_key IN ({",".join("?" * len(chunk))})',
                                            chunk).rowcount
                except Exception as exc:  # noqa: BLE001  table not materialized yet
                    logger.debug("online table %s not writable: %s", table, exc)
                    break
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy of the old pages left in a WAL file
    except Exception as exc:  # noqa: BLE001  not in WAL mode: nothing to checkpoint
        logger.debug("no WAL checkpoint of the online store: %s", exc)
    return removed


def _redis_client(store: feast.FeatureStore):
    online = store._get_provider().online_store
    return online._get_client(store.config.online_store)


def _redis_key(store: feast.FeatureStore, entity_key: bytes) -> bytes:
    return entity_key + store.config.project.encode("utf-8")
