"""Falco's TLS keys against a real HTTPS receiver: ca_cert, insecure, mutual TLS, and a
refused certificate's reason in the logged delivery error."""

from __future__ import annotations

import logging
import os
import ssl
import subprocess

import pytest
import trio

from syswarden.plugins.outputs.webhook import WebhookOutput
from syswarden.testing import base_config, make_alert

from ..receivers import HttpReceiver, make_certs
from .helpers import hook


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def server_context(certs, require_client: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["server_cert"], certs["server_key"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs["ca"])
    return ctx


async def _deliver(nursery, drive, metrics, tmp_path, tls, **keys) -> HttpReceiver:
    receiver = HttpReceiver(tls=tls)
    await nursery.start(receiver.serve)
    driven = await drive(WebhookOutput(base_config(), hook(receiver.url, tmp_path, **keys),
                                       metrics))
    driven.offer([make_alert()])
    with trio.move_on_after(3):
        await receiver.wait_for(1)
    driven.runner.close()
    receiver.down()
    return receiver


async def test_ca_cert_verifies_the_server(nursery, drive, metrics, tmp_path, certs):
    r = await _deliver(nursery, drive, metrics, tmp_path, server_context(certs, False),
                       ca_cert=certs["ca"])
    assert len(r.delivered) == 1


async def test_unknown_ca_is_not_trusted_unless_insecure(nursery, drive, metrics, tmp_path,
                                                         certs):
    r = await _deliver(nursery, drive, metrics, tmp_path / "a", server_context(certs, False))
    assert r.delivered == [] and metrics.get("outputs.hook.retries") >= 1
    r = await _deliver(nursery, drive, metrics, tmp_path / "b", server_context(certs, False),
                       insecure=True)
    assert len(r.delivered) == 1


async def test_mutual_tls(nursery, drive, metrics, tmp_path, certs):
    tls = server_context(certs, True)
    r = await _deliver(nursery, drive, metrics, tmp_path / "a", tls, ca_cert=certs["ca"])
    assert r.delivered == []                            # no client certificate: refused
    r = await _deliver(nursery, drive, metrics, tmp_path / "b", tls, ca_cert=certs["ca"],
                       mtls=True, client_cert=certs["client_cert"],
                       client_key=certs["client_key"])
    assert len(r.delivered) == 1


def self_signed(directory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1, made with openssl."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    "self.key", "-out", "self.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], cwd=directory, check=True,
                   capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(directory, "self.pem"), os.path.join(directory, "self.key"))
    return ctx


async def _first_failure(nursery, drive, metrics, tmp_path, caplog, tls, host="127.0.0.1",
                         **keys) -> str:
    """The logged reason of the first failed delivery to a receiver serving ``tls``."""
    receiver = HttpReceiver(tls=tls)
    await nursery.start(receiver.serve)
    url = receiver.url.replace("127.0.0.1", host)
    driven = await drive(WebhookOutput(base_config(), hook(url, tmp_path, **keys), metrics))
    driven.offer([make_alert()])
    with trio.move_on_after(10):
        while not any("delivery failed" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.05)
    driven.runner.close()
    receiver.down()
    assert receiver.delivered == []
    return next(r.getMessage() for r in caplog.records if "delivery failed" in r.getMessage())


async def test_a_self_signed_server_is_refused_naming_why(nursery, drive, metrics, tmp_path,
                                                         caplog):
    caplog.set_level(logging.WARNING, "syswarden")
    message = await _first_failure(nursery, drive, metrics, tmp_path, caplog,
                                   self_signed(str(tmp_path)))
    assert "TLS certificate verify failed: self-signed certificate" in message


async def test_a_hostname_mismatch_is_refused_naming_why(nursery, drive, metrics, tmp_path,
                                                        certs, caplog):
    caplog.set_level(logging.WARNING, "syswarden")
    message = await _first_failure(nursery, drive, metrics, tmp_path, caplog,
                                   server_context(certs, False), host="localhost",
                                   ca_cert=certs["ca"])
    assert "TLS certificate verify failed: Hostname mismatch" in message


async def test_an_unknown_ca_is_refused_naming_why(nursery, drive, metrics, tmp_path, certs,
                                                  caplog):
    caplog.set_level(logging.WARNING, "syswarden")
    message = await _first_failure(nursery, drive, metrics, tmp_path, caplog,
                                   server_context(certs, False))
    assert "TLS certificate verify failed: unable to get local issuer certificate" in message
