"""Run a flow's decode + sanitize + encode in a helper process, off the Faust event loop.

A batch crosses a Unix socket as packed arrays and two byte blobs (no pickling); the reply
carries sanitized keys and values and each record's writer fingerprint, from which the event
loop rebuilds the lineage headers (dead letters, rare, come back as JSON). The helper compiles
its own flow from the topology file and the keyring *path*: key material never crosses the
socket. If it dies the agent fails and the worker exits before committing. Why and how much
it gains: docs/benchmarks.md, "Faust throughput".
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import socket
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamproc.config.settings import Settings
from streamproc.config.topology import load_topology
from streamproc.errors import ConfigError, OffloadError, StreamprocError
from streamproc.keys import Keyring
from streamproc.pipeline import DeadLetter, Outcome, Sanitized, SanitizeFlow
from streamproc.pipeline.build import build_flow

Item = tuple[bytes | None, bytes | None, str, int, int, int | None]

_LEN = struct.Struct("<Q")
_REQ = struct.Struct("<IH")  # records, topic length
_NONE = -1


def _lengths(blobs: Sequence[bytes | None]) -> array[int]:
    return array("i", [_NONE if b is None else len(b) for b in blobs])


def _split(blob: bytes, lengths: array[int]) -> list[bytes | None]:
    out: list[bytes | None] = []
    pos = 0
    for n in lengths:
        if n < 0:
            out.append(None)
        else:
            out.append(blob[pos : pos + n])
            pos += n
    return out


def encode_request(items: Sequence[Item]) -> bytes:
    """One batch of one source topic as a request frame body."""
    topic = items[0][2].encode() if items else b""
    if any(it[2] != items[0][2] for it in items):
        raise ValueError("a batch must come from one topic")
    values = [it[0] for it in items]
    keys = [it[1] for it in items]
    parts = [
        _REQ.pack(len(items), len(topic)),
        topic,
        array("i", [it[3] for it in items]).tobytes(),
        array("q", [it[4] for it in items]).tobytes(),
        array("q", [_NONE if it[5] is None else it[5] for it in items]).tobytes(),
        _lengths(keys).tobytes(),
        _lengths(values).tobytes(),
        b"".join(k for k in keys if k is not None),
        b"".join(v for v in values if v is not None),
    ]
    return b"".join(parts)


def decode_request(body: bytes) -> list[Item]:
    n, tlen = _REQ.unpack_from(body, 0)
    pos = _REQ.size
    topic = body[pos : pos + tlen].decode()
    pos += tlen
    arrays: list[array[int]] = []
    for code in ("i", "q", "q", "i", "i"):
        a = array(code)
        size = a.itemsize * n
        a.frombytes(body[pos : pos + size])
        arrays.append(a)
        pos += size
    partitions, offsets, stamps, klens, vlens = arrays
    ktotal = sum(k for k in klens if k > 0)
    keys = _split(body[pos : pos + ktotal], klens)
    values = _split(body[pos + ktotal :], vlens)
    return [
        (values[i], keys[i], topic, partitions[i], offsets[i], None if stamps[i] < 0 else stamps[i])
        for i in range(n)
    ]


def process_request(flow: SanitizeFlow, body: bytes) -> bytes:
    """The helper's side: run the flow over a request; the reply frame body."""
    items = decode_request(body)
    outcomes = flow.process_many(items)
    n = len(items)
    status = bytearray(n)
    fps = array("Q", bytes(8 * n))
    keys: list[bytes | None] = []
    values: list[bytes] = []
    dead: list[dict[str, Any]] = []
    for i, out in enumerate(outcomes):
        if isinstance(out, Sanitized):
            fps[i] = out.fingerprint
            keys.append(out.key)
        else:
            status[i] = 1
            keys.append(None)
            dead.append(
                {
                    "i": i,
                    "reason": out.reason,
                    "headers": [[k, v.decode("latin-1")] for k, v in out.headers],
                }
            )
        values.append(out.value)
    # Dead letters, and the flow's state for metrics (this helper's exposure and budget).
    tail = json.dumps({"dead": dead, "pid": os.getpid(), "state": flow.state()}).encode()
    return b"".join(
        [
            struct.pack("<I", n),
            bytes(status),
            fps.tobytes(),
            _lengths(keys).tobytes(),
            _lengths(values).tobytes(),
            b"".join(k for k in keys if k is not None),
            b"".join(values),
            tail,
        ]
    )


def decode_reply(flow: SanitizeFlow, items: Sequence[Item], body: bytes) -> list[Outcome]:
    """The event loop's side: outcomes equal to what ``flow.process`` returns inline."""
    (n,) = struct.unpack_from("<I", body, 0)
    if n != len(items):
        raise OffloadError(f"helper answered {n} records for a batch of {len(items)}")
    pos = 4
    status = body[pos : pos + n]
    pos += n
    fps = array("Q")
    fps.frombytes(body[pos : pos + 8 * n])
    pos += 8 * n
    klens, vlens = array("i"), array("i")
    klens.frombytes(body[pos : pos + 4 * n])
    pos += 4 * n
    vlens.frombytes(body[pos : pos + 4 * n])
    pos += 4 * n
    ktotal = sum(k for k in klens if k > 0)
    vtotal = sum(v for v in vlens if v > 0)
    keys = _split(body[pos : pos + ktotal], klens)
    values = _split(body[pos + ktotal : pos + ktotal + vtotal], vlens)
    doc = json.loads(body[pos + ktotal + vtotal :])
    dead = {d["i"]: d for d in doc["dead"]}
    flow.absorb(int(doc["pid"]), doc["state"])
    headers_for = flow.sanitized_headers
    out: list[Outcome] = []
    for i, (_, _, topic, partition, offset, ts) in enumerate(items):
        value = values[i]
        assert value is not None
        if status[i]:
            d = dead[i]
            hdrs = [(k, v.encode("latin-1")) for k, v in d["headers"]]
            out.append(DeadLetter(None, value, hdrs, d["reason"]))
        else:
            out.append(
                Sanitized(keys[i], value, headers_for(topic, partition, offset, fps[i], ts), fps[i])
            )
    return out


def _send(sock: socket.socket, body: bytes) -> None:
    sock.sendall(_LEN.pack(len(body)) + body)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return bytes(buf)


def _serve(sock: socket.socket, topology_path: str, settings_json: str) -> None:
    """The helper process: compile the flow, then answer batches until the socket closes."""
    try:
        settings = Settings.model_validate_json(settings_json)
        if settings.keyring is None:
            raise ConfigError("the offload helper needs a keyring file")
        flow = build_flow(load_topology(topology_path), settings, Keyring.load(settings.keyring))
    except StreamprocError as exc:  # messages name paths and keys, never values
        _send(sock, b"E" + str(exc).encode())
        return
    # Everything built so far (plan, schemas, keyring) lives as long as the process: move it
    # out of the collector's reach so full collections stay short (tail latency).
    gc.collect()
    gc.freeze()
    _send(sock, b"R")
    while True:
        head = _recv_exactly(sock, _LEN.size)
        if head is None:
            return
        body = _recv_exactly(sock, _LEN.unpack(head)[0])
        if body is None:
            return
        _send(sock, process_request(flow, body))


class FlowProcess:
    """A helper process that runs one topology's SanitizeFlow."""

    def __init__(self, topology_path: Path, settings: Any, flow: SanitizeFlow) -> None:
        # Secrets travel as the keyring *path* inside the settings, never as key material.
        settings_json = settings.model_dump_json(
            include={
                "broker",
                "keyring",
                "schema_registry_url",
                "security_protocol",
                "sasl_mechanism",
                "sasl_username",
                "ssl_cafile",
                "ssl_certfile",
                "ssl_keyfile",
                "ssl_check_hostname",
                "allow_insecure",
            }
        )
        self._flow = flow
        ours, theirs = socket.socketpair()
        ctx = multiprocessing.get_context("spawn")
        self._proc = ctx.Process(
            target=_serve,
            args=(theirs, str(topology_path), settings_json),
            name=f"streamproc-offload-{flow.topology.name}",
            daemon=True,
        )
        self._proc.start()
        theirs.close()
        # Compiled now: a bad topology fails the worker at start, not at the first batch.
        ours.settimeout(120)
        head = _recv_exactly(ours, _LEN.size)
        first = _recv_exactly(ours, _LEN.unpack(head)[0]) if head else None
        if first is None or first[:1] != b"R":
            detail = first[1:].decode(errors="replace") if first else "exited"
            self._proc.join(5)
            raise ConfigError(f"offload helper for {topology_path}: {detail}")
        ours.setblocking(False)
        self._sock = ours
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock: asyncio.Lock | None = None

    async def run(self, items: list[Item]) -> list[Outcome]:
        if not items:
            return []
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(sock=self._sock)
            self._lock = asyncio.Lock()
        assert self._lock is not None
        reader, writer = self._streams
        body = encode_request(items)
        async with self._lock:
            try:
                writer.write(_LEN.pack(len(body)) + body)
                await writer.drain()
                (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                reply = await reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise OffloadError(
                    f"offload helper for {self._flow.topology.name} went away "
                    f"({type(exc).__name__})"
                ) from None
        return decode_reply(self._flow, items, reply)

    def close(self) -> None:
        try:
            if self._streams is not None:
                self._streams[1].close()
        except RuntimeError:  # its event loop is already closed
            pass
        self._sock.close()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
