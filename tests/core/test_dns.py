"""The socket name fields as Falco has them (``core/dns.py``): a rule's ``fd.sip.name = NAME``
holds when the socket's address is one of NAME's, as a lookup of NAME (``getaddrinfo``:
``/etc/hosts`` here) gave them, looked up off the hot path; read, the field is the name a rule's
lookup gave the address.  Only ``=``, ``!=`` and ``in`` compare them (Falco's), a disabled
rule's names are never looked up, and the lookups are bounded and counted."""

from __future__ import annotations

import ipaddress
import threading

import pytest
import trio

from syswarden.core import dns
from syswarden.core.capture import Decoder, record_to_event
from syswarden.core.errors import RuleError
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.ruletest import RuleTestError, load_test_file
from syswarden.testing import read_field

LOOPBACK = ipaddress.ip_address("127.0.0.1")

RULES = """
- rule: To localhost
  desc: d
  condition: evt.type = connect and fd.sip.name = localhost
  output: "to %fd.sip.name (%fd.sip)"
  priority: WARNING
- rule: Not to localhost
  desc: d
  condition: evt.type = connect and fd.sip.name != localhost
  output: "elsewhere"
  priority: WARNING
- rule: To one of them
  desc: d
  condition: evt.type = connect and fd.sip.name in (nowhere.invalid, localhost)
  output: "one of them"
  priority: WARNING
- rule: Disabled
  desc: d
  condition: evt.type = connect and fd.sip.name = disabled.invalid
  output: "never"
  priority: WARNING
  enabled: false
"""


@pytest.fixture(scope="module")
def fields():
    return collect_fields()


def _load(tmp_path, fields, text: str, resolver: dns.NameResolver) -> RuleEngine:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return RuleEngine.load([str(path)], fields, rule_matching="all", names=resolver)


def _connect(sip: str = "127.0.0.1"):
    return record_to_event({"type": "connect", "res": 0,
                            "fd": {"sip": sip, "sport": 443, "cip": "127.0.0.1",
                                   "cport": 40000}}, 1, Decoder())


def _fired(engine, evt) -> set[str]:
    return {a.rule for a in engine.check(evt)}


async def test_a_rule_names_a_host_the_system_resolver_knows(tmp_path, fields):
    resolver = dns.NameResolver()
    engine = _load(tmp_path, fields, RULES, resolver)
    assert resolver.names() == ["localhost", "nowhere.invalid"]   # not the disabled rule's
    # not looked up yet: no address is localhost's
    assert _fired(engine, _connect()) == {"Not to localhost"}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resolver.serve)
        with trio.fail_after(dns.TIMEOUT + 5):
            while resolver.counts["dns.lookups"] < 2 or not resolver.match("localhost",
                                                                            LOOPBACK):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert _fired(engine, _connect()) == {"To localhost", "To one of them"}
    assert _fired(engine, _connect("10.1.2.3")) == {"Not to localhost"}
    assert resolver.name_of(LOOPBACK) == "localhost"
    assert resolver.counts["dns.failures"] >= 1                  # nowhere.invalid


def test_an_output_reads_the_name_a_rule_resolved(tmp_path, fields):
    resolver = dns.NameResolver()
    engine = _load(tmp_path, fields, RULES, resolver)
    resolver.refresh("localhost")
    (alert,) = [a for a in engine.check(_connect()) if a.rule == "To localhost"]
    assert "to localhost (127.0.0.1)" in alert.output
    # the field as the registry reads it: the agent's resolver's name
    dns.RESOLVER.want(["localhost"])
    dns.RESOLVER.refresh("localhost")
    assert read_field("fd.sip.name", _connect()) == "localhost"
    assert read_field("fd.sip.name", _connect("10.1.2.3")) is None


@pytest.mark.parametrize("condition, message", [
    ("fd.sip.name contains local", "fd.sip.name is compared with names only by '=', '!=', "
                                   "'in' (as Falco), not by 'contains'"),
    ("fd.rip.name startswith local", "not by 'startswith'"),
    ("toupper(fd.sip.name) = LOCALHOST", "takes no transformer"),
    ("fd.sip = val(fd.cip.name)", "cannot be used in val()"),
    ("fd.lip.name = val(fd.name)", "compared with names, not with val()"),
])
def test_other_comparisons_are_refused_where_they_are_written(tmp_path, fields, condition,
                                                              message):
    text = RULES.split("- rule: Not")[0].replace(
        "evt.type = connect and fd.sip.name = localhost", f"evt.type = connect and {condition}")
    with pytest.raises(RuleError) as exc:
        _load(tmp_path, fields, text, dns.NameResolver())
    assert message in str(exc.value)
    assert "rules.yaml" in str(exc.value.location)


def test_exists_is_no_name_comparison(tmp_path, fields):
    resolver = dns.NameResolver()
    text = RULES.split("- rule: Not")[0].replace("fd.sip.name = localhost", "fd.cip.name exists")
    _load(tmp_path, fields, text, resolver)
    assert resolver.names() == []


def test_names_past_the_bound_are_refused_and_counted(monkeypatch):
    monkeypatch.setattr(dns, "MAX_NAMES", 2)
    resolver = dns.NameResolver()
    resolver.want(["a.invalid", "b.invalid", "c.invalid", "a.invalid"])
    assert resolver.names() == ["a.invalid", "b.invalid"]
    assert resolver.counts["drops.dns.names"] == 1


def test_names_fall_due_again_later_and_later():
    resolver = dns.NameResolver()
    resolver.want(["a.invalid"])
    assert resolver.due(100.0) == ["a.invalid"]
    assert resolver.due(100.0 + dns.REFRESH_BASE - 1) == []
    assert resolver.due(100.0 + dns.REFRESH_BASE) == ["a.invalid"]          # then 20 s later
    assert resolver.due(100.0 + 3 * dns.REFRESH_BASE - 1) == []
    assert resolver.due(100.0 + 3 * dns.REFRESH_BASE) == ["a.invalid"]


async def test_a_lookup_that_never_answers_is_given_up_and_counted(monkeypatch):
    # a fake lookup: a resolver that hangs cannot be caused on this machine without network
    monkeypatch.setattr(dns, "TIMEOUT", 0.2)
    release = threading.Event()

    def hanging_lookup(name: str) -> frozenset:
        release.wait(10)
        raise OSError("gave up")

    resolver = dns.NameResolver(hanging_lookup)
    resolver.want(["slow.invalid"])
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resolver.serve)
            with trio.fail_after(5):
                while resolver.counts["dns.failures"] < 1:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    finally:
        release.set()
    assert resolver.counts["dns.lookups"] == 1


def test_a_rule_test_answers_from_its_hosts_alone(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  kubernetes.default: [not-an-address]\ncases: []\n")
    with pytest.raises(RuleTestError) as exc:
        load_test_file(str(bad), {})
    assert "'not-an-address' is not an IP address" in str(exc.value)
    assert "bad.yaml:2" in str(exc.value.location)
    resolver = dns.NameResolver()
    resolver.answer({"api.example": ["10.96.0.1"]})
    resolver.want(["localhost"])                 # never looked up
    assert resolver.match("api.example", ipaddress.ip_address("10.96.0.1"))
    assert resolver.due(1e9) == []
