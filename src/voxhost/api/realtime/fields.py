"""Reading the JSON of a Realtime client event field by field, strictly.

A value of the wrong type, a null where null means nothing, a number out of range or a field that no
reader asked for is a `BadRequest` naming the field by its dotted path (`param`), never an exception
that drops the socket. Each reader says what a field may hold; `Fields.done()` refuses the fields
nobody read, with the reason when the protocol module declines that field on purpose.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

from voxhost.errors import BadRequest

T = TypeVar("T")


class _Unset(enum.Enum):
    UNSET = 0


UNSET: Literal[_Unset.UNSET] = _Unset.UNSET  # the field is absent (unlike null: `None`)
Maybe: TypeAlias = T | Literal[_Unset.UNSET]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class Fields:
    """One JSON object of a client event; `path` is its place in the event ("session.audio.input")."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise BadRequest(
                f"{path or 'the event'} must be an object, not {_kind(value)}", param=path or None
            )
        self._data: dict[str, Any] = value
        self.path = path
        self._read: set[str] = set()

    def param(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def is_null(self, key: str) -> bool:
        """Whether the field is there and null, for the fields where null means something (turn
        detection off, a setting cleared); the readers below refuse a null."""
        if key in self._data and self._data[key] is None:
            self._read.add(key)
            return True
        return False

    def _take(self, key: str) -> object:
        self._read.add(key)
        if key not in self._data:
            return UNSET
        value = self._data[key]
        if value is None:
            raise BadRequest(f"{self.param(key)} may not be null", param=self.param(key))
        return value

    def _wrong(self, key: str, wanted: str, value: object) -> BadRequest:
        return BadRequest(f"{self.param(key)} must be {wanted}, not {_kind(value)}", param=self.param(key))

    def text(self, key: str, *, max_length: int = 10_000) -> Maybe[str]:
        value = self._take(key)
        if value is UNSET:
            return UNSET
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        if len(value) > max_length:
            raise BadRequest(
                f"{self.param(key)} is longer than {max_length} characters", param=self.param(key)
            )
        return value

    def choice(self, key: str, options: Sequence[str]) -> Maybe[str]:
        value = self.text(key)
        if value is not UNSET and value not in options:
            listed = ", ".join(repr(o) for o in options)
            raise BadRequest(
                f"{self.param(key)} must be one of {listed}, not {value!r}", param=self.param(key)
            )
        return value

    def number(self, key: str, low: float = -math.inf, high: float = math.inf) -> Maybe[float]:
        value = self._take(key)
        if value is UNSET:
            return UNSET
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, "a number", value)
        if not math.isfinite(value):
            raise BadRequest(f"{self.param(key)} must be a finite number", param=self.param(key))
        if not low <= value <= high:
            raise BadRequest(f"{self.param(key)} must be between {low:g} and {high:g}", param=self.param(key))
        return float(value)

    def integer(self, key: str, low: int = -(2**53), high: int = 2**53) -> Maybe[int]:
        value = self.number(key, low, high)
        if value is UNSET:
            return UNSET
        if not value.is_integer():
            raise BadRequest(f"{self.param(key)} must be a whole number, not {value}", param=self.param(key))
        return int(value)

    def boolean(self, key: str) -> Maybe[bool]:
        value = self._take(key)
        if value is UNSET:
            return UNSET
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def strings(self, key: str, *, max_items: int = 1000, max_length: int = 1000) -> Maybe[list[str]]:
        value = self._take(key)
        if value is UNSET:
            return UNSET
        if not isinstance(value, list):
            raise self._wrong(key, "an array of strings", value)
        if len(value) > max_items:
            raise BadRequest(f"{self.param(key)} has more than {max_items} entries", param=self.param(key))
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self._wrong(f"{key}[{i}]", "a string", item)
            if len(item) > max_length:
                raise BadRequest(f"{self.param(key)}[{i}] is too long", param=self.param(key))
        return list(value)

    def object(self, key: str) -> Maybe[Fields]:
        value = self._take(key)
        if value is UNSET:
            return UNSET
        return Fields(value, self.param(key))

    def done(self, declined: Mapping[str, str] = {}) -> None:
        """Refuse the fields nobody read: those `declined` (by dotted path) with its reason."""
        for key in self._data:
            if key in self._read:
                continue
            param = self.param(key)
            if param in declined:
                raise BadRequest(f"{param} is not supported: {declined[param]}", param=param)
            raise BadRequest(f"unknown field {param}", param=param)
