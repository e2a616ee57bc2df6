"""RFC 6962 hashing, canonical encoding and record parsing."""

from __future__ import annotations

import hashlib

import pytest

from streamproc.audit.encoding import (
    Checkpoint,
    Entry,
    MalformedRecord,
    canonical,
    leaf_hash,
    merkle_root,
    node_hash,
    parse_record,
)

# Certificate Transparency reference inputs and tree heads for sizes 1..8 (RFC 6962 hashing).
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_empty_tree_head_is_sha256_of_nothing() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_tree_heads_match_rfc6962_reference(size: int) -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in CT_LEAVES[:size]]
    assert merkle_root(leaves).hex() == CT_ROOTS[size - 1]


def _recursive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 written as the spec states it (split at largest power of 2 < n)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_recursive_mth(leaves[:k]), _recursive_mth(leaves[k:]))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 9, 16, 17, 31, 100, 1000])
def test_bottom_up_root_equals_recursive_definition(size: int) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    assert merkle_root(leaves) == _recursive_mth(leaves)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)


def test_canonical_is_sorted_compact_utf8_and_refuses_nan() -> None:
    assert canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def test_parse_entry_and_checkpoint(make_trail) -> None:
    records = make_trail(3, every=3)
    kinds = [type(parse_record(r)) for r in records]
    assert kinds == [Entry, Entry, Entry, Checkpoint]
    e = parse_record(records[0])
    assert isinstance(e, Entry) and e.hash == leaf_hash(records[0]).hex()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1,2]",
        b'{"v":2,"type":"entry"}',
        b'{"v":1,"type":"other"}',
        b'{"v":1,"type":"entry","seq":-1,"ts":"t","kind":"k","fields":{},"prev":"'
        + b"0" * 64
        + b'"}',
        b'{"v":1,"type":"entry","seq":1,"ts":"t","kind":"k","fields":{},"prev":"XYZ"}',
        b'{"v":1,"type":"entry","seq":1,"ts":"t","kind":"k","fields":[],"prev":"'
        + b"0" * 64
        + b'"}',
        b'{"v":1,"type":"entry","seq":1,"ts":"t","kind":"k","fields":{},"prev":"'
        + b"0" * 64
        + b'","extra":1}',
        b"\xff\xfe",
    ],
)
def test_malformed_records_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedRecord):
        parse_record(raw)
