"""The schema as a script to run by hand: single-node, or for a ClickHouse cluster.

Single node: exactly what `Store.migrate` runs (`create_statements`, then the tuning).

Cluster (``cluster="c1"``): per table of `TABLES`, a local table ``<name>_local`` on
every node (``ON CLUSTER``), its engine made replicated with the same version column
(``ReplacingMergeTree(rank)`` -> ``ReplicatedReplacingMergeTree(path, replica, rank)``),
and a ``Distributed`` table under the original name, which is what Vigil reads and
writes. So the worker and the CLI need no cluster setting: they see the same names.

Sharding: ReplacingMergeTree collapses duplicates only within one part set, i.e. one
shard, and readers use ``FINAL``, which a Distributed table runs per shard. Every row
of one key must therefore land on one shard: each sharding key hashes columns of the
table's ORDER BY, ``event_id`` where the table has it (an event's rows in every table
then live together, and a redelivered batch replaces its rows on the shard that has
them). `SHARDING_KEYS` names the key of each table without ``event_id``.

The every-event ``ingest`` path: a Null ``ingest_local`` on every node, a Distributed
``ingest`` over it (same sharding as ``events``), and the two materialized views from
``ingest_local`` into ``events_local`` / ``checks_local`` under their single-node names,
so `Store.migrate` finds them present and creates no second copy on the Distributed
tables (which would store each event twice).
"""

from __future__ import annotations

import re

from monitor.errors import ConfigError
from monitor.store.schema import (
    INGEST_TABLE,
    INGEST_TARGETS,
    columns,
    create_statements,
    ingest_columns,
    tuning_statements,
)
from monitor.store.table import Table
from monitor.store.tables import TABLES

LOCAL_SUFFIX = "_local"

#: ZooKeeper/Keeper path of each replicated table; ``{shard}`` and ``{replica}`` come from
#: each server's ``<macros>``, ``{database}``/``{table}`` are filled in by ClickHouse.
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"

#: Sharding keys of the tables without ``event_id``: each hashes a prefix of the table's
#: ORDER BY, so rows that replace each other meet on one shard.
SHARDING_KEYS: dict[str, str] = {
    "dead_letters": "cityHash64(source, position)",
    "state": "cityHash64(key)",
    # a version's reports together: "the latest report per model_version" stays local
    "drift_reports": "cityHash64(model_version)",
    "rollup_minute": "cityHash64(minute, model, model_version, route)",
    # a segment's transitions together: "the latest state per (rule, segment)" stays local
    "alerts": "cityHash64(rule, segment_key)",
    "evalset_items": "cityHash64(evalset, version, item_id)",
    "review_labels": "cityHash64(evalset, item_id, reviewer)",
    "judge_agreement": "cityHash64(evalset, judge_version, dimension)",
    "eval_runs": "cityHash64(evalset, started_at, run_id)",
}

_EVENT_KEY = "cityHash64(event_id)"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ENGINE = re.compile(r"ENGINE = ReplacingMergeTree(?:\((\w+)\))?$", re.MULTILINE)
_ORDER_BY = re.compile(r"^ORDER BY \((.+)\)$", re.MULTILINE)


def sharding_key(table: Table) -> str:
    """The Distributed sharding expression of ``table`` (see the module docstring)."""
    if table.name in SHARDING_KEYS:
        return SHARDING_KEYS[table.name]
    if "event_id" in columns(table.name):
        return _EVENT_KEY
    # A new table must choose: a wrong key silently breaks deduplication across shards.
    raise ValueError(f"table {table.name!r} has no event_id: add it to SHARDING_KEYS")


def order_by(table: Table) -> list[str]:
    """The columns of ``table``'s ORDER BY."""
    match = _ORDER_BY.search(table.ddl)
    if match is None:
        raise ValueError(f"table {table.name!r}: no ORDER BY (...) in its DDL")
    return [name.strip() for name in match.group(1).split(",")]


def _replicated(table: Table, sql: str) -> str:
    def sub(match: re.Match[str]) -> str:
        version = f", {match.group(1)}" if match.group(1) else ""
        return f"ENGINE = ReplicatedReplacingMergeTree('{REPLICA_PATH}', '{{replica}}'{version})"

    out, count = _ENGINE.subn(sub, sql)
    if count != 1:
        raise ValueError(f"table {table.name!r}: engine is not a ReplacingMergeTree")
    return out


def _local_table(table: Table, database: str, cluster: str, ttl_days: int,
                 raw_text_days: int | None) -> str:  # fmt: skip
    sql = table.create_sql(database, ttl_days, raw_text_days)
    head = f"CREATE TABLE IF NOT EXISTS {database}.{table.name} "
    if not sql.startswith(head):
        raise ValueError(f"table {table.name!r}: unexpected CREATE statement {sql[:80]!r}")
    local = f"{head[:-1]}{LOCAL_SUFFIX} ON CLUSTER {cluster} "
    return _replicated(table, local + sql[len(head) :])


def _distributed(name: str, database: str, cluster: str, key: str) -> str:
    local = f"{name}{LOCAL_SUFFIX}"
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} "
        f"AS {database}.{local} ENGINE = Distributed({cluster}, {database}, {local}, {key})"
    )


def _cluster_ingest(database: str, cluster: str) -> list[str]:
    body = ",\n".join(f"    {name} {kind}" for name, kind in ingest_columns().items())
    local = f"{INGEST_TABLE}{LOCAL_SUFFIX}"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster} (\n{body}\n)"
        " ENGINE = Null",
        _distributed(INGEST_TABLE, database, cluster, _EVENT_KEY),
    ]
    for target in INGEST_TARGETS:
        names = ", ".join(columns(target))
        statements.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{INGEST_TABLE}_to_{target} "
            f"ON CLUSTER {cluster} TO {database}.{target}{LOCAL_SUFFIX} "
            f"AS SELECT {names} FROM {database}.{local}"
        )
    return statements


def cluster_statements(
    database: str, cluster: str, ttl_days: int, raw_text_days: int | None = None
) -> list[str]:
    """The schema for a cluster named ``cluster`` (see the module docstring), in order."""
    if not _IDENTIFIER.match(cluster):
        raise ConfigError(f"cluster name {cluster!r}: letters, digits and underscores only")
    statements = [f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}"]
    for table in TABLES:
        statements.append(_local_table(table, database, cluster, ttl_days, raw_text_days))
        statements.append(_distributed(table.name, database, cluster, sharding_key(table)))
    statements += _cluster_ingest(database, cluster)
    statements += [
        f"ALTER TABLE {database}.{table.name}{LOCAL_SUFFIX} ON CLUSTER {cluster} MODIFY SETTING "
        + ", ".join(f"{name} = {value}" for name, value in table.tuning)
        for table in TABLES
        if table.tuning
    ]
    return statements


def ddl_statements(
    database: str, ttl_days: int, raw_text_days: int | None = None, cluster: str | None = None
) -> list[str]:
    """Single-node (what `Store.migrate` runs) or, with ``cluster``, the cluster schema."""
    if cluster:
        return cluster_statements(database, cluster, ttl_days, raw_text_days)
    return create_statements(database, ttl_days, raw_text_days) + tuning_statements(database)


def script(statements: list[str]) -> str:
    """Statements as one script (``clickhouse-client --multiquery`` reads it)."""
    return "".join(f"{statement};\n\n" for statement in statements)
