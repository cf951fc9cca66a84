"""Stored messages written as encoded `chatstore.v1.Message`s, straight from their rows.

A stored message is its seq (a column) and its body, which is already a serialized
Message holding every other field but the session id and the compaction mark
(`store.bodies`). Protobuf parses concatenated encodings of one message as their merge,
so a Message's encoding is the session id and seq written before its body: a page of
messages is encoded with a `join` per row, where building a Message object per row,
merging its body, sizing and serializing it took about four times as long
(`bench/analysis.md`, 2026-12-05). What a client parses is the same Message, field for
field, as `api.convert.message_to_proto` builds (tests/test_wire.py compares the two).

The encoding (https://protobuf.dev/programming-guides/encoding/): a field is its key
(field number << 3 | wire type) as a varint, then a varint for VARINT fields, or a
varint length and the bytes for LEN fields (strings, messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# Keys of Message's fields written here (message.proto's numbers).
_SESSION_ID = b"\x12"  # 2, LEN
_SEQ = b"\x18"  # 3, VARINT
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


def messages(rows: Iterable[Sequence[Any]], session_id: str) -> list[bytes]:
    """Each row of a page (`rows.page_columns`: seq, body, compacted) of the session
    `session_id` as an encoded Message, in order."""
    session = session_id.encode()
    session_seq = _SESSION_ID + varint(len(session)) + session + _SEQ
    small, varints = SMALL, VARINTS
    return [
        b"".join(
            (
                session_seq,
                varints[seq] if seq < small else varint(seq),
                body,
                _COMPACTED_TRUE if compacted else b"",
            )
        )
        for seq, body, compacted in rows
    ]
