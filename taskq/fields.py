"""A text column holding a pickled value, in django-picklefield's format (as Django-Q2 uses).

The stored text is ``base64(pickle.dumps(value, protocol=-1))``, so rows written by
Django-Q2 read back here unchanged, and rows written here read back in Django-Q2.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.db import models


def encode(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def decode(text: str) -> Any:
    return pickle.loads(base64.b64decode(text.encode()))


class PickledText(str):
    """Marks text that is already encoded, so it is stored as it is."""

    __slots__ = ()


class PickledObjectField(models.TextField):
    """Any picklable value, stored as base64 text."""

    empty_strings_allowed = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("protocol", None)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        try:
            return decode(value)
        except Exception:  # a value that was never pickled reads back as its text
            return value

    def to_python(self, value: Any) -> Any:
        return value

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None or isinstance(value, PickledText):
            return value
        return encode(value)

    def value_to_string(self, obj: models.Model) -> str:
        return encode(self.value_from_object(obj))

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name not in ("exact", "in", "isnull"):
            raise TypeError(f"lookup {lookup_name!r} is not supported on a pickled field")
        return super().get_lookup(lookup_name)
