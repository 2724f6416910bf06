"""Port choice for the project's servers: never from the range the kernel gives client sockets; weed's port errors."""

from __future__ import annotations

import socket

from local_stack.process import PORT_FLOOR, ephemeral_range, free_port
from local_stack.seaweedfs import TAKEN_PORT


def test_free_ports_avoid_the_ephemeral_range_and_never_repeat() -> None:
    low, _ = ephemeral_range()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_FLOOR <= p < low for p in ports), [p for p in ports if not PORT_FLOOR <= p < low]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # and the last one is really free
        s.bind(("127.0.0.1", ports[-1]))


def test_a_client_socket_never_gets_a_port_free_port_would_give() -> None:
    """The failure behind the change: a client's local port comes from the ephemeral range, ours never do."""
    low, high = ephemeral_range()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert low <= client.getsockname()[1] <= high
            assert server.getsockname()[1] < low


def test_weed_port_errors_name_the_port() -> None:
    race = "F1203 listener.go:1] Volume server listener error: listen tcp 127.0.0.1:41234: bind: address already in use"
    check = (
        "E1203 mini.go:1244 Port allocation failed: port 26280 for Volume (specified by flag volume.port)"
        " is not available on 127.0.0.1 and cannot be used"
    )
    for line, port in ((race, 41234), (check, 26280)):
        found = TAKEN_PORT.search(line)
        assert found is not None
        assert int(found.group(1) or found.group(2)) == port
    assert TAKEN_PORT.search("seaweedfs: volume server started on 127.0.0.1:26280") is None
