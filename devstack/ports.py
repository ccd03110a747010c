"""Loopback ports: pick free ones, or check that a fixed one is still free."""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import threading

from devstack.errors import PortInUseError

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def _bind(port: int) -> socket.socket:
    # SO_REUSEADDR as the servers set it: a TIME_WAIT leftover is no conflict,
    # a listening socket still is.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
    except BaseException:
        sock.close()
        raise
    return sock


def is_port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (or on all addresses)."""
    try:
        _bind(port).close()
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    return True


def ensure_port_free(port: int, label: str, env_var: str | None) -> None:
    """Raise PortInUseError naming the port and the variable that changes it."""
    if not is_port_free(port):
        raise PortInUseError(label, port, LOOPBACK, env_var)


def free_ports(count: int) -> list[int]:
    """Free loopback ports chosen by the kernel (bind to port 0).

    Never one this process handed out before: a port chosen for a server that has
    not bound it yet must not go to the next server too.
    """
    with contextlib.ExitStack() as stack, _lock:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(_bind(0))
            port = int(sock.getsockname()[1])
            if port not in _handed_out:
                ports.append(port)
        _handed_out.update(ports)
        return ports


def free_port() -> int:
    """One free loopback port chosen by the kernel."""
    return free_ports(1)[0]


def free_port_with_partner(offset: int, exclude: set[int] | None = None) -> int:
    """A free port P whose partner P + offset is free too (servers that open both)."""
    excluded = exclude or set()
    rng = random.Random()
    # Below the kernel's ephemeral range (32768+), so outgoing connections cannot
    # grab the partner port between this check and the server's bind.
    high = 32768 - offset if offset < 22768 else 65536 - offset
    for _ in range(200):
        port = rng.randrange(10000, high)
        if port in excluded or port + offset in excluded:
            continue
        with _lock:
            if port in _handed_out or port + offset in _handed_out:
                continue
            if is_port_free(port) and is_port_free(port + offset):
                _handed_out.update((port, port + offset))
                return port
    raise OSError(f"no free loopback port pair (P, P+{offset}) found")
