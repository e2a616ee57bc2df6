"""The bounds scan as it was before it was compiled to source: a closure per schema node,
interpreting the schema per record. Kept as the reference the generated scan must agree
with, byte for byte and reason for reason (``test_bounds_compiled.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamproc.avro.bounds import _FIXED_WIDTH, Limits, _varint, needs_scan
from streamproc.errors import DecodeError, OversizeError

Skip = Callable[[bytes, int], int]


def reference_bounds(schema: Any, limits: Limits) -> Callable[[bytes], None] | None:
    if not needs_scan(schema):
        return None
    root = _BoundsCompiler(limits).build(schema)

    def check(body: bytes) -> None:
        end = root(body, 0)
        if end != len(body):
            raise DecodeError("trailing bytes after the record", reason="trailing_bytes")

    return check


class _BoundsCompiler:
    """Builds one skip function per schema node (closures: the scan is a hot path)."""

    def __init__(self, limits: Limits) -> None:
        self.named: dict[str, Skip] = {}
        self.max_str = limits.max_string_bytes
        self.max_items = limits.max_items

    def build(self, s: Any) -> Skip:
        if isinstance(s, str):
            return self._primitive_or_named(s)
        if isinstance(s, list):
            return self._union(s)
        t = s["type"]
        if t in ("record", "error"):
            return self._record(s)
        if t == "enum":
            return self._enum(s)
        if t == "fixed":
            size = s["size"]

            def skip_fixed(buf: bytes, pos: int) -> int:
                return _advance(buf, pos, size)

            self.named[s["name"]] = skip_fixed
            return skip_fixed
        if t in ("array", "map"):
            return self._blocks(t, self.build(s["items"] if t == "array" else s["values"]))
        # Primitive written as {"type": "long", "logicalType": ...}
        return self.build(t)

    def _primitive_or_named(self, s: str) -> Skip:
        if s in _FIXED_WIDTH:
            width = _FIXED_WIDTH[s]
            return lambda buf, pos: _advance(buf, pos, width)
        if s in ("int", "long"):
            return lambda buf, pos: _varint(buf, pos)[1]
        if s in ("string", "bytes"):
            return self.skip_bytes
        # A named type, possibly recursive: look it up when called.
        named = self.named
        return lambda buf, pos: named[s](buf, pos)

    def _union(self, s: list[Any]) -> Skip:
        branches = [self.build(b) for b in s]
        n = len(branches)

        def skip_union(buf: bytes, pos: int) -> int:
            idx, pos = _varint(buf, pos)
            if not 0 <= idx < n:
                raise DecodeError("union branch index out of range", reason="bad_union")
            return branches[idx](buf, pos)

        return skip_union

    def _record(self, s: dict[str, Any]) -> Skip:
        fields: list[Skip] = []

        def skip_record(buf: bytes, pos: int) -> int:
            for f in fields:
                pos = f(buf, pos)
            return pos

        self.named[s["name"]] = skip_record  # before the fields: a field may refer to it
        fields.extend(self.build(f["type"]) for f in s["fields"])
        return skip_record

    def _enum(self, s: dict[str, Any]) -> Skip:
        symbols = len(s["symbols"])

        def skip_enum(buf: bytes, pos: int) -> int:
            idx, pos = _varint(buf, pos)
            if not 0 <= idx < symbols:
                raise DecodeError("enum index out of range", reason="bad_enum")
            return pos

        self.named[s["name"]] = skip_enum
        return skip_enum

    def _blocks(self, t: str, item: Skip) -> Skip:
        is_map = t == "map"
        max_items = self.max_items
        skip_bytes = self.skip_bytes

        def skip_blocks(buf: bytes, pos: int) -> int:
            total = 0
            while True:
                count, pos = _varint(buf, pos)
                if count == 0:
                    return pos
                if count < 0:
                    count = -count
                    _, pos = _varint(buf, pos)  # block byte size; items still walked
                total += count
                if total > max_items:
                    raise OversizeError(
                        f"{t} claims more than {max_items} items", reason="oversize_items"
                    )
                for _ in range(count):
                    if is_map:
                        pos = skip_bytes(buf, pos)
                    pos = item(buf, pos)

        return skip_blocks

    def skip_bytes(self, buf: bytes, pos: int) -> int:
        n, pos = _varint(buf, pos)
        if n < 0:
            raise DecodeError("negative length", reason="bad_length")
        if n > self.max_str:
            raise OversizeError(
                f"string/bytes of {n} bytes over the {self.max_str} limit",
                reason="oversize_string",
            )
        return _advance(buf, pos, n)


def _advance(buf: bytes, pos: int, n: int) -> int:
    end = pos + n
    if end > len(buf):
        raise DecodeError("truncated value", reason="truncated")
    return end
