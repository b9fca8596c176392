"""Task ids and names.

A task id is 32 hexadecimal digits, as Django-Q2's (``uuid4().hex``), laid out as a
UUID version 7 (RFC 9562): the first 48 bits are the Unix time in milliseconds, the
rest (but the version and variant bits) random. Ids made close together therefore sort
close together, so that the result rows a batch writes go to the end of the task
table's primary-key index instead of one random page each: on SQLite, inserting a batch
of 50 result rows into a table of 50 000 took about half the time (docs/benchmark.md).
74 random bits keep ids unguessable and unique.

A task's name is a human-readable hash of its id (four words): the words come from a
digest of the whole id, so that tasks enqueued in the same minute do not share words
drawn from the time in their ids.
"""

from __future__ import annotations

import hashlib
import os
import time

from .humanhash import humanize

VERSION = 0x7 << 76
VARIANT = 0x2 << 62
CLEAR = ~((0xF << 76) | (0x3 << 62))


def new_task_id(now_ns: int | None = None) -> str:
    """A new task id: 32 lowercase hex digits, time-ordered to the millisecond."""
    millis = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10))
    return f"{(value & CLEAR) | VERSION | VARIANT:032x}"


def task_name(task_id: str) -> str:
    """The human-readable name of a task: four words hashed from its id."""
    return humanize(hashlib.blake2b(task_id.encode(), digest_size=16).hexdigest())
