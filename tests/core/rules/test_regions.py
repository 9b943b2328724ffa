"""The regions of a connect's IPv4 destination the rules can match (core/rules/regions.py):
what each shape of condition leaves, and Falco's rules (the kernel's test of the same regions:
tests/plugins/sources/ebpf/test_socket_prefilter.py)."""

from __future__ import annotations

import ipaddress

import pytest
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.regions import (LOOPBACK, PRIVATE, PUBLIC, REGIONS, UNSPECIFIED,
                                          connect_regions, region_of)
from syswarden.core.rules.sockfilter import TCP, socket_prefilter

FIELDS = collect_fields()
FALCO_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
ALL = set(REGIONS)


def _regions(tmp_path, cond: str) -> set[str] | None:
    f = tmp_path / "rules.yaml"
    f.write_text(f"- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n")
    eng = RuleEngine.load([str(f)], FIELDS)
    got = connect_regions([node for _r, node in eng.conditions_for("connect")])
    return None if got is None else set(got)


@pytest.mark.parametrize("address, region", [
    ("127.0.0.1", LOOPBACK), ("127.255.0.9", LOOPBACK), ("10.96.0.1", PRIVATE),
    ("172.16.0.1", PRIVATE), ("172.31.255.255", PRIVATE), ("172.32.0.1", PUBLIC),
    ("192.168.1.1", PRIVATE), ("192.169.0.1", PUBLIC), ("0.0.0.0", UNSPECIFIED),
    ("0.0.0.1", PUBLIC), ("8.8.8.8", PUBLIC), ("169.254.169.254", PUBLIC),
])
def test_the_region_of_an_address(address, region):
    assert region_of(ipaddress.IPv4Address(address)) == region
    assert region_of(ipaddress.IPv6Address("::1")) is None         # IPv6: no region


OUTBOUND = ('evt.type = connect and (fd.typechar = 4 or fd.typechar = 6) and '
            '(fd.ip != "0.0.0.0" and fd.net != "127.0.0.0/8" and not fd.snet in '
            '("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))')


@pytest.mark.parametrize("cond, regions", [
    (OUTBOUND, {PUBLIC}),                                         # Falco's outbound
    ('evt.type = connect and fd.ip != "0.0.0.0" and fd.net != "127.0.0.0/8"',
     {PRIVATE, PUBLIC}),                                          # inbound_outbound
    ("evt.type = connect and fd.sip = 169.254.169.254", {PUBLIC}),
    ("evt.type = connect and fd.rip in (127.0.0.1, 10.0.0.1)", {LOOPBACK, PRIVATE}),
    ("evt.type = connect and fd.snet = 172.16.0.0/12", {PRIVATE}),
    ("evt.type = connect and fd.snet = 172.0.0.0/8", {PRIVATE, PUBLIC}),   # holds public too
    ("evt.type = connect and fd.snet in (0.0.0.0/0)", ALL),
    ("evt.type = connect and fd.sip != 127.0.0.1", ALL),          # 127.0.0.2 is loopback too
    ("evt.type = connect and fd.snet != 127.0.0.0/8", ALL - {LOOPBACK}),
    ("evt.type = connect and not fd.snet = 127.0.0.0/8", ALL - {LOOPBACK}),
    ("evt.type = connect and not fd.sip != 10.1.2.3", {PRIVATE}),  # = 10.1.2.3
    ("evt.type = connect and not (fd.snet = 127.0.0.0/8 or fd.snet = 10.0.0.0/8)",
     ALL - {LOOPBACK}),                                           # 172.16/12: still private
    ("evt.type = connect and not (fd.snet != 127.0.0.0/8 and fd.sip != 0.0.0.0)",
     {LOOPBACK, UNSPECIFIED}),
    ("evt.type = connect and (fd.sip = 8.8.8.8 or fd.sip = 127.0.0.1)", {PUBLIC, LOOPBACK}),
    ("evt.type = connect and fd.sip = ::1", set()),               # no IPv4 address equals it
    ("evt.type = connect and fd.net != ::1", ALL),
    # either end: the client's may equal, whatever the server's region
    ("evt.type = connect and fd.net = 127.0.0.0/8", None),
    ("evt.type = connect and not fd.ip != 127.0.0.1", None),
    ("evt.type = connect and not fd.net = 127.0.0.0/8", ALL - {LOOPBACK}),
    # not understood: anywhere
    ("evt.type = connect and fd.lip = 127.0.0.1", None),
    ("evt.type = connect and fd.cnet != 127.0.0.0/8", None),
    ('evt.type = connect and fd.sip.name = "example.com"', None),
    ("evt.type = connect and proc.name = nc", None),
    ("evt.type = connect and fd.sport = 22", None),
    ("evt.type = execve", set()),                                  # no rule on connect
])
def test_the_regions_a_condition_leaves(tmp_path, cond, regions):
    assert _regions(tmp_path, cond) == (None if regions == ALL else regions)


def test_falcos_rules_want_no_loopback_connect_on_the_host(compat):
    eng = RuleEngine.load([str(compat / "falco-rules" / f) for f in FALCO_FILES], FIELDS)
    pf = socket_prefilter(eng)
    assert pf is not None
    host = pf.regions_for(True)
    assert host is not None and LOOPBACK not in host and UNSPECIFIED not in host
    assert PUBLIC in host
    # in a container, "Contact K8S API Server From Container" compares fd.sip.name: any
    assert pf.regions_for(False) is None
    loop = ipaddress.IPv4Address("127.0.0.1")
    assert not pf.accepts("connect", 2, 1, name="wrk", host=True, server=loop)
    assert pf.accepts("connect", 2, 1, name="wrk", host=False, server=loop)
    assert pf.accepts("connect", 2, 1, name="wrk", host=True,
                      server=ipaddress.IPv4Address("93.184.216.34"))
    assert pf.accepts("connect", 2, 2, name="dig", host=True, server=loop)   # UDP teaches
    assert pf.accepts("connect", 10, 1, name="wrk", host=True, server=None)  # IPv6
    assert TCP not in pf.connect_taught
