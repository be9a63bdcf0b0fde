# -*- test-case-name: rpctransport.test.test_cli,rpctransport.test.test_workers -*-
"""
The options of C{rpctransport serve} and C{rpctransport call}, written once.

Each option is an L{Option}: its name, help, how its text is read, its
default. Two builders turn a table of them into a parser:
L{add_arguments} into an C{argparse} parser (the C{rpctransport} program),
L{usage_options} into a C{twisted.python.usage.Options} class (the C{twistd}
plugin). Both read every value with the same function and check the whole
with the same function (L{check_serve}), so the two cannot drift apart.
L{usage_options} refuses an option whose name C{usage.Options} already
takes (C{--help}, C{--version}): a plugin option can never be shadowed by
Twisted's.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.python import usage

from ..entry.admission import DESCRIPTOR_RESERVE, default_max_connections
from ..sansio.deadlines import (
    SERVE_FIRST_RECORD_TIMEOUT,
    SERVE_IDLE_TIMEOUT,
    SERVE_RECORD_DEADLINE,
    SERVE_WRITE_DEADLINE,
)
from ..sansio.record import DEFAULT_MAX_RECORD_SIZE
from .addresses import NO_REACTOR, host_port, parse_call_address
from .echo import ECHO_PROGRAM, ECHO_VERSION

__all__ = [
    "CALL_OPTIONS",
    "SERVE_OPTIONS",
    "Option",
    "OptionError",
    "OptionNameTaken",
    "add_arguments",
    "check_serve",
    "serve_namespace",
    "usage_options",
]


class OptionError(argparse.ArgumentTypeError, ValueError):
    """
    An option's value cannot be used; the message says why, in one line.

    A C{ValueError} too, so that both parsers report it with its message.
    """


class OptionNameTaken(Exception):
    """
    An option's name is one C{usage.Options} already has (C{--help},
    C{--version}): under C{twistd} it would never be reached.
    """


@dataclass(frozen=True)
class Option:
    """
    One command-line option.

    @ivar name: the long name without its dashes, C{"max-record-size"}.
    @ivar help: one sentence; C{(default ...)} is added from C{default}.
    @ivar read: reads the option's text into its value (raises
        L{OptionError}); L{None} for a flag, which takes no value.
    @ivar default: the value when the option is not given.
    @ivar metavar: what the value is called in the help.
    @ivar repeat: the option may be given several times; its value is the
        list of what each gave.
    @ivar group: the heading it is listed under in C{--help}, if any.
    @ivar show_default: whether the help says the default.
    """

    name: str
    help: str
    read: Callable[[str], Any] | None = None
    default: Any = None
    metavar: str | None = None
    repeat: bool = False
    group: str | None = None
    show_default: bool = True

    @property
    def dest(self) -> str:
        """
        The attribute (or key) the value is stored under:
        C{max_record_size}.
        """
        return self.name.replace("-", "_")

    @property
    def flag(self) -> bool:
        """
        Whether the option takes no value.
        """
        return self.read is None

    def full_help(self) -> str:
        """
        The help with the default, as both parsers show it.
        """
        if self.flag or self.repeat or not self.show_default or self.default is None:
            return self.help
        default = self.default
        if isinstance(default, float):
            default = f"{default:g}"
        elif self.name == "program":
            default = f"{default:#x}"
        return f"{self.help} (default {default})"


# -- Reading values -------------------------------------------------------------


def read_number(text: str) -> int:
    """
    An unsigned 32-bit number in decimal or 0x hex.
    """
    try:
        value = int(text, 0)
    except ValueError:
        raise OptionError(f"{text!r} is not a number (decimal or 0x hex)")
    if not 0 <= value <= 0xFFFFFFFF:
        raise OptionError(f"{text} is not an unsigned 32-bit number")
    return value


def read_count(text: str) -> int:
    """
    A number, at least 1.
    """
    value = read_number(text)
    if value < 1:
        raise OptionError(f"{text}: must be at least 1")
    return value


def read_seconds(text: str) -> float:
    """
    A number of seconds, more than 0.
    """
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number of seconds")
    if not value > 0:
        raise OptionError(f"{text}: must be more than 0 seconds")
    return value


def read_seconds_or_off(text: str) -> float | None:
    """
    A number of seconds, or 0 for "off" (L{None}).
    """
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number of seconds (0: off)")
    if not value >= 0:
        raise OptionError(f"{text}: must be 0 (off) or more seconds")
    return value or None


def read_connections(text: str) -> int:
    """
    A number of connections (0: no cap, made L{None} by L{check_serve}).
    """
    if not text.isdigit():
        raise OptionError(f"{text!r} is not a number of connections (0: no cap)")
    return int(text)


def read_host_port(text: str) -> tuple[str, int]:
    """
    C{HOST:PORT}, C{[::1]:PORT} for IPv6.
    """
    try:
        return host_port(text)
    except argparse.ArgumentTypeError as e:
        raise OptionError(str(e))


def read_path(text: str) -> str:
    """
    A file system path, not empty.
    """
    if not text:
        raise OptionError("the path is empty")
    return text


def read_procedure(text: str) -> str:
    """
    C{null} or C{echo}.
    """
    if text not in ("null", "echo"):
        raise OptionError(f"{text!r} is not a procedure: null or echo")
    return text


def read_server_endpoint(text: str) -> str:
    """
    A Twisted server endpoint string, checked by parsing it now (nothing
    listens yet); the text itself is kept, to be parsed with the real
    reactor when the server starts.
    """
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(NO_REACTOR, text)
    except Exception as e:
        reason = str(e) or type(e).__name__
        raise OptionError(f"{text!r} is not a server endpoint string: {reason}")
    return text


# -- The tables -------------------------------------------------------------------

_PROGRAM_OPTIONS = (
    Option("program", "RPC program number, decimal or 0x hex", read_number, ECHO_PROGRAM, "N"),
    Option("program-version", "RPC program version", read_number, ECHO_VERSION, "N"),
)

_LIMITS = "limits and timeouts"

SERVE_OPTIONS: tuple[Option, ...] = (
    Option(
        "tcp", "listen on TCP (port 0: any free port); may be repeated",
        read_host_port, metavar="HOST:PORT", repeat=True,
    ),
    Option("udp", "listen on UDP; may be repeated", read_host_port, metavar="HOST:PORT", repeat=True),
    Option(
        "unix", "listen on a UNIX stream socket; may be repeated",
        read_path, metavar="PATH", repeat=True,
    ),
    Option(
        "listen",
        "listen on a Twisted server endpoint string, e.g. 'tcp6:0:interface=\\:\\:1'; "
        "may be repeated",
        read_server_endpoint, metavar="ENDPOINT", repeat=True,
    ),
    Option(
        "tls", "listen on TCP with TLS from the first byte (needs --tls-cert); may be repeated",
        read_host_port, metavar="HOST:PORT", repeat=True,
    ),
    Option(
        "starttls",
        "answer RFC 9289 AUTH_TLS probes on the plaintext TCP and UNIX listeners with "
        "STARTTLS and upgrade (needs --tls-cert)",
    ),
    Option(
        "proxy-protocol",
        "the stream listeners (TCP, UNIX, TLS, --listen, passed or adopted) are behind "
        "a proxy such as HAProxy sending the PROXY protocol (send-proxy or "
        "send-proxy-v2): each connection must begin with its header, and the client it "
        "names is the peer in logs and limits",
    ),
    Option("tls-cert", "our certificate (PEM; may hold the key too)", read_path, metavar="PEM"),
    Option("tls-key", "the private key of --tls-cert (PEM)", read_path, metavar="PEM"),
    Option("tls-ca", "require client certificates signed by this CA", read_path, metavar="PEM"),
    *_PROGRAM_OPTIONS,
    Option(
        "max-record-size",
        "refuse larger calls on their header, answering GARBAGE_ARGS",
        read_count, DEFAULT_MAX_RECORD_SIZE, "BYTES",
    ),
    Option(
        "record-deadline",
        "close a connection whose record, once begun, is not whole within this",
        read_seconds_or_off, SERVE_RECORD_DEADLINE, "SECONDS", group=_LIMITS,
    ),
    Option(
        "idle-timeout", "close a connection idle this long",
        read_seconds_or_off, SERVE_IDLE_TIMEOUT, "SECONDS", group=_LIMITS,
    ),
    Option(
        "first-record-timeout",
        "the idle timeout of a connection that has not yet sent a whole record",
        read_seconds_or_off, SERVE_FIRST_RECORD_TIMEOUT, "SECONDS", group=_LIMITS,
    ),
    Option(
        "write-deadline", "close a connection that leaves a reply unread this long",
        read_seconds_or_off, SERVE_WRITE_DEADLINE, "SECONDS", group=_LIMITS,
    ),
    Option(
        "max-connections",
        "at N stream connections (per listener), evict one to admit a new one: "
        "never-proven first, then idle, then oldest; 0: no cap (default: the soft "
        f"descriptor limit minus {DESCRIPTOR_RESERVE})",
        read_connections, None, "N", group=_LIMITS,
    ),
    Option(
        "register",
        "register the program at the TCP, UDP and UNIX listeners with the local rpcbind "
        "while serving (rpcinfo -p lists it; libtirpc's clnt_create finds it), and take "
        "the registrations back on stop",
    ),
    Option(
        "systemd",
        "serve every socket a service manager passed (systemd socket activation: "
        "LISTEN_FDS), each by its type: TCP, UNIX stream, UDP; a stream socket named tls "
        "(FileDescriptorName=tls) with TLS from the first byte",
    ),
    Option(
        "workers",
        "serve from N worker processes sharing every listener (1: this process alone); "
        "a worker that dies is replaced; SIGINT or SIGTERM stops them all",
        read_count, 1, "N",
    ),
    Option(
        "reuse-port",
        "with --workers: each worker binds its own TCP and UDP sockets with SO_REUSEPORT, "
        "and the kernel spreads connections and clients over them (instead of one shared "
        "socket)",
    ),
)
"""C{serve}'s options, which are also those of C{twistd rpctransport-echo}."""

LIMITS_DESCRIPTION = (
    "Deadlines for the states a peer can hold a connection in (0 turns one off); "
    "docs/program.rst, 'Limits and timeouts', says why each default."
)

CALL_OPTIONS: tuple[Option, ...] = (
    Option("proc", "procedure: null or echo", read_procedure, "null", "PROC"),
    Option("size", "ECHO argument size", read_number, 0, "BYTES"),
    Option("count", "calls to make", read_count, 1, "N"),
    Option("concurrency", "calls in flight", read_count, 1, "N"),
    *_PROGRAM_OPTIONS,
    Option(
        "timeout", "a call without a reply after this long fails (the TLS handshake too)",
        read_seconds, 25.0, "SECONDS",
    ),
    Option(
        "retry", "UDP: send a call again after this long without a reply",
        read_seconds, 1.0, "SECONDS",
    ),
    Option("max-record-size", "largest reply accepted", read_count, DEFAULT_MAX_RECORD_SIZE, "BYTES"),
    Option(
        "starttls",
        "tcp: and unix: addresses: upgrade to TLS with an RFC 9289 AUTH_TLS probe first",
    ),
    Option(
        "tls-cert", "a client certificate to present (PEM; may hold the key too)",
        read_path, metavar="PEM",
    ),
    Option("tls-key", "the private key of --tls-cert (PEM)", read_path, metavar="PEM"),
    Option(
        "tls-ca", "verify the server against this CA (default: the system's trust store)",
        read_path, metavar="PEM",
    ),
    Option(
        "server-name",
        "the name the server's certificate must carry (default: the host of ADDRESS, "
        "or localhost for unix:)",
        read_path, metavar="NAME",
    ),
)
"""C{call}'s options."""


# -- The builders -----------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser,
    options: Iterable[Option],
    groups: dict[str, str] | None = None,
) -> None:
    """
    Add C{options} to an C{argparse} parser.

    @param groups: the description of each L{Option.group} heading.
    """
    made: dict[str, Any] = {}
    for option in options:
        target: Any = parser
        if option.group is not None:
            if option.group not in made:
                made[option.group] = parser.add_argument_group(
                    option.group, (groups or {}).get(option.group)
                )
            target = made[option.group]
        flag = f"--{option.name}"
        if option.flag:
            target.add_argument(flag, action="store_true", help=option.help)
        elif option.repeat:
            target.add_argument(
                flag, action="append", type=option.read, default=[],
                metavar=option.metavar, help=option.help,
            )
        else:
            target.add_argument(
                flag, type=option.read, default=option.default,
                metavar=option.metavar, help=option.full_help(),
            )


def usage_options(
    options: Sequence[Option],
    *,
    synopsis: str,
    longdesc: str,
    check: Callable[[argparse.Namespace], None],
) -> type[usage.Options]:
    """
    A C{usage.Options} class with C{options}, each read by its L{Option.read}
    and the whole checked by C{check} (given the values as a namespace,
    which it may complete) after parsing.

    @raise OptionNameTaken: when an option's name is one C{usage.Options}
        itself handles (C{help}, C{version}).
    """
    methods: dict[str, Any] = {}
    for option in options:
        method_name = "opt_" + option.dest
        if hasattr(usage.Options, method_name):
            raise OptionNameTaken(
                f"--{option.name} is one of usage.Options' own options: under twistd it "
                "would never be reached; give it another name"
            )
        methods[method_name] = _handler(option)

    def __init__(self: usage.Options) -> None:
        usage.Options.__init__(self)
        for option in options:
            self[option.name] = [] if option.repeat else (False if option.flag else option.default)

    def postOptions(self: usage.Options) -> None:
        namespace = argparse.Namespace(**{o.dest: self[o.name] for o in options})
        try:
            check(namespace)
        except OptionError as e:
            raise usage.UsageError(str(e))
        for option in options:
            self[option.name] = getattr(namespace, option.dest)

    def namespace(self: usage.Options) -> argparse.Namespace:
        return argparse.Namespace(**{o.dest: self[o.name] for o in options})

    namespace.__doc__ = "The values as C{rpctransport serve} parses them."
    attributes = {
        "synopsis": synopsis,
        "longdesc": longdesc,
        "__init__": __init__,
        "postOptions": postOptions,
        "namespace": namespace,
        **methods,
    }
    return type("Options", (usage.Options,), attributes)


def _handler(option: Option) -> Any:
    """
    The C{opt_} method of one option: read, check, store.
    """
    if option.flag:

        def flag(self: Any) -> None:
            self[option.name] = True

        flag.__doc__ = option.help
        return flag

    def parameter(self: Any, text: str) -> None:
        read = option.read
        assert read is not None
        try:
            value = read(text)
        except OptionError as e:
            raise usage.UsageError(f"--{option.name}: {e}")
        if option.repeat:
            self[option.name].append(value)
        else:
            self[option.name] = value

    parameter.__doc__ = option.full_help()
    return parameter


# -- The checks -------------------------------------------------------------------


def check_serve(values: argparse.Namespace) -> None:
    """
    The checks of C{serve}'s options that no one option can make, the same
    for C{rpctransport serve} and C{twistd rpctransport-echo}; and
    C{--max-connections}: its default depends on the descriptor limit, 0
    is L{None} (no cap).
    @raise OptionError: naming what is wrong and what to do.
    """
    workers = values.workers > 1
    if workers and values.listen:
        raise OptionError(
            "--listen takes any Twisted endpoint, which only a process running a reactor "
            "opens: with --workers, listen with --tcp, --udp, --unix, --tls or --systemd"
        )
    if workers and values.register:
        raise OptionError("--register needs --workers 1 (the workers' parent runs no reactor)")
    if values.reuse_port and not workers:
        raise OptionError(
            "--reuse-port goes with --workers N (N > 1): each worker then binds its own "
            "TCP and UDP sockets"
        )
    if values.reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise OptionError("--reuse-port needs SO_REUSEPORT, which this system does not have")
    # What a --workers parent hands its workers (only on serve's command line).
    handed = [kind for kind, *_ in getattr(values, "adopt", []) + getattr(values, "bind_reuse_port", [])]
    tls_listeners = values.tls or values.starttls or "tls" in handed
    if tls_listeners and not values.tls_cert:
        raise OptionError("--tls and --starttls need --tls-cert (and --tls-key)")
    # With --systemd, whether a socket is named tls is known only once the
    # sockets are found (prepare_serving checks then).
    if not tls_listeners and not values.systemd:
        stray = [f"--{name}" for name in ("tls-cert", "tls-key", "tls-ca") if getattr(values, name.replace("-", "_"))]
        if stray:
            raise OptionError(
                f"{', '.join(stray)} given, but no TLS listener: add --tls HOST:PORT or --starttls"
            )
    if values.max_connections is None:
        values.max_connections = default_max_connections()
    else:
        values.max_connections = values.max_connections or None


CALL_HEADER_SIZE = 44
"""
The bytes of a call around an ECHO argument: the call header with AUTH_NONE
credential and verifier (40) and the argument's length (4).
"""


def check_call(values: argparse.Namespace) -> None:
    """
    The checks of C{call}'s options that no one option can make; sets
    C{values.target}, the L{CallAddress} of C{values.address}.

    @raise OptionError: naming what is wrong and what to do.
    """
    try:
        target = parse_call_address(values.address)
    except argparse.ArgumentTypeError as e:
        raise OptionError(str(e))
    values.target = target
    if values.starttls and target.kind not in ("tcp", "unix", "endpoint"):
        raise OptionError("--starttls goes with tcp: and unix: addresses (and client endpoint strings), not tls: or udp:")
    if values.starttls and target.kind == "endpoint" and not values.server_name:
        raise OptionError(
            "--starttls with a client endpoint string needs --server-name, the name the "
            "server's certificate carries"
        )
    if target.kind != "tls" and not values.starttls:
        stray = [
            f"--{name}" for name in ("tls-cert", "tls-key", "tls-ca", "server-name")
            if getattr(values, name.replace("-", "_"))
        ]
        if stray:
            raise OptionError(f"{', '.join(stray)} go with tls: addresses or --starttls")
    if values.proc == "null" and values.size:
        raise OptionError("--size goes with --proc echo")
    largest = (values.max_record_size - CALL_HEADER_SIZE) & ~3
    if values.size > largest:
        raise OptionError(
            f"--size {values.size} does not fit in a call of at most --max-record-size "
            f"{values.max_record_size} bytes: at most {max(largest, 0)}"
        )


def serve_namespace(values: argparse.Namespace) -> argparse.Namespace:
    """
    C{values} with C{--tcp} and C{--udp} on loopback when no listener was
    asked for (C{serve}'s default; C{--systemd} and the sockets a
    C{--workers} parent hands down are listeners).
    """
    given = values.tcp or values.udp or values.unix or values.listen or values.tls
    handed = getattr(values, "adopt", []) or getattr(values, "bind_reuse_port", [])
    if not (given or values.systemd or handed):
        values.tcp = [("127.0.0.1", 0)]
        values.udp = [("127.0.0.1", 0)]
    return values


def resolve_datagram_host(host: str) -> str:
    """
    The address a UDP socket binds for C{host}, a name (C{localhost}) or an
    address; Twisted's C{listenUDP} takes addresses only.

    @raise OptionError: when C{host} does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OptionError(f"cannot resolve {host!r}: {e.strerror}")
    return str(infos[0][4][0])
