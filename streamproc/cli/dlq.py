"""``streamproc dlq inspect|replay``: look at dead letters, and re-feed them after a fix.

``inspect`` reads headers only (reason, error, source coordinates, time): it never needs the
keyring and never shows a payload. ``replay`` opens each sealed payload with the keyring's
quarantine key (bound to its source coordinates) and produces the original key and value to
the source topic (or ``--to``), e.g. after the missing writer schema was added.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Producer

from streamproc import pipeline as f
from streamproc.cli._topics import read_topic
from streamproc.config import load_settings
from streamproc.errors import ConfigError, KafkaError, RevealError
from streamproc.keys import Keyring


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlq", help="inspect and replay dead-letter topics")
    ds = p.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)

    i = ds.add_parser("inspect", help="list dead letters by reason (headers only)")
    i.add_argument("--topic", required=True, help="dead-letter topic")
    i.add_argument("--broker")
    i.add_argument("--limit", type=int, default=20, help="rows to list (0 = counts only)")
    i.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    i.set_defaults(func=inspect)

    r = ds.add_parser("replay", help="decrypt dead letters and produce them again")
    r.add_argument("--topic", required=True, help="dead-letter topic")
    r.add_argument("--to", help="target topic (default: each record's source topic)")
    r.add_argument("--reason", action="append", default=[], help="only these reasons")
    r.add_argument("--keyring", help="keyring with the quarantine key (STREAMPROC_KEYRING)")
    r.add_argument("--broker")
    r.add_argument("--dry-run", action="store_true", help="count what would be replayed")
    r.set_defaults(func=replay)


def read_all(conf: dict[str, Any], topic: str) -> Iterator[Any]:
    """Every message of ``topic`` from the beginning up to its end at call time."""
    return read_topic(conf, topic, purpose="dlq")


def _headers(msg: Any) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (msg.headers() or [])}


def inspect(args: argparse.Namespace) -> int:
    conf = load_settings(broker=args.broker).kafka_config()
    reasons: Counter[str] = Counter()
    shown = 0
    for msg in read_all(conf, args.topic):
        h = _headers(msg)
        reason = h.get(f.H_DLQ_REASON, "?")
        reasons[reason] += 1
        row = {
            "dlq": f"{msg.partition()}/{msg.offset()}",
            "topology": h.get(f.H_DLQ_TOPOLOGY, "?"),
            "source": "/".join(
                h.get(k, "?") for k in (f.H_SOURCE_TOPIC, f.H_SOURCE_PARTITION, f.H_SOURCE_OFFSET)
            ),
            "reason": reason,
            "error": h.get(f.H_DLQ_ERROR, ""),
            "time_ms": int(h.get(f.H_DLQ_TIME, "0") or 0),
            "payload_bytes": len(msg.value() or b""),
        }
        if args.json:
            print(json.dumps(row))
        elif shown < args.limit:
            if shown == 0:
                print(f"{'dlq':>10}  {'source':<40} {'reason':<20} error")
            print(f"{row['dlq']:>10}  {row['source']:<40} {reason:<20} {row['error']}")
            shown += 1
    total = sum(reasons.values())
    out = sys.stderr if args.json else sys.stdout
    print(
        f"{total} dead letters in {args.topic}"
        + (": " + ", ".join(f"{r}={n}" for r, n in reasons.most_common()) if total else ""),
        file=out,
    )
    return 0


def replay(args: argparse.Namespace) -> int:
    settings = load_settings(broker=args.broker, keyring=args.keyring)
    if settings.keyring is None:
        raise ConfigError("dlq replay needs the keyring (--keyring or STREAMPROC_KEYRING)")
    keyring = Keyring.load(settings.keyring)
    conf = settings.kafka_config()
    producer = None if args.dry_run else Producer({**conf, "enable.idempotence": True})
    wanted = set(args.reason)
    replayed: Counter[str] = Counter()
    failed = 0
    for msg in read_all(conf, args.topic):
        h = _headers(msg)
        reason = h.get(f.H_DLQ_REASON, "?")
        if wanted and reason not in wanted:
            continue
        try:
            src_topic = h[f.H_SOURCE_TOPIC]
            aad = f.dlq_aad(src_topic, int(h[f.H_SOURCE_PARTITION]), int(h[f.H_SOURCE_OFFSET]))
            key, value = f.open_envelope(keyring.open(msg.value() or b"", aad))
        except (KeyError, ValueError, RevealError):
            failed += 1
            continue
        replayed[reason] += 1
        if producer is not None:
            headers: list[tuple[str, str | bytes | None]] = [
                (
                    "streamproc.replayed.from",
                    f"{args.topic}/{msg.partition()}/{msg.offset()}".encode(),
                )
            ]
            while True:
                try:
                    producer.produce(args.to or src_topic, key=key, value=value, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
    if producer is not None and producer.flush(60) != 0:
        raise KafkaError("not every replayed record was acknowledged by the broker")
    verb = "would replay" if args.dry_run else "replayed"
    total = sum(replayed.values())
    print(
        f"{verb} {total} dead letters"
        + (": " + ", ".join(f"{r}={n}" for r, n in replayed.most_common()) if total else "")
        + (f"; {failed} could not be opened (wrong keyring or tampered)" if failed else "")
    )
    return 1 if failed else 0
