"""Codegen phase: the Python source of a plan's record functions, and exec into a callable.

Each record becomes one function returning a single dict display, one bound callable per
transformed field, so sanitizing interprets nothing at run time. When that fast path fails,
a locator re-runs the record field by field and raises a value-free :class:`TransformError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streamproc.errors import PolicyError, RecordError, TransformError

Sanitize = Callable[[dict[str, Any]], dict[str, Any]]


class Entry(NamedTuple):
    """One output field of a record function: its name, value expression and path."""

    name: str
    code: str
    path: str


@dataclass
class Source:
    """The generated source so far and the globals it runs in (bound transforms, locators)."""

    globals: dict[str, Any] = field(default_factory=lambda: {"TransformError": TransformError})
    code: list[str] = field(default_factory=list)
    counter: int = 0

    def name(self, prefix: str) -> str:
        """A fresh global or local name, unique within the plan."""
        self.counter += 1
        return f"_{prefix}{self.counter}"

    def text(self) -> str:
        return "\n".join(self.code)

    def unless_null(self, var: str, src: str, code: str) -> str:
        """``code`` (reading ``var``) applied to ``src`` unless it is None."""
        return f"(None if ({var} := {src}) is None else {code})"

    def each(self, kind: str, var: str, src: str, code: str) -> str:
        """``code`` (reading ``var``) applied to each element of an array or map ``src``."""
        if kind == "array":
            return f"[{code} for {var} in {src}]"
        key = self.name("k")
        return f"{{{key}: {code} for {key}, {var} in {src}.items()}}"

    def record_function(self, label: str, path: str, entries: list[Entry], uses_u: bool) -> str:
        """Add the function building a record's output from ``entries``; returns its name.

        ``uses_u`` adds ``_u``, the tuple of enclosing records, for subjects read from them.
        """
        fn = self.name("rec")
        fields_name = self.name("fields")
        fail = self.name("fail")
        lines = [f"def {fn}(r, up=()):"]
        if uses_u:
            lines.append("    _u = up + (r,)")
        lines.append("    try:")
        lines.append("        return {")
        for e in entries:
            lines.append(f"            {e.name!r}: {e.code},")
        lines.append("        }")
        lines.append("    except TransformError:")
        lines.append("        raise")
        lines.append("    except Exception:")
        lines.append("        pass")
        lines.append(f"    {fail}(r, up)")
        lines.append(f"{fields_name} = [")
        for e in entries:
            lines.append(f"    ({e.path!r}, {e.name!r}, lambda r, up, _u: {e.code}),")
        lines.append("]")
        self.code.append("\n".join(lines))
        self.globals[fail] = make_fail(label, path, self.globals, fields_name)
        return fn

    def build(self, label: str, fn_name: str | None) -> Sanitize:
        """Exec the source; the top record's function (a copy when nothing changes)."""
        exec(compile(self.text(), f"<streamproc plan {label}>", "exec"), self.globals)
        if fn_name is None:
            return copy_record
        sanitize: Sanitize = self.globals[fn_name]
        return sanitize


def make_fail(
    label: str, path: str, namespace: dict[str, Any], fields_name: str
) -> Callable[[Any, tuple[Any, ...]], None]:
    """Locate the failing field of a record, raise a value-free TransformError."""
    where = path or "<top>"

    def fail(r: Any, up: tuple[Any, ...]) -> None:
        if not isinstance(r, dict):
            raise TransformError(f"schema {label}: record {where}: not a record")
        u = (*up, r)
        for fpath, name, fn in namespace[fields_name]:
            problem = None
            if name not in r:
                problem = "missing"
            else:
                try:
                    fn(r, up, u)
                except TransformError:
                    raise
                except RecordError as exc:  # a refusal with its own reason (DP budget keys)
                    raise type(exc)(
                        f"schema {label}: field {fpath}: {exc}", reason=exc.reason
                    ) from None
                except Exception as exc:
                    problem = type(exc).__name__
            if problem is not None:
                raise TransformError(f"schema {label}: field {fpath}: {problem}")
        raise TransformError(f"schema {label}: record {where}: cannot be sanitized")

    return fail


def copy_record(record: dict[str, Any]) -> dict[str, Any]:
    """The sanitize of a plan that changes nothing: a shallow copy."""
    return dict(record)


def unbound(label: str) -> Sanitize:
    """The sanitize of a derive-only plan: refuses to run."""

    def sanitize(record: dict[str, Any]) -> dict[str, Any]:
        raise PolicyError(f"schema {label}: plan was derived without binding; use compile_plan")

    return sanitize
