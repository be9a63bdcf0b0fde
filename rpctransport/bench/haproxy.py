# -*- test-case-name: rpctransport.test.test_scaling_docs -*-
"""
HAProxy for the benchmark's scaling case and the scaling chapter's test:
find Debian's C{haproxy}, write a configuration, start it in the foreground
(C{haproxy -f FILE -db}) and wait until it accepts connections.

HAProxy prints no line when it is ready, so readiness is a TCP connection
to its frontend that it accepts (it then opens one to a backend, which sees
a connection close without a call). It is stopped like our servers, with
SIGTERM to its process group (HAProxy's hard stop).
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .._tirpc.process import ServerProcess

__all__ = [
    "HAProxyFailed",
    "balancer_config",
    "find_haproxy",
    "free_port",
    "haproxy_command",
    "haproxy_missing",
    "start_haproxy",
    "wait_accepting",
]

HAPROXY_START_TIMEOUT = 15.0
"""Seconds HAProxy has to accept a connection on its frontend."""

BIND_ATTEMPTS = 3
"""Free ports L{start_haproxy} tries before it gives up."""

SBIN = "/usr/sbin:/sbin"
"""Where Debian puts C{haproxy}, and where a non-root C{PATH} often does not look."""


class HAProxyFailed(Exception):
    """
    HAProxy exited, or did not accept a connection in time; the message has
    its command line and everything it printed.
    """


def find_haproxy() -> str | None:
    """
    The C{haproxy} program, on C{PATH} or in C{/usr/sbin} and C{/sbin}.

    @return: its path, or L{None}.
    """
    return shutil.which("haproxy") or shutil.which("haproxy", path=SBIN)


def haproxy_missing() -> str | None:
    """
    Why HAProxy cannot be run here, or L{None} if it can.
    """
    if find_haproxy() is None:
        return (
            "haproxy not found (on PATH, /usr/sbin or /sbin): "
            "install it (Debian: apt-get install haproxy)"
        )
    return None


def haproxy_command(config: str) -> list[str]:
    """
    The command line of HAProxy in the foreground (C{-db}: no daemon, no
    background) with the configuration file C{config}.

    @raise HAProxyFailed: if there is no C{haproxy} (see L{haproxy_missing}).
    """
    program = find_haproxy()
    if program is None:
        raise HAProxyFailed(haproxy_missing() or "haproxy not found")
    return [program, "-f", config, "-db"]


def free_port(host: str = "127.0.0.1") -> int:
    """
    A TCP port nobody listens on at the moment of asking (another process
    may take it before it is used: callers that bind it retry).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def balancer_config(
    port: int, backends: Sequence[tuple[str, int]], balance: str = "leastconn"
) -> str:
    """
    The benchmark's HAProxy configuration: plain TCP relay (C{mode tcp})
    from C{127.0.0.1:port} to C{backends}, balanced by C{balance}; no
    PROXY header, no health checks (nothing fails while it measures).
    HAProxy's C{maxconn} is left to it: it sizes it from the limit on open
    files, and fails to start when asked for more than that limit allows.
    """
    servers = "".join(
        f"    server serve{i} {host}:{backend_port}\n"
        for i, (host, backend_port) in enumerate(backends, 1)
    )
    return (
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 5s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "\n"
        "frontend rpc\n"
        f"    bind 127.0.0.1:{port}\n"
        "    default_backend serve\n"
        "\n"
        "backend serve\n"
        f"    balance {balance}\n"
        f"{servers}"
    )


def wait_accepting(
    process: ServerProcess,
    host: str,
    port: int,
    timeout: float = HAPROXY_START_TIMEOUT,
) -> None:
    """
    Wait until C{process} (HAProxy) accepts a TCP connection on
    C{host:port}.

    @raise HAProxyFailed: if it exits first (a configuration error, a port
        already taken) or C{timeout} passes; the process is then stopped.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.process.poll() is not None:
            process.stop()
            raise HAProxyFailed(process.describe("haproxy exited before accepting connections"))
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
        except OSError:
            if time.monotonic() > deadline:
                process.stop()
                raise HAProxyFailed(
                    process.describe(f"haproxy accepted nothing on {host}:{port} in {timeout:g} s")
                ) from None
            time.sleep(0.05)
            continue
        # A port taken by someone else also accepts: HAProxy must still run.
        time.sleep(0.05)
        if process.process.poll() is None:
            return


def start_haproxy(
    configure: Callable[[int], str],
    directory: Path,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    timeout: float = HAPROXY_START_TIMEOUT,
    attempts: int = BIND_ATTEMPTS,
) -> tuple[ServerProcess, int]:
    """
    Start HAProxy with the configuration C{configure(port)}, written to
    C{directory/haproxy.cfg}, whose frontend listens on C{host:port} for a
    free C{port}; wait until it accepts there.

    @param attempts: how many ports to try: another process may take the
        free port first, and HAProxy then exits saying it cannot bind.
    @return: its process (the caller stops it, L{ServerProcess.stop}) and
        the port.
    @raise HAProxyFailed: if it does not come up (see L{wait_accepting}).
    """
    path = directory / "haproxy.cfg"
    for attempt in range(1, attempts + 1):
        port = free_port(host)
        path.write_text(configure(port))
        process = ServerProcess(haproxy_command(str(path)), env)
        try:
            wait_accepting(process, host, port, timeout)
        except HAProxyFailed as e:
            if attempt < attempts and "cannot bind" in str(e):
                continue
            raise
        return process, port
    raise AssertionError("unreachable")
