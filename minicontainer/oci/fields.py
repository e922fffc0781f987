"""Typed reading of config.json's fields: each helper checks one value's
JSON type (and, for some, its form) and raises BadConfig naming the field
(`where`), e.g. "config.json: process.user.uid must be an integer of 0 or
more, not -1". oci/config.py reads the file with them."""

import json

from ..errors import BadConfig


def missing(where: str):
    return BadConfig(f"config.json: {where} is required", "see the OCI runtime spec, config.md")


def wrong(where: str, kind: str, value):
    return BadConfig(f"config.json: {where} must be {kind}, not {json.dumps(value)[:40]}",
                     "see the OCI runtime spec, config.md")


def an_object(value, where: str, required: bool = False) -> dict:
    if value is None and required:
        raise missing(where)
    if value is not None and not isinstance(value, dict):
        raise wrong(where, "an object", value)
    return value or {}


def a_list(value, where: str, required: bool = False) -> list:
    if value is None and required:
        raise missing(where)
    if value is not None and not isinstance(value, list):
        raise wrong(where, "a list", value)
    return value or []


def a_string(value, where: str, required: bool = False) -> str:
    if value is None and required:
        raise missing(where)
    if value is not None and not isinstance(value, str):
        raise wrong(where, "a string", value)
    return value or ""


def a_bool(value, where: str, required: bool = False) -> bool:
    if value is None and required:
        raise missing(where)
    if value is not None and not isinstance(value, bool):
        raise wrong(where, "true or false", value)
    return bool(value)


def an_int(value, where: str, required: bool = False) -> int:
    if value is None and required:
        raise missing(where)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise wrong(where, "an integer", value)
    return value or 0


def a_uint(value, where: str, required: bool = False) -> int:
    number = an_int(value, where, required)
    if number < 0:
        raise wrong(where, "an integer of 0 or more", value)
    return number


def absolute(path: str, where: str) -> None:
    if not path.startswith("/"):
        raise BadConfig(f"config.json: {where} {path!r} is not an absolute path",
                        "give a path starting with /")


def string_map(value, where: str) -> dict:
    mapping = an_object(value, where)
    for key, item in mapping.items():
        a_string(item, f"{where}.{key}")
    return mapping
