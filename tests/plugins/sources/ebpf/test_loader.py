"""The loader helper's failures reach the source as one clear error."""

from __future__ import annotations

import pytest

from syswarden.plugins.sources.ebpf import loader


def test_a_helper_that_does_not_finish_in_time_is_a_clear_error():
    # a real helper: it cannot even import bcc within a millisecond
    with pytest.raises(loader.LoadError) as err:
        loader.load("int unused;", [], timeout=0.001)
    assert "did not finish within 0.001 s" in str(err.value)
    assert "quieter" in err.value.hint
