"""The Docker tier's own cleanup, on the real engine: images a rebuild left nameless."""

from __future__ import annotations

import io
import secrets
import tarfile
from collections.abc import Iterator

import docker
import pytest

from tests.integration.docker_engine import (  # noqa: F401 (fixture)
    docker_client,
    image_names,
    remove_orphaned_images,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def build(client: docker.DockerClient, tag: str) -> str:
    """A one-file image from scratch under tag (a new one each time); its id."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in [
            ("Dockerfile", b"FROM scratch\nCOPY f /f\n"),
            ("f", secrets.token_hex(8).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _log = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    assert image.id is not None
    return image.id


@pytest.fixture
def tags(docker_client: docker.DockerClient) -> Iterator[list[str]]:  # noqa: F811
    """Names of the test's own, each image under them removed at the end."""
    names = [f"flaskhub-test-orphans-{secrets.token_hex(4)}:{n}" for n in range(3)]
    yield names
    for name in names:
        try:
            docker_client.images.remove(name)
        except docker.errors.ImageNotFound:
            pass


def exists(client: docker.DockerClient, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


def test_only_the_images_a_session_left_nameless_are_removed(
    docker_client: docker.DockerClient,  # noqa: F811
    tags: list[str],
) -> None:
    first, second, third = tags
    nameless_before = build(docker_client, third)
    build(docker_client, third)  # takes the name: the first is nameless
    replaced = build(docker_client, first)
    before = image_names(docker_client)

    current = build(docker_client, first)  # a rebuild takes first's name from `replaced`
    made_and_replaced = build(docker_client, second)
    made = build(docker_client, second)
    removed = remove_orphaned_images(docker_client, before)

    assert set(removed) >= {replaced, made_and_replaced}
    assert not exists(docker_client, replaced)
    assert not exists(docker_client, made_and_replaced)
    # Nameless before the session: not its doing, left (and removed here, ours).
    assert nameless_before not in removed
    assert exists(docker_client, nameless_before)
    docker_client.images.remove(nameless_before)
    assert exists(docker_client, current) and exists(docker_client, made)
