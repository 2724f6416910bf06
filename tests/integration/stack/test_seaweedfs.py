"""The real SeaweedFS S3 server, started on loopback by the project's own code."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack import SeaweedFS
from local_stack.process import port_open
from local_stack.seaweedfs import SOCKETS_FILE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), buckets=("raw",))
    with server:
        yield server


def _listening_addresses(pid: int) -> set[str]:
    """Local addresses of the TCP sockets in LISTEN state owned by `pid` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                addresses.add(cols[1].split(":")[0])
    return addresses


def test_listens_on_loopback_only(s3: SeaweedFS) -> None:
    assert s3.pid is not None
    addresses = _listening_addresses(s3.pid)
    assert addresses, "the server should listen somewhere"
    assert addresses == {"0100007F"}, f"non-loopback listen addresses: {addresses}"  # 127.0.0.1, little-endian hex


def test_round_trip_and_bucket_created_at_start(s3: SeaweedFS) -> None:
    client = s3.client()
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["raw"]
    client.put_object(Bucket="raw", Key="study/a.dcm", Body=b"DICM")
    assert client.get_object(Bucket="raw", Key="study/a.dcm")["Body"].read() == b"DICM"


def test_wrong_credentials_are_refused_and_secret_never_shown(s3: SeaweedFS) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    bad = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.credentials.access_key,
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        bad.list_buckets()
    assert s3.credentials.secret_key not in repr(s3.credentials)


def test_stop_frees_the_port_and_removes_the_tmp_sockets(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "sw")
    server.start()
    try:  # a failed assertion must not leave the server running
        assert port_open(server.s3_port)
        sockets = [Path(p) for p in json.loads((tmp_path / "sw" / SOCKETS_FILE).read_text())]
        assert len(sockets) == 5
        deadline = time.monotonic() + 20  # the admin server starts last
        while not all(p.is_socket() for p in sockets) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(p.is_socket() for p in sockets)  # weed mini writes them whatever $TMPDIR says
    finally:
        server.stop()
    assert not port_open(server.s3_port)
    assert server.pid is None
    assert not any(p.exists() for p in sockets)


def _occupy(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (another process's server, as far as weed can tell)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_an_internal_port_taken_before_start_is_retried_with_fresh_ports(tmp_path: Path) -> None:
    """CI once lost a run to this: weed mini's volume port was taken by the time weed bound it, and weed exited."""
    server = SeaweedFS(tmp_path / "sw", buckets=("raw",))
    taken = server.internal_ports["volume"]
    blocker = _occupy(taken)
    try:
        server.start()
        try:
            assert server.internal_ports["volume"] != taken
            assert server.client().list_buckets()["Buckets"][0]["Name"] == "raw"
            log = (tmp_path / "sw" / "weed.log").read_text()
            assert f"port {taken} for Volume" in log  # the first attempt really met the taken port
        finally:
            server.stop()
    finally:
        blocker.close()


def test_a_taken_s3_port_fails_loudly_without_retry(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "sw")
    blocker = _occupy(server.s3_port)
    try:
        with pytest.raises(RuntimeError, match=f"port {server.s3_port} for S3 .*is not available"):
            server.start()
        assert server.pid is None
    finally:
        blocker.close()
