"""Random ids from the shared pool: well formed, never handed out twice, and a forked
child never repeats its parent's."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from chatstore_server import ids


def test_request_ids_are_32_hex_digits_and_unique_across_pool_reads() -> None:
    made = [ids.random_hex() for _ in range(2_000)]  # several 4 KiB reads
    assert all(re.fullmatch(r"[0-9a-f]{32}", made_id) for made_id in made)
    assert len(set(made)) == len(made)


def test_uuid4s_are_version_4_variant_rfc_4122_and_unique() -> None:
    made = [ids.uuid4() for _ in range(2_000)]
    assert {u.version for u in made} == {4}
    assert {u.variant for u in made} == {uuid.RFC_4122}
    assert len(set(made)) == len(made)


def test_uuid7s_are_version_7_ordered_by_their_millisecond_and_unique() -> None:
    before = time.time_ns() // 1_000_000
    made = [ids.uuid7() for _ in range(2_000)]
    after = time.time_ns() // 1_000_000

    assert {u.version for u in made} == {7}
    assert {u.variant for u in made} == {uuid.RFC_4122}
    assert len(set(made)) == len(made)
    stamps = [u.int >> 80 for u in made]  # the first 48 bits: Unix time in ms
    assert before <= min(stamps)
    assert max(stamps) <= after
    assert stamps == sorted(stamps)
    # Ordered as text too (SQLite stores the hex digits): by millisecond.
    assert [u.hex[:12] for u in made] == sorted(u.hex[:12] for u in made)


def test_threads_never_share_an_id() -> None:
    found: list[list[str]] = [[] for _ in range(8)]

    def make(into: list[str]) -> None:
        into.extend(ids.random_hex() for _ in range(1_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [made_id for into in found for made_id in into]
    assert len(set(every)) == len(every) == 8_000


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    ids.random_hex()  # the pool holds unread bytes now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.close(read)
        os.write(write, "".join(ids.random_hex() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    parents = "".join(ids.random_hex() for _ in range(4))
    with os.fdopen(read) as pipe:
        childs = pipe.read()
    os.waitpid(child, 0)

    assert len(childs) == len(parents) == 128
    assert childs != parents
