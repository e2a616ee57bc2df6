"""One sanitizing flow as a pure function of a message: bytes in, an outcome out.

``SanitizeFlow.process`` is what the Faust agent, ``dlq replay`` and the tests call. It never
raises for bad input: a record that cannot be decoded, sanitized or encoded becomes a
:class:`DeadLetter` whose payload is sealed with the keyring's quarantine key, with reason
headers that carry field paths and coordinates, never values.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamproc.avro.codec import Decoder, Encoder, WriterSchemas
from streamproc.config.topology import Topology
from streamproc.errors import RecordError
from streamproc.keys import Keyring
from streamproc.pipeline.deadletter import DeadLetterSealer
from streamproc.pipeline.grouping import Prepared
from streamproc.pipeline.outcome import (
    H_KEY_VERSIONS,
    H_POLICY_FP,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TIMESTAMP,
    H_SOURCE_TOPIC,
    H_WRITER_FP,
    DeadLetter,
    Headers,
    Outcome,
    Sanitized,
)
from streamproc.risk import RollingRisk, quasi_fields
from streamproc.transforms.codec import b64url

log = logging.getLogger("streamproc.pipeline")

# Records of a flow's own output the exposure gauges are computed over.
EXPOSURE_WINDOW = 10_000
# The keyring key that pseudonymizes Kafka record keys.
KEY_PSEUDONYM_KEY = "default"
#: One source record as the hot path hands a batch over: value, key, topic, partition,
#: offset, timestamp (ms, None when the record has none).
Item = tuple[bytes | None, bytes | None, str, int, int, int | None]


@dataclass
class FlowStats:
    """Counters the agent exports as metrics (labels: reasons and action names only)."""

    records_in: int = 0
    records_out: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    per_record: Counter[str] = field(default_factory=Counter)  # actions one record passes

    @property
    def transforms(self) -> Counter[str]:
        """Transform applications so far (each sanitized record passes the same actions)."""
        return Counter({a: n * self.records_out for a, n in self.per_record.items()})


class SanitizeFlow:
    """Decode -> compiled plan -> encode for one topology, compiled once at start-up."""

    def __init__(
        self,
        topology: Topology,
        plan: Any,
        keyring: Keyring,
        *,
        history: tuple[Any, ...] = (),
        registry: Any | None = None,
        sink_schema_id: int | None = None,
    ) -> None:
        self.topology = topology
        self.plan = plan
        self.keyring = keyring
        self._sanitize = plan.sanitize
        spec = self.anonymity = plan.anonymity
        if spec is not None:
            # ``process`` releases one record alone, so it suppresses every ladder field (no
            # consumer can re-identify by them; PENDING would not encode). The worker's hot
            # path groups instead: ``prepare``, a PartitionGroups buffer, then ``finish``.
            self._sanitize = lambda r: spec.suppressed(plan.sanitize(r))
        schemas = WriterSchemas(
            plan.source_schema, history, registry=registry, limits=topology.limits
        )
        self.decoder = Decoder(schemas, topology.framing)
        self.encoder = Encoder(plan.derived_schema, topology.write_framing, sink_schema_id)
        versions = ",".join(f"{k}={v}" for k, v in sorted(plan.key_versions.items()))
        self._static_headers: Headers = [
            (H_POLICY_FP, plan.fingerprint.encode()),
            (H_KEY_VERSIONS, versions.encode()),
        ]
        self._writer_fp_header: dict[int, tuple[str, bytes]] = {}
        self._source_headers: dict[tuple[str, int], Headers] = {}
        # Which transform actions one record passes through (lineage is fixed per plan).
        self.actions_per_record = Counter(
            f.action for f in plan.lineage if f.action not in ("keep",)
        )
        self.stats = FlowStats(per_record=Counter(self.actions_per_record))
        # Record keys may identify a person too: pseudonymize them (keyed, deterministic, so
        # partitioning by key and per-key order survive).
        self._key_version, self._key_secret = keyring.subkey(KEY_PSEUDONYM_KEY, "pseudonymize")
        self._key_tag = b"k%d:" % self._key_version
        self._sealer = DeadLetterSealer(keyring, topology.name)
        self._key_prefix = b"streamproc/kafka-key\x00" + topology.name.encode() + b"\x00"
        # A budgeted plan's ledger charges each release at the record's event time.
        self.budget = plan.budget
        # Exposure: the k-anonymity of this flow's own output over its last records.
        quasi = quasi_fields(plan.derived_schema_json)
        k = plan.anonymity.k if plan.anonymity is not None else 5
        self.exposure = RollingRisk(EXPOSURE_WINDOW, quasi, k) if quasi else None
        self._remote: dict[int, dict[str, Any]] = {}

    def state(self) -> dict[str, Any]:
        """What this process's flow knows that metrics export: exposure and DP budget
        figures (counts and shares only, never a value or a subject)."""
        out: dict[str, Any] = {}
        if self.exposure is not None:
            e = self.exposure
            out["exposure"] = {
                "records": e.records,
                "k_min": e.k_min,
                "unique_share": e.unique_share,
                "below_k_share": e.below_k_share,
            }
        if self.budget is not None:
            st = self.budget.stats()
            out["budget"] = {
                "exhausted_subjects": st.exhausted_subjects,
                "epsilon_spent": st.epsilon_spent,
                "future_refused": st.future_refused,
            }
        return out

    def absorb(self, source: int, state: dict[str, Any]) -> None:
        """Remember the state a helper process reported (``source``: its pid)."""
        self._remote[source] = state

    def combined_state(self) -> dict[str, Any]:
        """The helpers' states and this process's (when it sanitized records itself, or
        no helper reported) combined: k_min the smallest and shares the largest
        (conservative: each sees its own partitions), budgets summed."""
        states = list(self._remote.values())
        if self.stats.records_in or not states:
            states.append(self.state())
        out: dict[str, Any] = {}
        exposures = [s["exposure"] for s in states if "exposure" in s]
        if exposures:
            ks = [e["k_min"] for e in exposures if e["k_min"] is not None]
            out["exposure"] = {
                "records": sum(e["records"] for e in exposures),
                "k_min": min(ks) if ks else None,
                "unique_share": max(e["unique_share"] for e in exposures),
                "below_k_share": max(e["below_k_share"] for e in exposures),
            }
        budgets = [s["budget"] for s in states if "budget" in s]
        if budgets:
            out["budget"] = {
                "exhausted_subjects": sum(b["exhausted_subjects"] for b in budgets),
                "epsilon_spent": sum(b["epsilon_spent"] for b in budgets),
                "future_refused": sum(b.get("future_refused", 0) for b in budgets),
            }
        return out

    def key_pseudonym(self, key: bytes | None) -> bytes | None:
        if key is None:
            return None
        mac = hmac.digest(self._key_secret, self._key_prefix + key, "sha256")
        return self._key_tag + b64url(mac[:16])[:22]

    def process(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None = None,
    ) -> Outcome:
        """One record's outcome (:meth:`process_many` of a batch of one)."""
        return self.process_many([(value, key, topic, partition, offset, timestamp_ms)])[0]

    def process_many(self, items: Iterable[Item]) -> list[Outcome]:
        """The outcome of each ``(value, key, topic, partition, offset, timestamp_ms)`` item,
        in order: a sanitized record with its lineage headers, or a sealed dead letter. The
        hot path and the offload helper hand whole batches over (what the loop calls is bound
        once per batch)."""
        stats = self.stats
        decode, sanitize, encode = self._decode, self._sanitize, self.encoder.encode
        exposure_add = self.exposure.add if self.exposure is not None else None
        coords_of, headers_of = self._coords, self.lineage_headers
        key_pseudonym, failed = self.key_pseudonym, self._failed
        out: list[Outcome] = []
        append = out.append
        for value, key, topic, partition, offset, ts in items:
            stats.records_in += 1
            coords = coords_of(topic, partition, offset)
            try:
                record, ws = decode(value, ts, partition, key)
                clean = sanitize(record)
                body = encode(clean)
                if exposure_add is not None:
                    exposure_add(clean)
            except Exception as exc:  # a bug must not stop the stream nor leak the value
                append(failed(exc, key, value, coords, topic, partition, offset))
                continue
            stats.records_out += 1
            fp = ws.fingerprint
            append(Sanitized(key_pseudonym(key), body, headers_of(coords, fp, ts), fp))
        return out

    def prepare(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None = None,
    ) -> Prepared | DeadLetter:
        """A k-plan's first step: decode and sanitize every field but the ladder fields
        (PENDING), and the raw QI tuple for the grouping buffer; bad input is a dead letter
        exactly as in :meth:`process`."""
        spec = self.anonymity
        assert spec is not None, "prepare is for plans with record-level k"
        self.stats.records_in += 1
        coords = self._coords(topic, partition, offset)
        try:
            record, ws = self._decode(value, timestamp_ms, partition, key)
            clean = self.plan.sanitize(record)
            qi = spec.quasi(record)
            sens = spec.sensitive_values(clean)
        except Exception as exc:  # a bug must not stop the stream nor leak the value
            return self._failed(exc, key, value, coords, topic, partition, offset)
        headers = self.lineage_headers(coords, ws.fingerprint, timestamp_ms)
        return Prepared(
            self.key_pseudonym(key), value, clean, headers, ws.fingerprint,
            topic, partition, offset, timestamp_ms, qi, sens, key,
        )  # fmt: skip

    def finish(self, rec: Prepared, values: tuple[Any, ...]) -> Outcome:
        """A k-plan's second step: write the group's generalized ``values`` and encode."""
        spec = self.anonymity
        assert spec is not None
        try:
            clean = spec.fill(rec.clean, values)
            out = self.encoder.encode(clean)
            if self.exposure is not None:
                self.exposure.add(clean)
        except Exception as exc:  # a bug must not stop the stream nor leak the value
            coords = self._coords(rec.topic, rec.partition, rec.offset)
            return self._failed(
                exc, rec.source_key, rec.value, coords, rec.topic, rec.partition, rec.offset
            )
        self.stats.records_out += 1
        return Sanitized(rec.key, out, rec.headers, rec.fingerprint)

    def _decode(
        self, value: bytes | None, timestamp_ms: int | None, partition: int, key: bytes | None
    ) -> tuple[Any, Any]:
        """The source record and its writer schema; the budget ledger set to its time (and,
        keyed in the worker, to its partition and key)."""
        if value is None:
            raise RecordError("tombstone (null value) on a raw topic", reason="null_value")
        record, ws = self.decoder.decode(value)
        if self.budget is not None:
            self.budget.at(timestamp_ms, scope=partition, key=key)
        return record, ws

    def _failed(
        self,
        exc: Exception,
        key: bytes | None,
        value: bytes | None,
        coords: Headers,
        topic: str,
        partition: int,
        offset: int,
    ) -> DeadLetter:
        """The dead letter of a record that failed: a RecordError's reason and message (paths
        and types), any other exception as internal_error with its type name only."""
        if isinstance(exc, RecordError):
            reason, message = exc.reason, str(exc)
        else:
            reason, message = "internal_error", type(exc).__name__
        return self._dead_letter(key, value, reason, message, coords, topic, partition, offset)

    def _coords(self, topic: str, partition: int, offset: int) -> Headers:
        where = self._source_headers.get((topic, partition))
        if where is None:
            where = self._source_headers[(topic, partition)] = [
                (H_SOURCE_TOPIC, topic.encode()),
                (H_SOURCE_PARTITION, str(partition).encode()),
            ]
        return [*where, (H_SOURCE_OFFSET, str(offset).encode())]

    def lineage_headers(
        self, coords: Headers, writer_fingerprint: int, timestamp_ms: int | None
    ) -> Headers:
        """The headers of a sanitized record (see the ``H_*`` names)."""
        fp_header = self._writer_fp_header.get(writer_fingerprint)
        if fp_header is None:
            fp_header = (H_WRITER_FP, f"{writer_fingerprint:016x}".encode())
            self._writer_fp_header[writer_fingerprint] = fp_header
        headers = [*coords, fp_header, *self._static_headers]
        if timestamp_ms is not None:
            headers.append((H_SOURCE_TIMESTAMP, str(timestamp_ms).encode()))
        return headers

    def sanitized_headers(
        self, topic: str, partition: int, offset: int, writer_fingerprint: int, ts: int | None
    ) -> Headers:
        """:meth:`lineage_headers` from source coordinates (for outcomes made elsewhere)."""
        return self.lineage_headers(self._coords(topic, partition, offset), writer_fingerprint, ts)

    def _dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        message: str,
        coords: Headers,
        topic: str,
        partition: int,
        offset: int,
    ) -> DeadLetter:
        self.stats.dead_letters[reason] += 1
        return self._sealer.seal(key, value, reason, message, topic, partition, offset, coords)
