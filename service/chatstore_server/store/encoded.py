"""Stored messages written as encoded `chatstore.v1.Message`s, straight from their rows.

A stored message is its columns (id, seq, content) and its body, which is already a
serialized Message holding every other field (`store.bodies`). Protobuf parses
concatenated encodings of one message as their merge, so a Message's encoding is its
columns' fields written before its body: a page of messages is encoded with a `join`
per row, where building a Message object per row, merging its body, sizing and
serializing it took about four times as long (`bench/analysis.md`, 2026-12-05). What a
client parses is the same Message, field for field, as `api.convert.message_to_proto`
builds (tests/test_wire.py compares the two).

The encoding (https://protobuf.dev/programming-guides/encoding/): a field is its key
(field number << 3 | wire type) as a varint, then a varint for VARINT fields, or a
varint length and the bytes for LEN fields (strings, messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# Keys of Message's fields written from columns (message.proto's numbers).
_ID_36 = b"\x0a\x24"  # 1, LEN, 36 bytes: a UUID's canonical text
_SESSION_ID = b"\x12"  # 2, LEN
_SEQ = b"\x18"  # 3, VARINT
_CONTENT = b"\x2a"  # 5, LEN
_COMPACTED_TRUE = b"\x78\x01"  # 15, VARINT, true

# The varints of 0 to 16,383 (one or two bytes), looked up rather than computed: seqs
# and lengths are mostly in that range, and a function call per field would cost more
# than the rest of a message's encoding.
SMALL = 1 << 14
VARINTS = [bytes((n,)) for n in range(128)] + [
    bytes((n & 0x7F | 0x80, n >> 7)) for n in range(128, SMALL)
]


def varint(value: int) -> bytes:
    """`value` (0 or more) as a base-128 varint."""
    if value < SMALL:
        return VARINTS[value]
    out = bytearray()
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def messages(rows: Iterable[Sequence[Any]], session_id: str, hex_ids: bool) -> list[bytes]:
    """Each row of a page (`rows.encoded_page_columns`: id, seq, content as UTF-8,
    body, compacted) of the session `session_id` as an encoded Message, in order.

    `hex_ids`: the ids are the 32 hex digits SQLite stores, not canonical UUID text
    (PostgreSQL's), and get their dashes here.
    """
    session = session_id.encode()
    session = _SESSION_ID + varint(len(session)) + session
    small, varints = SMALL, VARINTS
    encoded = []
    for id, seq, content, body, compacted in rows:
        if hex_ids:
            id = f"{id[:8]}-{id[8:12]}-{id[12:16]}-{id[16:20]}-{id[20:]}"
        size = len(content)
        encoded.append(
            b"".join(
                (
                    _ID_36,
                    id.encode(),
                    session,
                    _SEQ,
                    varints[seq] if seq < small else varint(seq),
                    (_CONTENT + (varints[size] if size < small else varint(size)) + content)
                    if size
                    else b"",
                    body,
                    _COMPACTED_TRUE if compacted else b"",
                )
            )
        )
    return encoded
