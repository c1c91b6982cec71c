"""Every Kafka client's options, derived from `KafkaSettings` in one place.

Three clients talk to the broker, each with its own option names: Faust (aiokafka
underneath: the feedback agent and the DLQ producer), confluent-kafka (librdkafka: the
events consumer, `streams.consumer`) and kafka-python (admin, `vigil produce`). What they
share (servers, security, SASL credentials, session timing) is computed once, in
`_Common`, and each client's builder only spells it in that client's names.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from monitor.config import KafkaSettings
from monitor.errors import BrokerError

#: kafka-python's client id (admin, producer, probes).
CLIENT_ID = "vigil"

#: Fetch sizes: 16 MiB per partition per request, room for a full batch of typical
#: events (aiokafka's 1 MiB default held batches to ~1,400 events, and every small batch
#: costs a ClickHouse part), 64 MiB per request. bench/ingest.py's raw baselines use the
#: same sizes (these are aiokafka's names; `consumer_config` gives librdkafka the same).
FETCH_OPTIONS = {
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
}

#: The largest fetch response librdkafka takes (its default, spelled out), hence about
#: the largest event message the worker can read: a record batch larger than either
#: fetch size above still comes whole (the broker always returns the first one), but one
#: larger than this is refused ("Invalid response size ... increase
#: receive.message.max.bytes", logged), and the partition stalls on it with nothing
#: committed. Keep the broker's ``message.max.bytes`` under it (Kafka's default is
#: 1 MiB); the dev broker (tansu 0.6.0) caps nothing: it took a 110 MB message that this
#: consumer then could not fetch. Any message under this limit is read, and when over
#: 1 MB becomes a ``too_large`` dead letter whose ``dead_letters`` row keeps every byte
#: (both store backends took 70 MB rows).
RECEIVE_MAX_BYTES = 100_000_000

#: The DLQ producer's ``max_request_size`` (Faust's default, spelled out): a record
#: larger than this is refused before it is sent. ``kafka.dlq_max_bytes`` (at most
#: 900,000) plus the bounded headers of `streams.dlq` stays under it.
DLQ_MAX_REQUEST_BYTES = 1_000_000


def servers(kafka: KafkaSettings) -> str:
    if not kafka.bootstrap_servers:
        raise BrokerError(
            "no Kafka configured: set kafka.bootstrap_servers (env VIGIL_KAFKA__BOOTSTRAP_SERVERS, "
            "--bootstrap-servers), or run `vigil up` for the embedded dev broker"
        )
    return kafka.bootstrap_servers


def faust_group(kafka: KafkaSettings) -> str:
    """The consumer group of the Faust app (its id): ``<group_id>.feedback``.

    The events topic is read by a plain (librdkafka) consumer in ``group_id``; a group
    cannot mix that consumer's assignor with Faust's own ("faust" protocol, rejected by
    Kafka as inconsistent), so the Faust app (feedback only) gets a group of its own. The
    name stays what it has always been, so the feedback offsets that running deployments
    committed stay valid.
    """
    return f"{kafka.group_id}.feedback"


@dataclass(frozen=True, slots=True)
class _Common:
    """What every client derives from the settings, computed once."""

    servers: str
    protocol: str
    tls: bool
    sasl: tuple[str, str, str] | None  # mechanism, user name, password
    session_s: float
    heartbeat_s: float


def _common(kafka: KafkaSettings) -> _Common:
    protocol = kafka.security_protocol
    sasl = None
    if protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value()
        sasl = (kafka.sasl_mechanism or "PLAIN", kafka.sasl_username, password)
    return _Common(
        servers=servers(kafka),
        protocol=protocol,
        tls=protocol.endswith("SSL"),
        sasl=sasl,
        session_s=kafka.session_timeout_s,
        heartbeat_s=max(0.5, kafka.session_timeout_s / 5),
    )


def kafka_python_options(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python options shared by the admin client and the producer (auth included)."""
    common = _common(kafka)
    options: dict[str, Any] = {
        "bootstrap_servers": common.servers.split(","),
        "client_id": CLIENT_ID,
        "security_protocol": common.protocol,
    }
    if common.sasl is not None:
        mechanism, username, password = common.sasl
        options["sasl_mechanism"] = mechanism
        options["sasl_plain_username"] = username
        options["sasl_plain_password"] = password
    return options


def consumer_config(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for the events consumer (auth, timeouts and fetch sizes included)."""
    common = _common(kafka)
    config: dict[str, Any] = {
        "bootstrap.servers": common.servers,
        "client.id": "vigil-ingest",
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(common.session_s * 1000),
        "heartbeat.interval.ms": int(common.heartbeat_s * 1000),
        "max.partition.fetch.bytes": FETCH_OPTIONS["max_partition_fetch_bytes"],
        "fetch.max.bytes": FETCH_OPTIONS["fetch_max_bytes"],
        "receive.message.max.bytes": RECEIVE_MAX_BYTES,
        # What librdkafka prefetches per partition ahead of `consume`: a few batches.
        "queued.max.messages.kbytes": 32 * 1024,
        # Once that queue is full, librdkafka postpones the partition's next fetch by this
        # much (default 1 s). The worker drains a full queue in well under that, so with
        # the default the queue ran dry every few batches and `consume` sat out the rest
        # of the backoff: stalls of 80-200 ms, a quarter of an end-to-end run. Measured
        # with bench-sized traffic: consume wait 3.5-6 -> ~1.6 us per event.
        "fetch.queue.backoff.ms": 10,
        "security.protocol": common.protocol,
        # Its log lines go to our logging (delivered on the consumer's thread).
        "logger": logging.getLogger("vigil.ingest.librdkafka"),
    }
    if common.tls:
        cafile = ssl.get_default_verify_paths().cafile
        config["ssl.ca.location"] = cafile or "probe"
    if common.sasl is not None:
        mechanism, username, password = common.sasl
        config["sasl.mechanism"] = mechanism
        config["sasl.username"] = username
        config["sasl.password"] = password
    config.update(extra)
    return config


def faust_options(kafka: KafkaSettings) -> dict[str, Any]:
    """The Kafka-client half of the Faust app's settings (``faust.App(id, **these)``)."""
    common = _common(kafka)
    return {
        "broker": [f"kafka://{server}" for server in common.servers.split(",")],
        "broker_credentials": _faust_credentials(common),
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": common.session_s,
        "broker_heartbeat_interval": common.heartbeat_s,
        "broker_request_timeout": max(30.0, common.session_s * 2),
        "broker_rebalance_timeout": max(30.0, common.session_s * 2),
        "broker_commit_interval": 1.0,
        "broker_max_poll_records": max(500, kafka.batch_max),
        "producer_acks": -1,  # a dead letter counts as sent once every replica has it
        "producer_max_request_size": DLQ_MAX_REQUEST_BYTES,
    }


def _faust_credentials(common: _Common) -> Any:
    import faust  # here: admin and `vigil produce` use this module without Faust (~0.25 s to load)

    if common.protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if common.tls else None
    if common.sasl is not None:
        mechanism, username, password = common.sasl
        return faust.SASLCredentials(
            username=username, password=password, mechanism=mechanism, ssl_context=context
        )
    return faust.SSLCredentials(context)
