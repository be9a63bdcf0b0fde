# -*- test-case-name: rpctransport.test.test_cli -*-
"""
The echo server as a Twisted service, for C{twistd -n rpctransport-echo}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.logger import Logger
from twisted.python import usage

from ..sansio.deadlines import (
    SERVE_FIRST_RECORD_TIMEOUT,
    SERVE_IDLE_TIMEOUT,
    SERVE_RECORD_DEADLINE,
    SERVE_WRITE_DEADLINE,
)
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from ..entry.admission import default_max_connections
from .addresses import host_port
from .echo import ECHO_PROGRAM, ECHO_VERSION, EchoServer

__all__ = ["EchoService", "Options", "makeService"]


class Options(usage.Options):
    """
    The options of C{twistd rpctransport-echo}; the same as
    C{rpctransport serve}'s.
    """

    synopsis = "[--tcp HOST:PORT] [--udp HOST:PORT] [--unix PATH] [--listen ENDPOINT] ..."
    longdesc = (
        "Serve the ONC RPC echo test program: procedure 0 (NULL) and 1 (ECHO). "
        "Without listener options, listens on loopback TCP and UDP on ports the "
        "system picks."
    )
    optParameters = [
        ["program", None, str(ECHO_PROGRAM), "RPC program number (decimal or 0x hex)"],
        ["version", None, str(ECHO_VERSION), "RPC program version"],
        ["max-record-size", None, str(DEFAULT_MAX_RECORD_SIZE), "largest call accepted, in bytes"],
        ["record-deadline", None, f"{SERVE_RECORD_DEADLINE:g}",
         "seconds a begun record has to arrive whole (0: off)"],
        ["idle-timeout", None, f"{SERVE_IDLE_TIMEOUT:g}", "seconds a connection may idle (0: off)"],
        ["first-record-timeout", None, f"{SERVE_FIRST_RECORD_TIMEOUT:g}",
         "the idle timeout before a connection's first whole record (0: off)"],
        ["write-deadline", None, f"{SERVE_WRITE_DEADLINE:g}",
         "seconds a reply may stay unread (0: off)"],
        ["max-connections", None, None,
         "stream connections per listener before evicting one to admit another "
         "(0: no cap; default: the soft descriptor limit minus a reserve)"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["tcp"] = []
        self["udp"] = []
        self["unix"] = []
        self["listen"] = []

    def opt_tcp(self, value: str) -> None:
        """
        Listen on TCP HOST:PORT (may be repeated).
        """
        self["tcp"].append(self._host_port(value))

    def opt_udp(self, value: str) -> None:
        """
        Listen on UDP HOST:PORT (may be repeated).
        """
        self["udp"].append(self._host_port(value))

    def opt_unix(self, value: str) -> None:
        """
        Listen on a UNIX stream socket PATH (may be repeated).
        """
        self["unix"].append(value)

    def opt_listen(self, value: str) -> None:
        """
        Listen on a Twisted server endpoint string (may be repeated).
        """
        self["listen"].append(value)

    def _host_port(self, value: str) -> tuple[str, int]:
        try:
            return host_port(value)
        except Exception as e:
            raise usage.UsageError(str(e))

    def postOptions(self) -> None:
        """
        Check the numbers; default to loopback TCP and UDP.
        """
        for name in ("program", "version", "max-record-size"):
            try:
                self[name] = int(self[name], 0)
            except ValueError:
                raise usage.UsageError(f"--{name}: {self[name]!r} is not a number")
        cap = self["max-connections"]
        if cap is None:
            self["max-connections"] = default_max_connections()
        elif not str(cap).isdigit():
            raise usage.UsageError(f"--max-connections: {cap!r} is not a number of connections")
        else:
            self["max-connections"] = int(cap) or None
        for name in _DEADLINES:
            try:
                seconds = float(self[name])
            except ValueError:
                raise usage.UsageError(f"--{name}: {self[name]!r} is not a number of seconds")
            if seconds < 0:
                raise usage.UsageError(f"--{name}: must be 0 (off) or more seconds")
            self[name] = seconds or None
        if not (self["tcp"] or self["udp"] or self["unix"] or self["listen"]):
            self["tcp"] = [("127.0.0.1", 0)]
            self["udp"] = [("127.0.0.1", 0)]


_DEADLINES = ("record-deadline", "idle-timeout", "first-record-timeout", "write-deadline")


class EchoService(Service):
    """
    Starts the listeners when the service starts, stops them when it stops.
    """

    log = Logger()

    def __init__(self, options: Options, reactor: Any = None) -> None:
        self.options = options
        self.reactor = reactor
        self.server = EchoServer(
            options["program"], options["version"], options["max-record-size"]
        )
        self.listeners: list[Any] = []

    @inlineCallbacks
    def startService(self) -> Any:
        """
        Listen where the options say, and log one line per listener
        (C{listening <tcp|udp|unix> <address>}, as C{rpctransport serve}
        prints them).
        """
        super().startService()
        from .commands import start_listeners

        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        self.listeners = yield start_listeners(
            reactor,
            self.server,
            tcp=self.options["tcp"],
            udp=self.options["udp"],
            unix=self.options["unix"],
            listen=self.options["listen"],
            stream_options={
                name.replace("-", "_"): self.options[name]
                for name in (*_DEADLINES, "max-connections")
            },
        )
        for kind, text, _ in self.listeners:
            self.log.info("listening {kind} {address}", kind=kind, address=text)

    def stopService(self) -> Any:
        """
        Stop every listener and let go of every connection.
        """
        super().stopService()
        results = [stop() for _, _, stop in self.listeners]
        self.listeners = []
        self.server.stop()
        return DeferredList([r for r in results if r is not None])


def makeService(options: Options) -> EchoService:
    """
    The service C{twistd} runs.
    """
    return EchoService(options)
