"""Retry timing rules and TLS settings (no network: the HTTP paths are in test_output.py)."""

from __future__ import annotations

import email.utils
import random
import ssl

import pytest

from syswarden.core.errors import ConfigError
from syswarden.plugins.outputs.webhook.delivery import Backoff, parse_retry_after, ssl_context


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    backoff = Backoff(0.5, 8.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    for n, d in enumerate(delays):
        ceiling = min(8.0, 0.5 * 2 ** n)
        assert ceiling / 2 <= d <= ceiling
    assert len(set(delays)) == len(delays)            # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_retry_after_is_honoured():
    backoff = Backoff(0.5, 8.0)
    assert backoff.next_delay(retry_after=30) == 30     # longer than the cap: the server decides
    assert backoff.next_delay(retry_after=10_000) == 300


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_060, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(60)


def test_tls_settings(tmp_path):
    assert ssl_context({}) is True
    ctx = ssl_context({"insecure": True})
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE
    with pytest.raises(ConfigError, match="TLS set-up failed"):
        ssl_context({"name": "x", "ca_cert": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="mtls needs client_cert"):
        ssl_context({"name": "x", "mtls": True})
