"""Docker's size spellings in, docker's size printing out."""

import pytest

from minicontainer.cgroups.units import binary_size, decimal_size, describe_bytes, parse_size

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, expected", [
    ("64m", 64 << 20),
    ("64M", 64 << 20),
    ("64mb", 64 << 20),
    ("64MiB", 64 << 20),
    ("64 m", 64 << 20),
    ("1g", 1 << 30),
    ("1.5g", 3 << 29),
    ("512k", 512 << 10),
    ("1048576", 1048576),
    ("100b", 100),
    ("2t", 2 << 40),
    ("0", 0),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "m", "64q", "-1", "1.2.3", "64mm", "0x10", "six", "1e6", "64 mb b"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("n, text", [
    (64 << 20, "64 MiB"), (1 << 30, "1 GiB"), (512 << 10, "512 KiB"),
    (100, "100 bytes"), ((64 << 20) + 1, "64.0 MiB"),
])
def test_describe_bytes(n, text):
    assert describe_bytes(n) == text


@pytest.mark.parametrize("n, binary, decimal", [
    (0, "0B", "0B"),
    (512, "512B", "512B"),
    (2048000, "1.953MiB", "2.048MB"),
    (64 << 20, "64MiB", "67.11MB"),
    (2 << 30, "2GiB", "2.147GB"),
])
def test_docker_printing(n, binary, decimal):
    assert binary_size(n) == binary
    assert decimal_size(n) == decimal
