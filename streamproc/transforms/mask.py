"""``mask``: letters and digits replaced by ``char`` except the first/last kept ones.

Separators (anything not alphanumeric) are kept so the shape stays readable
(``j***.***@*******.***``). If ``keep_first + keep_last`` would reveal the whole value,
everything is masked instead.

With ``length`` the output is always exactly ``length`` characters, so neither the value's
length nor its separators show: ``keep_first`` and ``keep_last`` characters are kept inside
that length (they must leave at least one mask character), the rest is ``char``. A value of
at most ``keep_first + keep_last`` characters becomes ``length`` mask characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from streamproc.transforms import base
from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueFn,
    ValueType,
)
from streamproc.transforms.registry import register

_ALNUM = re.compile(r"[^\W_]")  # a Unicode letter or digit
_ASCII_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def masker(char: str) -> Any:
    r"""``str -> str`` replacing every letter or digit by ``char``.

    ASCII strings (the usual case: emails, ids, phone numbers) take a byte-table translate,
    which gives the same result as the regex (in ASCII, ``[^\W_]`` is ``[A-Za-z0-9]``) at a
    fraction of the cost; anything else takes the regex.
    """
    sub = _ALNUM.sub
    if not char.isascii():
        return lambda part: sub(char, part)
    table = bytes.maketrans(_ASCII_ALNUM, char.encode("ascii") * len(_ASCII_ALNUM))

    def mask_part(part: str) -> str:
        if part.isascii():
            return part.encode("ascii").translate(table).decode("ascii")
        return sub(char, part)

    return mask_part


@register
@dataclass(frozen=True)
class Mask(Transform):
    name: ClassVar[str] = "mask"
    kinds: ClassVar[frozenset[str]] = frozenset({base.STRING, base.UUID})
    keep_first: int = 0
    keep_last: int = 0
    char: str = "*"
    length: int | None = None  # fixed output length: the value's shape does not show

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Mask:
        base.check_kind(cls, vtype, ctx)
        keep_first = params.get_int("keep_first", 0, minimum=0)
        keep_last = params.get_int("keep_last", 0, minimum=0)
        char = params.get_str("char", "*")
        length = params.opt_int("length", minimum=1)
        params.done()
        if len(char) != 1:
            raise ctx.error("mask: parameter 'char' must be one character")
        if length is not None and keep_first + keep_last >= length:
            raise ctx.error("mask: 'keep_first' + 'keep_last' must be < 'length'")
        if length is not None and length > 1024:
            raise ctx.error("mask: parameter 'length' must be <= 1024")
        return cls(keep_first=keep_first, keep_last=keep_last, char=char, length=length)

    def output_type(self, vtype: ValueType) -> Any:
        # A masked uuid is no longer a uuid.
        return "string" if vtype.kind == base.UUID else vtype.schema

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        if self.length is not None:
            return self._bind_fixed(self.length, vtype.kind == base.UUID)
        sub = masker(self.char)
        first, last = self.keep_first, self.keep_last
        kept = first + last
        as_str = vtype.kind == base.UUID

        def mask(value: Any) -> str:
            s: str = str(value) if as_str else value
            n = len(s)
            if n <= kept:
                return sub(s)
            return s[:first] + sub(s[first : n - last]) + s[n - last :]

        return mask

    def _bind_fixed(self, length: int, as_str: bool) -> ValueFn:
        """``str -> str`` of exactly ``length`` characters (kept ends inside it)."""
        first, last = self.keep_first, self.keep_last
        kept = first + last
        blank = self.char * length
        middle = self.char * (length - kept)

        def mask_fixed(value: Any) -> str:
            s: str = str(value) if as_str else value
            n = len(s)
            if n <= kept:
                return blank
            return s[:first] + middle + s[n - last :]

        return mask_fixed
