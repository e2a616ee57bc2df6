"""The Faust application every streamproc worker runs.

Only configuration lives here: which broker, how the client stacks are tuned, where local
state goes. Agents are added by :mod:`load.relay`, the sanitizer and the
detector modules.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducerService

from streamproc.config import Settings


class IdempotentProducer(AIOKafkaProducerService):
    """Faust's aiokafka producer with idempotence on (Faust enables it only inside
    transactions): broker-side retries never duplicate or reorder a partition's records."""

    def _settings_extra(self) -> Any:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class StreamprocApp(faust.App):
    """A Faust app whose producer is idempotent."""

    def _new_producer(self) -> Any:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)


class StreamprocWorker(faust.Worker):
    """Faust's worker; re-sends the stop signals held while the hot path ran before it
    (``runtime.hotapp.EarlySignals``) as soon as its own handlers are in place."""

    def __init__(self, app: faust.App, *, early_signals: Any | None = None, **kwargs: Any):
        super().__init__(app, **kwargs)
        self._early_signals = early_signals

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        if self._early_signals is not None:
            self._early_signals.redeliver()

    def _repr_name(self) -> str:
        # Faust's own name in the log lines ("[^Worker]: Ready" is what operators and the
        # integration tests wait for).
        return "Worker"


@dataclass(frozen=True)
class Tuning:
    """Throughput knobs of the Faust/aiokafka stack (docs/benchmarks.md, "Faust throughput")."""

    max_poll_records: int = 2000
    stream_buffer_maxsize: int = 8192
    producer_linger_ms: int = 5
    producer_max_batch_size: int = 256 * 1024
    commit_every: int = 10_000
    commit_interval_s: float = 1.0
    consumer_max_fetch_size: int = 4 * 1024 * 1024
    # A killed worker's partitions move to the survivors after this many seconds.
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 3.0


def faust_broker_credentials(settings: Settings) -> Any:
    """Faust's credentials object for the configured transport (None for PLAINTEXT)."""
    settings.check_transport()
    proto = settings.security_protocol
    if proto == "PLAINTEXT":
        return None
    ssl_context = None
    if proto.endswith("SSL"):
        ssl_context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        ssl_context.check_hostname = settings.ssl_check_hostname
        if settings.ssl_certfile and settings.ssl_keyfile:
            ssl_context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile))
    if proto.startswith("SASL"):
        # Faust's SASLMechanism values are the Kafka names ("SCRAM-SHA-512").
        mechanism = settings.sasl_mechanism
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=password,
            ssl_context=ssl_context,
            mechanism=mechanism,
        )
    return faust.SSLCredentials(ssl_context)


def create_app(
    app_id: str,
    settings: Settings,
    *,
    tuning: Tuning | None = None,
    processing_guarantee: str = "at_least_once",
    **extra: Any,
) -> StreamprocApp:
    """A Faust app on the configured broker, tuned for throughput, web server off."""
    t = tuning or Tuning()
    datadir = settings.data_dir / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.broker.split(","))
    return StreamprocApp(
        app_id,
        broker=brokers,
        broker_credentials=faust_broker_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        processing_guarantee=processing_guarantee,
        broker_max_poll_records=t.max_poll_records,
        stream_buffer_maxsize=t.stream_buffer_maxsize,
        producer_linger_ms=t.producer_linger_ms,
        producer_max_batch_size=t.producer_max_batch_size,
        broker_commit_every=t.commit_every,
        broker_commit_interval=t.commit_interval_s,
        consumer_max_fetch_size=t.consumer_max_fetch_size,
        broker_session_timeout=t.session_timeout_s,
        broker_heartbeat_interval=t.heartbeat_interval_s,
        producer_acks=-1,
        topic_allow_declare=True,
        topic_disable_leader=True,
        **extra,
    )
