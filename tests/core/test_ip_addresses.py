"""Shared IP addresses: they are ipaddress objects in every way the rules and outputs use."""

from __future__ import annotations

import ipaddress
import json
import pickle
import socket

import pytest

from syswarden.core import ip_addresses as A
from syswarden.core.rules.output import json_value


@pytest.mark.parametrize("text", ["127.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.2.3",
                                  "::1", "::", "2001:db8::1", "fe80::1:2:3:4",
                                  "2001:db8:0:0:1:0:0:1", "1:2:3:4:5:6:7:8"])
def test_an_address_prints_compares_and_hashes_as_ipaddress_does(text):
    plain = ipaddress.ip_address(text)
    family = socket.AF_INET if plain.version == 4 else socket.AF_INET6
    addr = A.from_packed(socket.inet_pton(family, text))
    assert str(addr) == str(plain) and f"{addr}:80" == f"{plain}:80"
    assert format(addr, "b") == format(plain, "b")        # a format spec is still honoured
    assert repr(addr) == repr(plain)
    assert addr == plain and plain == addr and hash(addr) == hash(plain)
    assert {plain: 1}[addr] == 1
    assert isinstance(addr, type(plain)) and addr.version == plain.version
    assert addr in ipaddress.ip_network(f"{text}/{plain.max_prefixlen}")
    assert json_value(addr) == str(plain) and json.dumps(str(addr))
    assert pickle.loads(pickle.dumps(addr)) == plain
    assert addr.family == ("ipv4" if plain.version == 4 else "ipv6")


def test_an_ipv4_mapped_ipv6_address_is_its_ipv4_address():
    addr = A.from_packed(socket.inet_pton(socket.AF_INET6, "::ffff:1.2.3.4"))
    assert addr == ipaddress.IPv4Address("1.2.3.4") and str(addr) == "1.2.3.4"
    assert addr.family == "ipv4"


def test_the_same_bytes_give_the_same_object():
    packed = bytes([192, 168, 0, 1])
    assert A.from_packed(packed) is A.from_packed(bytes(packed))


def test_the_cache_is_bounded_and_starts_over_when_full():
    for i in range(A.CACHE_SIZE + 10):
        A.from_packed(i.to_bytes(4, "big"))
        assert len(A._cache) <= A.CACHE_SIZE
    assert str(A.from_packed((A.CACHE_SIZE + 9).to_bytes(4, "big"))) == \
        str(ipaddress.IPv4Address(A.CACHE_SIZE + 9))


@pytest.mark.parametrize("packed", [b"", b"\x01\x02\x03", bytes(5), bytes(17)])
def test_other_lengths_are_not_addresses(packed):
    with pytest.raises(ValueError):
        A.from_packed(packed)


def test_proc_net_hex_words_are_read_in_host_order():
    assert A.parse_hex("0100007F") == ipaddress.IPv4Address("127.0.0.1")
    assert A.parse_hex("00000000000000000000000001000000") == ipaddress.IPv6Address("::1")
    assert A.parse_hex("0000000000000000FFFF00000100007F") == \
        ipaddress.IPv4Address("127.0.0.1")
    with pytest.raises(ValueError):
        A.parse_hex("0100")
    with pytest.raises(ValueError):
        A.parse_hex("zz00007F")
