"""Signed task packages in Django-Q2's format.

A package is ``django.core.signing.dumps`` of the pickled task dict, salted with the
project's ``name`` and keyed by ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS`` are accepted
when reading, so keys can be rotated without losing queued tasks.
"""

from __future__ import annotations

import pickle
from typing import Any

from django.conf import settings
from django.core import signing

from .exceptions import InvalidSignature


class PickleSerializer:
    """The serializer ``django.core.signing`` calls: pickle at the highest protocol."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


def dumps(obj: Any, *, salt: str, compress: bool = False) -> str:
    """Sign and serialise ``obj`` (a task dict)."""
    return signing.dumps(
        obj, key=settings.SECRET_KEY, salt=salt, compress=compress, serializer=PickleSerializer
    )


def loads(package: str, *, salt: str) -> Any:
    """Verify and deserialise a package; :class:`InvalidSignature` says why it cannot be read."""
    try:
        return signing.loads(
            package,
            key=settings.SECRET_KEY,
            fallback_keys=list(getattr(settings, "SECRET_KEY_FALLBACKS", []) or []),
            salt=salt,
            serializer=PickleSerializer,
        )
    except signing.BadSignature as exc:
        raise InvalidSignature(f"bad signature: {exc}") from exc
    except Exception as exc:  # unpickling can raise anything a class's __setstate__ raises
        raise InvalidSignature(f"payload cannot be unpickled: {type(exc).__name__}: {exc}") from exc
