"""Docker's inspect answer -> Container, on real containers; image names split as Falco does."""

from __future__ import annotations

import pytest

from syswarden.plugins.enrichers.containers.engines.docker import container_from_inspect
from syswarden.plugins.enrichers.containers.metadata import parse_timestamp, split_image
from tests.helpers.docker import inspect


@pytest.mark.parametrize("image,expected", [
    ("nginx", ("nginx", "", "")),
    ("nginx:latest", ("nginx", "latest", "")),
    ("falcosecurity/falco:0.37.1", ("falcosecurity/falco", "0.37.1", "")),
    ("docker.io/falcosecurity/falco", ("docker.io/falcosecurity/falco", "", "")),
    ("registry:5000/team/app:v2", ("registry:5000/team/app", "v2", "")),
    ("registry:5000/team/app", ("registry:5000/team/app", "", "")),
    ("app@sha256:abc", ("app", "", "sha256:abc")),
    ("app:1@sha256:abc", ("app", "1", "sha256:abc")),
])
def test_split_image(image: str, expected: tuple[str, str, str]) -> None:
    assert split_image(image) == expected


def test_timestamps() -> None:
    assert parse_timestamp("2024-05-01T10:00:00.123456789Z") == 1714557600_123456789
    assert parse_timestamp("2024-05-01T12:00:00.5+02:00") == 1714557600_500000000
    assert parse_timestamp("0001-01-01T00:00:00Z") is None
    assert parse_timestamp("") is None and parse_timestamp("garbage") is None


@pytest.mark.docker
def test_from_a_real_container(containers) -> None:
    c = containers.run("nginx:latest", name="sw-meta-x", volumes=("/mnt:/tmp/mnt:ro",),
                       labels={"team": "blue"})
    got = container_from_inspect(inspect(c.id))
    assert (got.id, got.full_id, got.name) == (c.short_id, c.id, "sw-meta-x")
    assert (got.image, got.image_repository, got.image_tag) == ("nginx:latest", "nginx", "latest")
    assert got.image_id and len(got.image_id) == 64 and not got.image_id.startswith("sha256")
    assert got.privileged is False and got.complete
    assert [(m.source, m.dest, m.rw) for m in got.mounts] == [("/mnt", "/tmp/mnt", False)]
    assert got.labels["team"] == "blue"
    assert got.start_ts and got.start_ts > 1_600_000_000 * 10**9


@pytest.mark.docker
def test_image_without_tag_defaults_to_latest(containers) -> None:
    c = containers.run("alpine")
    got = container_from_inspect(inspect(c.id))
    assert (got.image, got.image_repository, got.image_tag) == ("alpine", "alpine", "latest")
