"""A check report as plain JSON data for the cache, and back, trusting nothing.

The cache folder may hold anything (another user's writes, a repository's own files), so
an entry is data, never code: it is read with ``json`` and rebuilt field by field from the
report classes' own type hints. Anything of another shape (a missing or extra field, a
string where a number belongs, an unknown severity) raises ``ValueError``: a miss, checked
afresh. Nothing is rounded (unlike ``to_dict``, made for people), so a report comes back
equal to the one that was kept, face landmarks and descriptors included.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import types
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np

from .._models import FileReport, Probe
from .._probe.faces.engine import Face
from .._probe.faces.match import FaceDescriptor
from .._probe.faces.scan import FaceScan
from .._probe.voice import AudioAnalysis

#: Bump when an entry's layout changes (a report class's fields change the code hash anyway).
ENTRY_FORMAT = 3
#: Array element types an entry may name (landmarks, descriptors); ``np.dtype`` is never
#: called on any other string.
_DTYPES = frozenset({"bool", "uint8", "int32", "int64", "float32", "float64"})
#: Names the report classes' hints use but import only for type checking.
_HINT_NAMES: dict[str, Any] = {"AudioAnalysis": AudioAnalysis, "FaceScan": FaceScan, "Probe": Probe}
#: ``Face.descriptor`` is hinted ``Any`` (``_probe.faces.engine`` cannot import ``_probe.faces.match``).
_OVERRIDES: dict[tuple[type, str], Any] = {(Face, "descriptor"): FaceDescriptor | None}


def encode(report: FileReport) -> bytes:
    """The entry for ``report``. Raises ``TypeError`` or ``ValueError`` for a value the
    report's hints do not allow (then it is not kept)."""
    entry = {"format": ENTRY_FORMAT, "report": _encode(report, FileReport)}
    return json.dumps(entry, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> FileReport:
    """The report an entry holds. Raises ``ValueError`` for anything else (also for JSON
    nested too deep to parse)."""
    try:
        entry = json.loads(data)
        if not isinstance(entry, dict) or entry.keys() != {"format", "report"}:
            raise ValueError("not a cache entry")
        if type(entry["format"]) is not int or entry["format"] != ENTRY_FORMAT:
            raise ValueError(f"entry format {entry['format']!r}, want {ENTRY_FORMAT}")
        report = _DECODE_REPORT(entry["report"])
    except RecursionError as error:  # in the JSON, or in details hinted Any
        raise ValueError("nested too deep") from error
    assert isinstance(report, FileReport)
    return report


def _field_hints(root: type) -> dict[type, dict[str, Any]]:
    """The fields' hints of ``root`` and of every report class it holds, found once."""
    found: dict[type, dict[str, Any]] = {}

    def visit(hint: Any) -> None:
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint not in found:
            module = vars(sys.modules[hint.__module__])
            hints = get_type_hints(hint, globalns=module, localns=_HINT_NAMES)
            found[hint] = {
                f.name: _OVERRIDES.get((hint, f.name), hints[f.name]) for f in dataclasses.fields(hint)
            }
            for field in found[hint].values():
                visit(field)
        for arg in get_args(hint):
            visit(arg)

    visit(root)
    return found


#: The only classes an entry can make.
_CLASSES = _field_hints(FileReport)


def _is_union(origin: Any) -> bool:
    return origin is Union or origin is types.UnionType


def _encode(value: Any, hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return _encode_plain(value)
    if _is_union(origin):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None) and _is_instance(value, arg):
                return _encode(value, arg)
        raise TypeError(f"{type(value).__name__} is not one of {hint}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{value!r} is not one of {args}")
        return value
    if origin is tuple:
        if not isinstance(value, tuple):
            raise TypeError(f"{type(value).__name__} is not a tuple")
        if args[-1] is Ellipsis:
            return [_encode(item, args[0]) for item in value]
        return [_encode(item, arg) for item, arg in zip(value, args, strict=True)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise TypeError("not a dict with text keys")
        return {k: _encode(v, args[1]) for k, v in value.items()}
    if origin is np.ndarray:
        if not isinstance(value, np.ndarray) or value.dtype.name not in _DTYPES:
            raise TypeError("not an array of numbers")
        # The bytes themselves, exact; in hex, which reads back six times faster than base64.
        data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes().hex()
        return {"dtype": value.dtype.name, "shape": list(value.shape), "data": data}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value).value
    if hint in _CLASSES:
        if type(value) is not hint:
            raise TypeError(f"{type(value).__name__} is not {hint.__name__}")
        return {name: _encode(getattr(value, name), field) for name, field in _CLASSES[hint].items()}
    if hint in (bool, int, float, str):
        return _encode_plain(value)
    raise TypeError(f"no entry form for {hint}")


def _is_instance(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is not None and origin is not Literal:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, (int, float, np.integer, np.floating))
    return isinstance(hint, type) and isinstance(value, hint)


def _encode_plain(value: Any) -> Any:
    """JSON data for a value hinted ``Any`` (finding details), tuples and dicts tagged so
    that each comes back as what it was."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, list):
        return [_encode_plain(item) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode_plain(item) for item in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode_plain(v) for k, v in value.items()}}
    raise TypeError(f"no entry form for {type(value).__name__}")


Decoder = Callable[[Any], Any]


def _decoder(hint: Any) -> Decoder:
    """A function that rebuilds a value of type ``hint`` from JSON data or raises
    ``ValueError``; made once per hint, so that reading an entry only runs the checks."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return _decode_plain
    if hint is type(None):
        return _decode_null
    if _is_union(origin):
        if len(args) == 2 and type(None) in args:
            (other,) = (_decoder(arg) for arg in args if arg is not type(None))
            return lambda data: None if data is None else other(data)
        return functools.partial(_decode_union, tuple(_decoder(arg) for arg in args), hint)
    if origin is Literal:
        # type() too: True == 1, and "1" is no Role.
        allowed = {(type(arg), arg) for arg in args}
        return functools.partial(_decode_literal, allowed)
    if origin is tuple:
        if args[-1] is Ellipsis:
            item = _decoder(args[0])
            return lambda data: tuple(item(value) for value in _want(data, list))
        return functools.partial(_decode_pair, tuple(_decoder(arg) for arg in args))
    if origin is dict:
        value = _decoder(args[1])
        return lambda data: {_want(k, str): value(v) for k, v in _want(data, dict).items()}
    if origin is np.ndarray:
        return _decode_array
    if isinstance(hint, type) and issubclass(hint, Enum):
        return lambda data: hint(_want(data, str))
    if hint in _CLASSES:
        fields = {name: _decoder(field) for name, field in _CLASSES[hint].items()}
        return functools.partial(_decode_class, hint, fields)
    if hint is float:
        # JSON writes a whole float as 1.0, but a float field may hold an int: both equal.
        return lambda data: data if type(data) is int else _want(data, float)
    if hint in (bool, int, str):
        return lambda data: _want(data, hint)
    raise TypeError(f"no entry form for {hint}")


def _decode_null(data: Any) -> None:
    if data is not None:
        raise ValueError("want null")


def _decode_union(parts: tuple[Decoder, ...], hint: Any, data: Any) -> Any:
    for part in parts:
        try:
            return part(data)
        except ValueError:
            continue
    raise ValueError(f"not any of {hint}")


def _decode_literal(allowed: set[tuple[type, Any]], data: Any) -> Any:
    if (type(data), data) not in allowed:
        raise ValueError(f"{data!r} is not one of {sorted(str(a) for _, a in allowed)}")
    return data


def _decode_pair(parts: tuple[Decoder, ...], data: Any) -> tuple[Any, ...]:
    items = _want(data, list)
    if len(items) != len(parts):
        raise ValueError(f"want {len(parts)} items")
    return tuple(part(item) for part, item in zip(parts, items, strict=True))


def _decode_class(cls: type, fields: dict[str, Decoder], data: Any) -> Any:
    given = _want(data, dict)
    if given.keys() != fields.keys():
        raise ValueError(f"fields of {cls.__name__} differ")
    try:
        return cls(**{name: field(given[name]) for name, field in fields.items()})
    except TypeError as error:  # a constructor's own check
        raise ValueError(str(error)) from error


def _want(data: Any, kind: type) -> Any:
    # type() rather than isinstance(): a bool is no int here.
    if type(data) is not kind:
        raise ValueError(f"want {kind.__name__}, not {type(data).__name__}")
    return data


def _decode_plain(data: Any) -> Any:
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [_decode_plain(item) for item in data]
    if type(data) is dict and len(data) == 1:
        if type(data.get("tuple")) is list:
            return tuple(_decode_plain(item) for item in data["tuple"])
        if type(data.get("dict")) is dict:
            return {k: _decode_plain(v) for k, v in data["dict"].items()}
    raise ValueError("not a tagged tuple or dict")


def _decode_array(data: Any) -> np.ndarray[Any, Any]:
    fields = _want(data, dict)
    if fields.keys() != {"dtype", "shape", "data"}:
        raise ValueError("fields of an array differ")
    name, shape = fields["dtype"], _want(fields["shape"], list)
    if name not in _DTYPES:
        raise ValueError(f"array of {name!r}")
    dtype = np.dtype(name).newbyteorder("<")
    raw = bytes.fromhex(_want(fields["data"], str))
    if not all(type(n) is int and n >= 0 for n in shape) or math.prod(shape) * dtype.itemsize != len(raw):
        raise ValueError("array shape does not match its data")
    array: np.ndarray[Any, Any] = np.frombuffer(raw, dtype=dtype).astype(np.dtype(name)).reshape(shape)
    return array


_DECODE_REPORT = _decoder(FileReport)
