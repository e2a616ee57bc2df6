"""Flows and registry clients from topologies, compiled once at start-up.

What the worker, its offload helpers and ``dlq replay`` call to turn a topology file into
something that processes bytes; no Kafka consumer or Faust object is involved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema

from streamproc.avro.codec import Encoder
from streamproc.avro.schema import read_schema_json
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.errors import ConfigError
from streamproc.keys import Keyring
from streamproc.pipeline.sanitize import SanitizeFlow
from streamproc.policy import compile_plan

if TYPE_CHECKING:
    from streamproc.pipeline.detect import DetectFlow


def registry_client(url: str | None) -> Any | None:
    """A Confluent Schema Registry client (``mock://`` gives confluent-kafka's in-memory one)."""
    if not url:
        return None
    # Imported here: the registry client pulls in httpx and authlib (a worker without a
    # registry starts faster).
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": url})


def topology_registry(topology: Topology, settings: Settings) -> Any | None:
    """The registry a topology uses: its own ``registry.url``, else the settings'."""
    return registry_client(topology.registry_url or settings.schema_registry_url)


def sink_schema_id(
    topology: Topology, registry: Any | None, schema_json: Mapping[str, Any]
) -> int | None:
    """Register the sink's value schema under ``<sink>-value`` when writing Confluent
    framing (refused without a registry); None for single-object framing."""
    if topology.write_framing != "confluent":
        return None
    if registry is None:
        raise ConfigError(
            f"{topology.path}: key 'write_framing': confluent needs a registry "
            "(key 'registry.url' or STREAMPROC_SCHEMA_REGISTRY_URL)"
        )
    from confluent_kafka.schema_registry import Schema  # see registry_client

    schema = Schema(json.dumps(schema_json), "AVRO")
    return int(registry.register_schema(f"{topology.sink.topic}-value", schema))


def history_schemas(topology: Topology) -> tuple[Any, ...]:
    """The parsed older writer schemas a topology still accepts."""
    return tuple(parse_schema(read_schema_json(p)[0]) for p in topology.source.history)


def build_flow(topology: Topology, settings: Settings, keyring: Keyring) -> SanitizeFlow:
    """Compile one sanitize topology into a SanitizeFlow (plan, codecs, registry)."""
    plan = compile_plan(
        topology.source.schema, keyring, strict=topology.strict, tag_actions=topology.tags or None
    )
    registry = topology_registry(topology, settings)
    sink_id = sink_schema_id(topology, registry, plan.derived_schema_json)
    return SanitizeFlow(
        topology,
        plan,
        keyring,
        history=history_schemas(topology),
        registry=registry,
        sink_schema_id=sink_id,
    )


def containment_encoder(topology: Topology, registry: Any | None) -> Encoder:
    """The encoder of a detect topology's containment messages (``sink.schema``)."""
    if topology.sink.schema is None:
        raise ConfigError(
            f"{topology.path}: key 'sink.schema': a detect topology needs the containment "
            "schema (schemas/containment.avsc)"
        )
    doc = read_schema_json(topology.sink.schema)[0]
    return Encoder(
        parse_schema(doc), topology.write_framing, sink_schema_id(topology, registry, doc)
    )


def build_detect_flow(topology: Topology, settings: Settings) -> DetectFlow:
    """Load one detect topology's model and codecs into a DetectFlow.

    Fails at start (:class:`ConfigError`) without a model file or a keyring (dead letters
    are sealed with its quarantine key).
    """
    # Imported here: the detector loads scikit-learn and scipy (seconds), which a worker
    # with sanitize topologies only never needs.
    from streamproc.pipeline.detect import AccessDecoder, DetectFlow, load_detector

    det, scorer = load_detector(topology)
    if settings.keyring is None:
        raise ConfigError(
            f"{topology.path}: a detect topology needs a keyring to seal dead letters "
            "(--keyring or STREAMPROC_KEYRING)"
        )
    keyring = Keyring.load(settings.keyring)
    registry = topology_registry(topology, settings)
    decoder = AccessDecoder(topology, keyring, registry)
    return DetectFlow(topology, det, scorer, decoder, containment_encoder(topology, registry))
