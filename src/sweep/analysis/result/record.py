"""How the result's dataclasses (fits.py and its sections) become fits.json's dicts and back: one writer and one
reader over their fields, so no section has a to_json of its own to drift from its from_json.

A record's fields are written under their own names, in order. `Value` is a fitted quantity with its 95% interval:
written as fits.json always held it, the value under its own name and the interval under the section's `ci`
({name: [lo, hi]}, present only when some quantity has one, unless the section lists its intervals: `lists_ci`).
A field made with `absent()` is left out when it is None (a law not fitted has no parameters at all), one made with
`absent_when(other)` is left out when `other` is set (a skipped section) and written as null otherwise; one made
with `memory()` is never written.

The reader is strict: a key it does not know, or a missing required one, is a ResultError naming where it is.
Leaf values are kept as written (an int stays an int, null stays None), so reading and writing back gives the same
JSON.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import ClassVar

from ..inputs.load import AnalysisError

_ABSENT, _ABSENT_WHEN, _LISTS_CI, _MEMORY = "absent", "absent_when", "lists_ci", "memory"


class ResultError(AnalysisError):
    """A fits.json (or a part of one) not in the shape its reader knows; the message says where and what to do."""


def absent():
    """A field fits.json leaves out when it is None (default None)."""
    return field(default=None, metadata={_ABSENT: True})


def absent_when(other: str):
    """A field left out when the field `other` is set (a skipped section), else written, as null when None."""
    return field(default=None, metadata={_ABSENT_WHEN: other})


def lists_ci():
    """A bool, not written itself: True makes the section write `ci` even when no quantity got an interval (a
    section that ran its bootstrap lists what came of it, {} included)."""
    return field(default=False, metadata={_LISTS_CI: True})


def memory():
    """A field held in memory only (default None): never written to fits.json, never read from it, not compared."""
    return field(default=None, compare=False, repr=False, metadata={_MEMORY: True})


@dataclass
class Value:
    """A fitted quantity and its 95% interval [lo, hi] (None: none). value is None only when read back from a
    fits.json that held a non-finite number (null)."""
    value: float | None
    ci: list[float] | None = None


class Record:
    """A dataclass of fits.json: `to_json()` its dict, `from_json(d)` the record back (ResultError if d does not fit
    its fields). CI_AT names the field `ci` is written before (default: last), CI_ORDER the order of its intervals
    (default: the fields'), so that fits.json keeps the layout it always had."""

    CI_AT: ClassVar[str | None] = None
    CI_ORDER: ClassVar[tuple[str, ...] | None] = None

    def to_json(self) -> dict:
        return _write(self)

    @classmethod
    def from_json(cls, d: dict, where: str | None = None):
        return _read(cls, d, where or cls.__name__)


def _write(x):
    if isinstance(x, Record):
        out, ci, listed = {}, {}, False
        for f in fields(x):
            v, meta = getattr(x, f.name), f.metadata
            if f.name == x.CI_AT:
                out["ci"] = ci  # filled as the Values are written, left out below if it stays empty
            if _MEMORY in meta:
                continue
            if _LISTS_CI in meta:
                listed = bool(v)
                continue
            if v is None and _left_out(x, meta):
                continue
            if isinstance(v, Value):
                out[f.name] = v.value
                if v.ci is not None:
                    ci[f.name] = v.ci
            else:
                out[f.name] = _write(v)
        if x.CI_ORDER:
            ci = {k: ci[k] for k in x.CI_ORDER if k in ci}
        if ci or listed:
            out["ci"] = ci  # in place if CI_AT put it there, else last
        elif x.CI_AT is not None:
            out.pop("ci", None)  # CI_AT's place, unused
        return out
    if isinstance(x, (list, tuple)):
        return [_write(v) for v in x]
    if isinstance(x, dict):
        return {k: _write(v) for k, v in x.items()}
    return x


def _left_out(record, meta) -> bool:
    return bool(meta.get(_ABSENT)) or (_ABSENT_WHEN in meta and getattr(record, meta[_ABSENT_WHEN]) is not None)


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _holds_value(tp) -> bool:
    return tp is Value or Value in typing.get_args(tp)


def _read(tp, x, where: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if x is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _read(rest[0], x, where) if len(rest) == 1 else x  # float | int: as written
    if origin is list:
        if not isinstance(x, list):
            raise ResultError(f"{where}: expected a list, found {type(x).__name__}")
        return [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(x)]
    if origin is dict:
        if not isinstance(x, dict):
            raise ResultError(f"{where}: expected an object, found {type(x).__name__}")
        return {k: _read(args[1], v, f"{where}.{k}") for k, v in x.items()}
    if isinstance(tp, type) and issubclass(tp, Record):
        return _read_record(tp, x, where)
    return x  # a leaf (float, str, bool, Any, a free-form dict or list): as written


def _read_record(cls, d, where: str):
    if not isinstance(d, dict):
        raise ResultError(f"{where}: expected an object, found {type(d).__name__}")
    hints = _hints(cls)
    values = [f.name for f in fields(cls) if _MEMORY not in f.metadata and _holds_value(hints[f.name])]
    ci = d.get("ci") if values else None
    if values and ci is not None and not (isinstance(ci, dict) and set(ci) <= set(values)):
        raise ResultError(f"{where}.ci: intervals of {sorted(set(ci) - set(values)) if isinstance(ci, dict) else ci}"
                          f", which this section does not have")
    kwargs, known = {}, {"ci"} if values else set()
    for f in fields(cls):
        if _MEMORY in f.metadata:
            continue
        if _LISTS_CI in f.metadata:
            kwargs[f.name] = "ci" in d
            continue
        if f.name not in d:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ResultError(f"{where}: no {f.name!r}")
            continue
        known.add(f.name)
        if f.name in values:
            kwargs[f.name] = Value(d[f.name], (ci or {}).get(f.name))
        else:
            kwargs[f.name] = _read(hints[f.name], d[f.name], f"{where}.{f.name}")
    unknown = sorted(set(d) - known)
    if unknown:
        raise ResultError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    return cls(**kwargs)


def walk_values(record, prefix: str = ""):
    """(path, Value) of every Value in a record tree, by the paths the bootstrap keys its samples with
    ("approach3/alpha", "recipe/<row key>/N_opt"): a row of a list is named by its `key`, a row without one is not
    walked (nothing of it is resampled)."""
    for f in fields(record):
        v = getattr(record, f.name)
        if isinstance(v, Value):
            yield prefix + f.name, v
        elif isinstance(v, Record):
            yield from walk_values(v, f"{prefix}{f.name}/")
        elif isinstance(v, list):
            for row in v:
                if isinstance(row, Record) and isinstance(getattr(row, "key", None), str):
                    yield from walk_values(row, f"{prefix}{f.name}/{row.key}/")


def numbers(record) -> dict[str, float]:
    """Every numeric Value of a record tree by its path: the flat form the bootstrap keys its samples by."""
    return {path: float(v.value) for path, v in walk_values(record)
            if isinstance(v.value, (int, float)) and not isinstance(v.value, bool)}
