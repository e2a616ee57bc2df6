"""Size bounds checked on Avro binary *before* fastavro decodes it.

fastavro allocates what the data claims: an array header claiming 10^9 items of a type that
takes zero bytes (``null``, an empty record) makes it build a billion-element list from a
six-byte payload. A scanner compiled once per writer schema (generated Python source, the
walk unrolled) steps over the bytes without building values and rejects over-limit input.
Schemas with no array or map need no scan: every string/bytes length is already bounded by
the record size (fastavro reads, never preallocates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamproc.errors import DecodeError, OversizeError


@dataclass(frozen=True)
class Limits:
    """Bounds enforced before a payload is decoded (the decoder trusts nothing)."""

    max_record_bytes: int = 1024 * 1024
    max_string_bytes: int = 256 * 1024
    max_items: int = 100_000


_FIXED_WIDTH = {"null": 0, "boolean": 1, "float": 4, "double": 8}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    acc = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint", reason="truncated")
        b = buf[pos]
        pos += 1
        acc |= (b & 0x7F) << shift
        if not b & 0x80:
            return (acc >> 1) ^ -(acc & 1), pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes", reason="bad_varint")


def needs_scan(schema: Any, _seen: set[str] | None = None) -> bool:
    """True when the schema contains an array or map anywhere."""
    seen = _seen if _seen is not None else set()
    if isinstance(schema, list):
        return any(needs_scan(s, seen) for s in schema)
    if isinstance(schema, dict):
        t = schema.get("type")
        if t in ("array", "map"):
            return True
        if t in ("record", "error"):
            name = schema.get("name", "")
            if name in seen:
                return False
            seen.add(name)
            return any(needs_scan(f["type"], seen) for f in schema["fields"])
        return isinstance(t, (dict, list)) and needs_scan(t, seen)
    return False


def compile_bounds(schema: Any, limits: Limits) -> Callable[[bytes], None] | None:
    """A checker ``check(body)`` for the writer ``schema`` (parsed by fastavro), or None
    when the schema has no array/map and the record-size bound alone is enough.

    The checker is Python source generated once per schema: one function with the walk
    unrolled (a record's fields in sequence, a one-byte varint read inline), plus one function
    per record type referenced by name (recursive types). It raises what a walk interpreting
    the schema would, at the same byte, with the same reason.
    """
    if not needs_scan(schema):
        return None
    return _ScanWriter(limits).build(schema)


# Block nesting the generated code may reach before an item moves into a function of its own
# (CPython refuses more than 20 statically nested blocks).
_MAX_DEPTH = 8


def _truncated() -> None:
    raise DecodeError("truncated value", reason="truncated")


def _bad_length(n: int, limit: int) -> None:
    if n < 0:
        raise DecodeError("negative length", reason="bad_length")
    raise OversizeError(
        f"string/bytes of {n} bytes over the {limit} limit", reason="oversize_string"
    )


def _skip_bytes(buf: bytes, pos: int, limit: int) -> int:
    """The end of a string/bytes value at ``pos`` (not checked against the buffer's end)."""
    n, pos = _varint(buf, pos)
    if n < 0 or n > limit:
        _bad_length(n, limit)
    return pos + n


def _too_many(kind: str, limit: int) -> None:
    raise OversizeError(f"{kind} claims more than {limit} items", reason="oversize_items")


class _ScanWriter:
    """Writes the source of one schema's scan: statements that advance ``pos`` over ``buf``
    (``n`` is ``len(buf)``), raising on what is over a limit or malformed."""

    def __init__(self, limits: Limits) -> None:
        self.max_str = limits.max_string_bytes
        self.max_items = limits.max_items
        self.defs: dict[str, Any] = {}  # named type -> its definition
        self.refs: set[str] = set()  # named records referenced by name: one function each
        self.names: dict[str, str] = {}  # named record -> its function's name
        self.functions: list[str] = []
        self.counter = 0

    def build(self, schema: Any) -> Callable[[bytes], None]:
        self._collect(schema)
        lines = ["def _check(buf):", "    n = len(buf)", "    pos = 0"]
        self._emit(schema, lines, 1)
        lines.append("    if pos != n:")
        lines.append(
            '        raise DecodeError("trailing bytes after the record", reason="trailing_bytes")'
        )
        for name in sorted(self.refs):
            if self.defs[name]["type"] not in ("record", "error"):
                continue
            body = [f"def {self._fn(name)}(buf, pos, n):"]
            self._emit_record(self.defs[name], body, 1)
            body.append("    return pos")
            self.functions.append("\n".join(body))
        source = "\n\n".join([*self.functions, "\n".join(lines)])
        namespace: dict[str, Any] = {
            "DecodeError": DecodeError,
            "_varint": _varint,
            "_truncated": _truncated,
            "_bad_length": _bad_length,
            "_skip_bytes": _skip_bytes,
            "_too_many": _too_many,
        }
        exec(compile(source, "<streamproc bounds scan>", "exec"), namespace)
        check: Callable[[bytes], None] = namespace["_check"]
        return check

    def _collect(self, s: Any) -> None:
        """Record every named definition and which names are referenced (not defined) where."""
        if isinstance(s, str):
            if s not in _FIXED_WIDTH and s not in ("int", "long", "string", "bytes"):
                self.refs.add(s)
            return
        if isinstance(s, list):
            for b in s:
                self._collect(b)
            return
        t = s["type"]
        if t in ("record", "error", "enum", "fixed"):
            self.defs[s["name"]] = s
        if t in ("record", "error"):
            for f in s["fields"]:
                self._collect(f["type"])
        elif t == "array":
            self._collect(s["items"])
        elif t == "map":
            self._collect(s["values"])
        elif t not in ("enum", "fixed"):
            self._collect(t)

    def _fn(self, name: str) -> str:
        """The function scanning the named record ``name``."""
        fn = self.names.get(name)
        if fn is None:
            fn = self.names[name] = self._var("_rec")
        return fn

    def _var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def _emit(self, s: Any, out: list[str], depth: int) -> None:
        """Append the statements skipping one value of ``s`` at indentation ``depth``."""
        ind = "    " * depth
        if isinstance(s, str):
            if s in _FIXED_WIDTH:
                if _FIXED_WIDTH[s]:
                    out.append(f"{ind}pos += {_FIXED_WIDTH[s]}")
                    out.append(f"{ind}if pos > n: _truncated()")
                return
            if s in ("int", "long"):
                out.append(f"{ind}if pos < n and buf[pos] < 128: pos += 1")
                out.append(f"{ind}else: pos = _varint(buf, pos)[1]")
                return
            if s in ("string", "bytes"):
                if self.max_str >= 63:
                    # A one-byte length is 0..63 (even) or negative (odd): the common case
                    # in one test, anything else through the general path.
                    b = self._var("b")
                    out.append(f"{ind}if pos < n and not ({b} := buf[pos]) & 129:")
                    out.append(f"{ind}    pos += 1 + ({b} >> 1)")
                    out.append(f"{ind}else:")
                    out.append(f"{ind}    pos = _skip_bytes(buf, pos, {self.max_str})")
                    out.append(f"{ind}if pos > n: _truncated()")
                    return
                size = self._varint(out, depth, "ln")
                out.append(f"{ind}if {size} < 0 or {size} > {self.max_str}:")
                out.append(f"{ind}    _bad_length({size}, {self.max_str})")
                out.append(f"{ind}pos += {size}")
                out.append(f"{ind}if pos > n: _truncated()")
                return
            d = self.defs[s]
            if d["type"] in ("record", "error"):
                out.append(f"{ind}pos = {self._fn(s)}(buf, pos, n)")
            else:
                self._emit(d, out, depth)
            return
        if isinstance(s, list):
            self._union(s, out, depth)
            return
        t = s["type"]
        if t in ("record", "error"):
            if s["name"] in self.refs:
                out.append(f"{ind}pos = {self._fn(s['name'])}(buf, pos, n)")
            else:
                self._emit_record(s, out, depth)
        elif t == "enum":
            idx = self._varint(out, depth, "e")
            out.append(f"{ind}if not 0 <= {idx} < {len(s['symbols'])}:")
            out.append(f'{ind}    raise DecodeError("enum index out of range", reason="bad_enum")')
        elif t == "fixed":
            out.append(f"{ind}pos += {int(s['size'])}")
            out.append(f"{ind}if pos > n: _truncated()")
        elif t in ("array", "map"):
            self._blocks(t, s["items"] if t == "array" else s["values"], out, depth)
        else:  # a primitive written as {"type": "long", "logicalType": ...}
            self._emit(t, out, depth)

    def _emit_record(self, s: dict[str, Any], out: list[str], depth: int) -> None:
        for f in s["fields"]:
            self._emit(f["type"], out, depth)

    def _varint(self, out: list[str], depth: int, prefix: str) -> str:
        """Read one zigzag varint into a fresh local (one byte inline); returns its name."""
        ind = "    " * depth
        v, b = self._var(prefix), self._var("b")
        out.append(f"{ind}if pos < n and ({b} := buf[pos]) < 128:")
        out.append(f"{ind}    pos += 1")
        out.append(f"{ind}    {v} = ({b} >> 1) ^ -({b} & 1)")
        out.append(f"{ind}else:")
        out.append(f"{ind}    {v}, pos = _varint(buf, pos)")
        return v

    def _nested(self, s: Any, out: list[str], depth: int) -> None:
        """``s`` at ``depth``, or a call to a function of its own when nested too deep."""
        if depth <= _MAX_DEPTH:
            self._emit(s, out, depth)
            return
        name = self._var("_skip")
        body = [f"def {name}(buf, pos, n):"]
        self._emit(s, body, 1)
        body.append("    return pos")
        self.functions.append("\n".join(body))
        out.append(f"{'    ' * depth}pos = {name}(buf, pos, n)")

    def _union(self, branches: list[Any], out: list[str], depth: int) -> None:
        ind = "    " * depth
        idx = self._varint(out, depth, "u")
        out.append(f"{ind}if not 0 <= {idx} < {len(branches)}:")
        out.append(
            f'{ind}    raise DecodeError("union branch index out of range", reason="bad_union")'
        )
        first = True
        for i, b in enumerate(branches):
            code: list[str] = []
            self._nested(b, code, depth + 1)
            if not code:
                continue  # a null branch: nothing to skip
            out.append(f"{ind}{'if' if first else 'elif'} {idx} == {i}:")
            out.extend(code)
            first = False

    def _blocks(self, kind: str, item: Any, out: list[str], depth: int) -> None:
        ind = "    " * depth
        total = self._var("total")
        body: list[str] = []
        if kind == "map":
            self._nested("string", body, depth + 2)
        self._nested(item, body, depth + 2)
        out.append(f"{ind}{total} = 0")
        out.append(f"{ind}while True:")
        count = self._varint(out, depth + 1, "c")
        out.append(f"{ind}    if {count} == 0:")
        out.append(f"{ind}        break")
        out.append(f"{ind}    if {count} < 0:")
        out.append(f"{ind}        {count} = -{count}")
        # The block byte size: skipped, the items are still walked.
        out.append(f"{ind}        pos = _varint(buf, pos)[1]")
        out.append(f"{ind}    {total} += {count}")
        out.append(f"{ind}    if {total} > {self.max_items}:")
        out.append(f"{ind}        _too_many({kind!r}, {self.max_items})")
        if body:  # items of no bytes (null, an empty record) need no walk
            out.append(f"{ind}    for _ in range({count}):")
            out.extend(body)
