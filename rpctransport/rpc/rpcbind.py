# -*- test-case-name: rpctransport.test.test_rpcbind -*-
"""
rpcbind registration (RFC 1833): tell the local rpcbind where a server's
programs are, take them back when it stops, and ask an rpcbind where a
program is::

    ok = yield register(PROGRAM, 1, "tcp", port.getHost())   # True: done
    uaddr = yield lookup(PROGRAM, 1, "tcp", host="192.0.2.7")  # or None
    client = yield connect_registered(PROGRAM, 1, "tcp", host="192.0.2.7")

How it reaches rpcbind:

  - L{register} and L{unregister} send rpcbind version 4 C{RPCBPROC_SET}
    (1) or C{RPCBPROC_UNSET} (2) over its UNIX socket (L{SOCKET_PATHS}, or
    the C{socket_path} given), where rpcbind trusts the caller's
    credentials (as root, the registration's owner is C{superuser}). When
    no socket answers (none there, a stale one, a timeout, an RPC error),
    they fall back to TCP C{127.0.0.1:111} with portmapper version 2
    C{PMAPPROC_SET}/C{PMAPPROC_UNSET} (1, 2) for the netids it can name
    (C{tcp}, C{udp}), and rpcbind version 4 over TCP for the others
    (C{tcp6}, C{udp6}, C{local}, C{unix}). Over TCP rpcbind takes SET and
    UNSET from the loopback only (unless run with C{-i}), records the owner
    as C{unknown}, and may unset only what C{unknown} owns.
  - A refusal is an answer, not a failure: SET and UNSET answer a boolean,
    and C{False} (another address is registered for the program, version
    and netid; or the caller may not unset it) is what the Deferred fires
    with, logged with the numbers; there is no second try on another path.
    Only when every path failed does the Deferred fail, with
    L{RpcbindUnavailable}, which says what was tried and why each failed.
  - L{lookup} asks rpcbind at C{host} over the transport of the netid it
    looks for (rpcbind answers C{GETADDR} for the transport the question
    came on): TCP for C{tcp}/C{tcp6}, UDP for C{udp}/C{udp6}, the UNIX
    socket for C{local}/C{unix}. It tries C{RPCBPROC_GETADDR} (3) of
    version 4, then 3 when rpcbind answers C{PROG_MISMATCH}, then the
    portmapper's C{PMAPPROC_GETPORT} (3) for C{tcp} and C{udp}: the order
    of libtirpc's C{rpcb_getaddr}. Like libtirpc's, a version 4 answer may
    name another version of the program (C{PROG_MISMATCH} then comes from
    the server itself).

L{Registration} registers a server's programs on start and takes them back
on stop (for C{rpctransport serve --register}).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any, Callable, Final, NamedTuple, TypeVar, Union, cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IAddress, IStreamClientEndpoint
from twisted.logger import Logger

from ..adapters.common import resolve_reactor
from ..sansio.errors import ProgramMismatch, TransportError
from ..sansio.xdr import MAX_UINT
from ..sansio.rpcb import (
    INET_NETIDS,
    LOCAL_NETIDS,
    NETIDS,
    PMAPPROC_GETPORT,
    PMAPPROC_SET,
    PMAPPROC_UNSET,
    PMAPVERS,
    RPCBIND_PORT,
    RPCBIND_PROGRAM,
    RPCBPROC_GETADDR,
    RPCBPROC_SET,
    RPCBPROC_UNSET,
    RPCBVERS3,
    RPCBVERS4,
    PortMapping,
    Rpcb,
    decode_bool,
    decode_port,
    decode_uaddr,
    encode_pmap,
    encode_rpcb,
    parse_universal_address,
    protocol_of,
    universal_address,
)
from .client import RpcClient, connect_rpc_client, datagram_rpc_client

__all__ = [
    "DEFAULT_TIMEOUT",
    "LOOPBACK",
    "SOCKET_PATHS",
    "Address",
    "Attempt",
    "Connector",
    "Entry",
    "ProgramNotRegistered",
    "Registration",
    "RegistrationRefused",
    "Rpcbind",
    "RpcbindPath",
    "RpcbindUnavailable",
    "client_address",
    "connect_registered",
    "entries_for",
    "lookup",
    "netid_of",
    "register",
    "unregister",
]

SOCKET_PATHS: Final = ("/run/rpcbind.sock", "/var/run/rpcbind.sock")
"""
Where rpcbind's UNIX socket is: Linux's rpcbind and libtirpc use
C{/run/rpcbind.sock}; older systems C{/var/run/rpcbind.sock} (the same file
where C{/var/run} links to C{/run}: it is tried once).
"""

LOOPBACK: Final = "127.0.0.1"
"""Where L{register} and L{unregister} reach rpcbind over TCP."""

DEFAULT_TIMEOUT: Final = 10.0
"""
Seconds for connecting to rpcbind, and for each call to it: the local
rpcbind answers in milliseconds, so this is for a host under heavy load,
and bounds how long a hung rpcbind holds a server's start on each path
(libtirpc's C{rpcb_set} waits 60 s).
"""

Address = Union[str, tuple[str, int], IAddress]
"""
A registered address: an C{(ip, port)} pair, a Twisted C{IPv4Address},
C{IPv6Address} or C{UNIXAddress} (a listening port's C{getHost()}), or a
string: a universal address for the IP netids, a socket's path for
C{local} and C{unix}.
"""

_T = TypeVar("_T")


def _start(coroutine: Coroutine[Any, Any, _T]) -> Deferred[_T]:
    return Deferred.fromCoroutine(coroutine)


# -- Errors -------------------------------------------------------------------------


def _program(program: int) -> str:
    return f"program {program} ({program:#x})"


@dataclass(frozen=True)
class RpcbindPath:
    """
    One way to reach rpcbind.

    @ivar transport: C{"unix"}, C{"tcp"} or C{"udp"}.
    @ivar where: the socket's path, or rpcbind's IP address.
    @ivar port: rpcbind's port (TCP and UDP).
    """

    transport: str
    where: str
    port: int = RPCBIND_PORT

    def __str__(self) -> str:
        if self.transport == "unix":
            return f"UNIX socket {self.where}"
        host = f"[{self.where}]" if ":" in self.where else self.where
        return f"{self.transport.upper()} {host}:{self.port}"


@dataclass(frozen=True)
class Attempt:
    """
    One path tried, and why it failed.

    @ivar path: where rpcbind was asked.
    @ivar request: what was asked (C{"rpcbind 4 SET"}).
    @ivar error: what the attempt failed with.
    """

    path: RpcbindPath
    request: str
    error: BaseException

    def __str__(self) -> str:
        return f"{self.path} ({self.request}): {type(self.error).__name__}: {self.error}"


class RpcbindUnavailable(TransportError):
    """
    rpcbind could not be asked: every path failed.

    @ivar operation: what was to be done, with its numbers.
    @ivar attempts: the paths tried, in order, each with why it failed.
    """

    def __init__(self, operation: str, attempts: Sequence[Attempt]) -> None:
        self.operation = operation
        self.attempts = tuple(attempts)
        tried = "; ".join(str(a) for a in self.attempts) or "no path to try"
        super().__init__(f"rpcbind is unreachable to {operation}: {tried}")


class RegistrationRefused(TransportError):
    """
    rpcbind answered C{False} to a SET: another address is registered for
    this program, version and netid, or the caller may not register it.

    @ivar entry: the registration refused.
    @ivar uaddr: its universal address.
    @ivar path: where rpcbind was asked, and how.
    """

    def __init__(self, entry: Entry, uaddr: str, path: str) -> None:
        self.entry = entry
        self.uaddr = uaddr
        self.path = path
        super().__init__(
            f"rpcbind refused to register {_program(entry.program)} version "
            f"{entry.version} on {entry.netid} at {uaddr!r} ({path} answered FALSE: "
            "another address is registered for them, or we may not register it)"
        )


class ProgramNotRegistered(TransportError):
    """
    rpcbind at C{host} knows no address for the program on that netid
    (libtirpc's C{RPC_PROGNOTREGISTERED}).
    """

    def __init__(self, program: int, version: int, netid: str, host: str) -> None:
        self.program = program
        self.version = version
        self.netid = netid
        self.host = host
        super().__init__(
            f"{_program(program)} version {version} is not registered on {netid} "
            f"with rpcbind at {host}"
        )


# -- Addresses ------------------------------------------------------------------------


def netid_of(address: IAddress) -> str:
    """
    The netid of a listening port's address (its C{getHost()}): C{tcp},
    C{udp}, C{tcp6}, C{udp6}, or C{local} for a UNIX socket.

    @raise ValueError: another kind of address.
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        base = {"TCP": "tcp", "UDP": "udp"}.get(address.type)
        if base is not None:
            return base if isinstance(address, IPv4Address) else base + "6"
    if isinstance(address, UNIXAddress):
        return "local"
    raise ValueError(f"no rpcbind netid for {address!r}")


def _uaddr(netid: str, address: Address) -> str:
    """
    The universal address to register for C{address} on C{netid}.

    @raise ValueError: an unknown netid, or an address that does not suit
        it.
    """
    if netid not in NETIDS:
        raise ValueError(f"netid {netid!r} is not one of {sorted(NETIDS)}")
    if netid in LOCAL_NETIDS:
        if isinstance(address, UNIXAddress) and address.name is not None:
            return os.fsdecode(address.name)
        if isinstance(address, str) and address:
            return address
        raise ValueError(f"netid {netid} takes a UNIX socket's path, not {address!r}")
    if isinstance(address, (IPv4Address, IPv6Address)):
        host, port = address.host, address.port
    elif isinstance(address, tuple):
        host, port = address
    elif isinstance(address, str):
        host, port = parse_universal_address(address)
    else:
        raise ValueError(f"netid {netid} takes an IP address and port, not {address!r}")
    uaddr = universal_address(host, port)
    family = 6 if ":" in uaddr else 4
    if family != INET_NETIDS[netid]:
        raise ValueError(f"netid {netid} takes an IPv{INET_NETIDS[netid]} address, not {host!r}")
    return uaddr


def client_address(netid: str, uaddr: str, host: str | None = None) -> tuple[str, int] | str:
    """
    Where to connect for a universal address rpcbind gave: C{(ip, port)}
    for the IP netids (for C{connect_rpc_client} with a TCP endpoint, or
    C{datagram_rpc_client}), the socket's path for C{local} and C{unix}.

    @param host: the address rpcbind was asked at, which replaces a
        wildcard (C{0.0.0.0}, C{::}) in C{uaddr}.
    @raise ValueError: C{uaddr} is not an address of C{netid}.
    """
    if netid in LOCAL_NETIDS:
        return uaddr
    if netid not in INET_NETIDS:
        raise ValueError(f"netid {netid!r} is not one of {sorted(NETIDS)}")
    ip, port = parse_universal_address(uaddr)
    if ip in ("0.0.0.0", "::") and host is not None:
        ip = host
    return ip, port


# -- Talking to rpcbind ---------------------------------------------------------------

Connector = Callable[[RpcbindPath], "Deferred[RpcClient]"]
"""
Makes an RPC client connected to rpcbind by one path (the default one
connects a socket; tests give their own).
"""


class Entry(NamedTuple):
    """
    One registration: a program version's address on one netid.
    """

    program: int
    version: int
    netid: str
    address: Address


def entries_for(programs: Iterable[tuple[int, int]], addresses: Iterable[IAddress]) -> list[Entry]:
    """
    The registrations of a server: each C{(program, version)} (an
    C{RpcServer}'s C{programs}) at each of its listening addresses
    (C{port.getHost()}), the netid taken from the address (L{netid_of}).
    """
    programs = list(programs)
    return [
        Entry(program, version, netid_of(address), address)
        for address in addresses
        for program, version in programs
    ]


class Rpcbind:
    """
    Asks rpcbind: see the module's docstring for the paths.

    @ivar timeout: seconds for connecting, and for each call.
    """

    log = Logger()

    def __init__(
        self,
        *,
        socket_path: str | Sequence[str] | None = None,
        host: str = LOOPBACK,
        port: int = RPCBIND_PORT,
        timeout: float = DEFAULT_TIMEOUT,
        reactor: Any = None,
        connect: Connector | None = None,
    ) -> None:
        """
        @param socket_path: rpcbind's UNIX socket, or the sockets to try in
            order (L{SOCKET_PATHS} by default).
        @param host: where L{register} and L{unregister} fall back to
            (TCP).
        @param port: rpcbind's TCP and UDP port.
        @param timeout: see L{timeout}.
        @param reactor: the reactor (the global one by default).
        @param connect: how to connect a client to rpcbind (a socket by
            default).
        @raise ValueError: C{timeout} is not positive.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        if socket_path is None:
            paths: Sequence[str] = SOCKET_PATHS
        elif isinstance(socket_path, str):
            paths = (socket_path,)
        else:
            paths = tuple(socket_path)
        self._socket_paths = paths
        self._host = host
        self._port = port
        self.timeout = timeout
        self._reactor = reactor
        self._connect: Connector = connect if connect is not None else self._connect_socket

    def _unix_paths(self) -> list[RpcbindPath]:
        """
        The UNIX sockets to try, each file once (C{/var/run} is often
        C{/run}).
        """
        seen: set[str] = set()
        found = []
        for path in self._socket_paths:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                found.append(RpcbindPath("unix", path))
        return found

    def _connect_socket(self, path: RpcbindPath) -> Deferred[RpcClient]:
        """
        Connect an RPC client to rpcbind by C{path}.
        """
        reactor = resolve_reactor(self._reactor)
        if path.transport == "udp":
            try:
                client = datagram_rpc_client(
                    path.where, path.port, reactor=reactor, timeout=self.timeout
                )
            except Exception:
                return fail()
            return succeed(client)
        seconds = ceil(self.timeout)
        endpoint: IStreamClientEndpoint
        if path.transport == "unix":
            endpoint = UNIXClientEndpoint(reactor, path.where, timeout=seconds)
        elif ":" in path.where:
            endpoint = TCP6ClientEndpoint(reactor, path.where, path.port, timeout=seconds)
        else:
            endpoint = TCP4ClientEndpoint(reactor, path.where, path.port, timeout=seconds)
        return connect_rpc_client(endpoint, reactor=reactor, timeout=self.timeout)

    async def _ask(self, path: RpcbindPath, version: int, procedure: int, args: bytes) -> bytes:
        """
        One call to rpcbind by C{path}, on a connection of its own.
        """
        client = await self._connect(path)
        try:
            return await client.call(
                RPCBIND_PROGRAM, version, procedure, args, timeout=self.timeout
            )
        finally:
            await _close(client)

    async def _change(
        self, operation: str, procedure: int, rpcb: Rpcb, pmap: PortMapping | None
    ) -> tuple[bool, str]:
        """
        SET or UNSET: rpcbind 4 over each UNIX socket, then over TCP either
        the portmapper (C{pmap}) or rpcbind 4.

        @return: rpcbind's answer, and the path and request that got it.
        @raise RpcbindUnavailable: every path failed.
        """
        name = "SET" if procedure == RPCBPROC_SET else "UNSET"
        tcp = RpcbindPath("tcp", self._host, self._port)
        tries = [(p, RPCBVERS4, procedure, encode_rpcb(rpcb)) for p in self._unix_paths()]
        if pmap is not None:
            on_pmap = PMAPPROC_SET if procedure == RPCBPROC_SET else PMAPPROC_UNSET
            tries.append((tcp, PMAPVERS, on_pmap, encode_pmap(pmap)))
        else:
            tries.append((tcp, RPCBVERS4, procedure, encode_rpcb(rpcb)))
        attempts: list[Attempt] = []
        for path, version, number, args in tries:
            request = f"{'portmapper' if version == PMAPVERS else 'rpcbind'} {version} {name}"
            try:
                answer = decode_bool(await self._ask(path, version, number, args))
            except CancelledError:
                raise
            except Exception as e:
                attempt = Attempt(path, request, e)
                attempts.append(attempt)
                self.log.info(
                    "rpcbind: could not {operation} by {attempt}",
                    operation=operation,
                    attempt=str(attempt),
                )
                continue
            return answer, f"{request} over {path}"
        raise RpcbindUnavailable(operation, attempts)

    def _set(self, entry: Entry, owner: str | None) -> tuple[str, Deferred[tuple[bool, str]]]:
        """
        Start a SET; the universal address, and the Deferred of
        L{_change}.
        """
        program, version, netid, address = entry
        _check_numbers(program, version)
        uaddr = _uaddr(netid, address)
        rpcb = Rpcb(program, version, netid, uaddr, _owner(owner))
        pmap = None
        protocol = protocol_of(netid)
        if protocol is not None:
            pmap = PortMapping(program, version, protocol, parse_universal_address(uaddr)[1])
        operation = f"register {_program(program)} version {version} on {netid} at {uaddr}"
        d = _start(self._change(operation, RPCBPROC_SET, rpcb, pmap))
        return uaddr, d

    def register(
        self,
        program: int,
        version: int,
        netid: str,
        address: Address,
        *,
        owner: str | None = None,
    ) -> Deferred[bool]:
        """
        Register C{address} for C{program} C{version} on C{netid}.

        @param netid: C{"tcp"}, C{"udp"}, C{"tcp6"}, C{"udp6"}, or
            C{"local"}/C{"unix"} for a UNIX socket.
        @param address: see L{Address}.
        @param owner: the owner to announce (rpcbind records the caller's
            identity instead); the effective uid, by default, as libtirpc.
        @return: a Deferred firing with rpcbind's answer: C{True}
            (registered, or already registered at this address), C{False}
            (refused: logged); or failing with L{RpcbindUnavailable}.
        @raise ValueError: an unknown netid, an address that does not suit
            it, or a number that does not fit in 32 bits.
        """
        entry = Entry(program, version, netid, address)
        uaddr, d = self._set(entry, owner)

        def answered(result: tuple[bool, str]) -> bool:
            ok, path = result
            if ok:
                self.log.info(
                    "rpcbind: registered program {program} version {version} on {netid} "
                    "at {uaddr} ({path})",
                    program=program,
                    version=version,
                    netid=netid,
                    uaddr=uaddr,
                    path=path,
                )
            else:
                self.log.warn("{error}", error=str(RegistrationRefused(entry, uaddr, path)))
            return ok

        return d.addCallback(answered)

    def unregister(
        self,
        program: int,
        version: int,
        netid: str | None = None,
        *,
        owner: str | None = None,
    ) -> Deferred[bool]:
        """
        Take back the registrations of C{program} C{version} on C{netid}
        (L{None}: on every netid).

        Over the TCP fallback, the portmapper's UNSET takes back both
        C{tcp} and C{udp} for C{netid} C{"tcp"}, C{"udp"} or L{None}
        (C{tcp6}, C{udp6} and C{local} are taken back only by rpcbind 4:
        over the UNIX socket, or over TCP for those netids).

        @return: a Deferred firing with rpcbind's answer: C{True} (nothing
            registered any more, including when nothing was), C{False}
            (refused: someone else owns a registration; logged); or failing
            with L{RpcbindUnavailable}.
        @raise ValueError: an unknown netid, or a number that does not fit
            in 32 bits.
        """
        _check_numbers(program, version)
        if netid is not None and netid not in NETIDS:
            raise ValueError(f"netid {netid!r} is not one of {sorted(NETIDS)}")
        rpcb = Rpcb(program, version, netid or "", "", _owner(owner))
        pmap = None
        if netid is None or protocol_of(netid) is not None:
            pmap = PortMapping(program, version, 0, 0)
        on = "every netid" if netid is None else netid
        operation = f"unregister {_program(program)} version {version} on {on}"

        def answered(result: tuple[bool, str]) -> bool:
            ok, path = result
            if ok:
                self.log.info(
                    "rpcbind: unregistered program {program} version {version} on {on} ({path})",
                    program=program,
                    version=version,
                    on=on,
                    path=path,
                )
            else:
                self.log.warn(
                    "rpcbind refused to {operation} ({path} answered FALSE: another owner's "
                    "registration)",
                    operation=operation,
                    path=path,
                )
            return ok

        d = _start(self._change(operation, RPCBPROC_UNSET, rpcb, pmap))
        return d.addCallback(answered)

    def lookup(
        self, program: int, version: int, netid: str = "tcp", *, host: str | None = None
    ) -> Deferred[str | None]:
        """
        Ask rpcbind at C{host} for the address of C{program} C{version} on
        C{netid}.

        @param host: rpcbind's IP address: C{127.0.0.1} by default
            (C{::1} for C{tcp6} and C{udp6}); not used for C{local} and
            C{unix}, which ask over the UNIX socket.
        @return: a Deferred firing with the universal address (see
            L{client_address}), or L{None} when the program is not
            registered there; or failing with L{RpcbindUnavailable}.
        @raise ValueError: an unknown netid, or a host that is not an IP
            address.
        """
        _check_numbers(program, version)
        if netid not in NETIDS:
            raise ValueError(f"netid {netid!r} is not one of {sorted(NETIDS)}")
        if netid in LOCAL_NETIDS:
            paths = self._unix_paths()
            host = None
        else:
            if host is None:
                host = "::1" if INET_NETIDS[netid] == 6 else LOOPBACK
            universal_address(host, 0)  # an IP address, or ValueError
            paths = [RpcbindPath(netid[:3], host, self._port)]
        rpcb = encode_rpcb(Rpcb(program, version, netid, "", ""))
        pmap = None
        protocol = protocol_of(netid)
        if protocol is not None:
            pmap = encode_pmap(PortMapping(program, version, protocol, 0))
        operation = f"look up {_program(program)} version {version} on {netid}"
        return _start(self._lookup(operation, paths, rpcb, pmap, host))

    async def _lookup(
        self,
        operation: str,
        paths: list[RpcbindPath],
        rpcb: bytes,
        pmap: bytes | None,
        host: str | None,
    ) -> str | None:
        """
        GETADDR 4, 3, then GETPORT 2, by each path until one answers.
        """
        attempts: list[Attempt] = []
        for path in paths:
            try:
                client = await self._connect(path)
            except CancelledError:
                raise
            except Exception as e:
                attempts.append(Attempt(path, "connect", e))
                continue
            try:
                for version in (RPCBVERS4, RPCBVERS3, PMAPVERS):
                    procedure = PMAPPROC_GETPORT if version == PMAPVERS else RPCBPROC_GETADDR
                    args = pmap if version == PMAPVERS else rpcb
                    if args is None:
                        continue
                    request = (
                        "portmapper 2 GETPORT"
                        if version == PMAPVERS
                        else f"rpcbind {version} GETADDR"
                    )
                    try:
                        body = await client.call(
                            RPCBIND_PROGRAM, version, procedure, args, timeout=self.timeout
                        )
                        if version != PMAPVERS:
                            return decode_uaddr(body) or None
                        port = decode_port(body)
                        if port == 0:
                            return None
                        assert host is not None
                        return universal_address(host, port)
                    except CancelledError:
                        raise
                    except ProgramMismatch as e:
                        attempts.append(Attempt(path, request, e))
                    except Exception as e:
                        attempts.append(Attempt(path, request, e))
                        break
            finally:
                await _close(client)
        raise RpcbindUnavailable(operation, attempts)


async def _close(client: RpcClient) -> None:
    """
    Close C{client}; for a UDP socket, wait until it is closed (the next
    reactor turn), so that nothing of ours is left when an answer fires.
    """
    client.close()
    when_closed = getattr(client.controller, "when_closed", None)
    if when_closed is not None:
        await when_closed()


def _check_numbers(program: int, version: int) -> None:
    """
    @raise ValueError: a number is not an unsigned 32-bit integer.
    """
    for name, value in (("program", program), ("version", version)):
        if not 0 <= value <= MAX_UINT:
            raise ValueError(f"{name} {value} is not an unsigned 32-bit integer")


def _owner(owner: str | None) -> str:
    """
    The owner announced: C{owner}, or the effective uid, as libtirpc's
    C{rpcb_set} announces it.
    """
    return str(os.geteuid()) if owner is None else owner


# -- The functions ----------------------------------------------------------------------


def register(
    program: int,
    version: int,
    netid: str,
    address: Address,
    *,
    owner: str | None = None,
    socket_path: str | Sequence[str] | None = None,
    reactor: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Deferred[bool]:
    """
    Register C{address} for C{program} C{version} on C{netid} with the
    local rpcbind; see L{Rpcbind.register}.

    @param socket_path: rpcbind's UNIX socket (L{SOCKET_PATHS} by default).
    @param reactor: the reactor (the global one by default).
    @param timeout: see L{DEFAULT_TIMEOUT}.
    """
    rpcbind = Rpcbind(socket_path=socket_path, reactor=reactor, timeout=timeout)
    return rpcbind.register(program, version, netid, address, owner=owner)


def unregister(
    program: int,
    version: int,
    netid: str | None = None,
    *,
    owner: str | None = None,
    socket_path: str | Sequence[str] | None = None,
    reactor: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Deferred[bool]:
    """
    Take back the registrations of C{program} C{version} on C{netid}
    (L{None}: every netid) from the local rpcbind; see
    L{Rpcbind.unregister}.
    """
    rpcbind = Rpcbind(socket_path=socket_path, reactor=reactor, timeout=timeout)
    return rpcbind.unregister(program, version, netid, owner=owner)


def lookup(
    program: int,
    version: int,
    netid: str = "tcp",
    *,
    host: str | None = None,
    socket_path: str | Sequence[str] | None = None,
    reactor: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Deferred[str | None]:
    """
    Ask rpcbind at C{host} where C{program} C{version} is on C{netid}; see
    L{Rpcbind.lookup}.

    @return: a Deferred firing with the universal address, or L{None}.
    """
    rpcbind = Rpcbind(socket_path=socket_path, reactor=reactor, timeout=timeout)
    return rpcbind.lookup(program, version, netid, host=host)


def connect_registered(
    program: int,
    version: int,
    netid: str = "tcp",
    *,
    host: str | None = None,
    socket_path: str | Sequence[str] | None = None,
    reactor: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    **client_options: Any,
) -> Deferred[RpcClient]:
    """
    Ask rpcbind at C{host} where C{program} C{version} is on C{netid} and
    make an L{RpcClient} for it: C{connect_rpc_client} for C{tcp},
    C{tcp6}, C{local} and C{unix}, C{datagram_rpc_client} for C{udp} and
    C{udp6}.

    @param timeout: for the questions to rpcbind; the client's own
        C{timeout} is one of C{client_options}.
    @param client_options: for C{connect_rpc_client} or
        C{datagram_rpc_client} (C{timeout}, C{max_in_flight}, limits).
    @return: a Deferred firing with the client, or failing with
        L{ProgramNotRegistered}, L{RpcbindUnavailable}, or why it could
        not connect.
    """
    rpcbind = Rpcbind(socket_path=socket_path, reactor=reactor, timeout=timeout)
    d = rpcbind.lookup(program, version, netid, host=host)
    asked = host if host is not None else ("::1" if INET_NETIDS.get(netid) == 6 else LOOPBACK)

    def found(uaddr: str | None) -> Deferred[RpcClient] | RpcClient:
        if uaddr is None:
            raise ProgramNotRegistered(program, version, netid, asked)
        where = client_address(netid, uaddr, asked)
        real = resolve_reactor(reactor)
        if isinstance(where, str):
            endpoint: IStreamClientEndpoint = UNIXClientEndpoint(real, where)
            return connect_rpc_client(endpoint, reactor=real, **client_options)
        ip, port = where
        if netid.startswith("udp"):
            return datagram_rpc_client(ip, port, reactor=real, **client_options)
        if ":" in ip:
            endpoint = TCP6ClientEndpoint(real, ip, port)
        else:
            endpoint = TCP4ClientEndpoint(real, ip, port)
        return connect_rpc_client(endpoint, reactor=real, **client_options)

    return cast("Deferred[RpcClient]", d.addCallback(found))


# -- Registration for servers -----------------------------------------------------------


class _Life(enum.Enum):
    """
    A L{Registration}'s life: C{NEW} -> C{STARTING} -> C{REGISTERED} ->
    C{STOPPING} -> C{STOPPED}; C{NEW} -> C{STOPPED} (stopped before
    start); C{STARTING} -> C{STOPPED} (start failed, or stopped while
    starting: what was registered is taken back).
    """

    NEW = "new"
    STARTING = "starting"
    REGISTERED = "registered"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Registration:
    """
    A server's registrations with the local rpcbind: made by L{start},
    taken back by L{stop}::

        registration = Registration(entries_for(server.programs, [p.getHost() for p in ports]))
        yield registration.start()             # fails: the server should not run
        reactor.addSystemEventTrigger("before", "shutdown", registration.stop)

    With C{replace} (the default), L{start} first takes back what rpcbind
    has for each program, version and netid, as rpcgen's servers do: a
    registration left by a server that died would make rpcbind refuse the
    new one.
    """

    log = Logger()

    def __init__(
        self,
        entries: Iterable[Entry | tuple[int, int, str, Address]],
        *,
        rpcbind: Rpcbind | None = None,
        replace: bool = True,
        owner: str | None = None,
    ) -> None:
        """
        @param entries: what to register (see L{entries_for}).
        @param rpcbind: how to reach rpcbind (an L{Rpcbind} with its
            defaults by default).
        @param replace: take back existing registrations first.
        @param owner: as for L{Rpcbind.register}.
        @raise ValueError: an entry's netid or address is not valid.
        """
        self.entries = tuple(Entry(*entry) for entry in entries)
        for entry in self.entries:
            _uaddr(entry.netid, entry.address)
        self._rpcbind = rpcbind if rpcbind is not None else Rpcbind()
        self._replace = replace
        self._owner = owner
        self._life = _Life.NEW
        self._registered: list[Entry] = []
        self._stopped: list[Deferred[bool]] = []

    @property
    def registered(self) -> tuple[Entry, ...]:
        """
        The entries registered now.
        """
        return tuple(self._registered)

    def start(self) -> Deferred[None]:
        """
        Register every entry, in order.

        @return: a Deferred firing with L{None} once all are registered, or
            failing with L{RegistrationRefused} or L{RpcbindUnavailable}
            after taking back those it registered.
        @raise RuntimeError: it was started already.
        """
        if self._life is not _Life.NEW:
            raise RuntimeError(f"the registration is {self._life.value}: start it once")
        self._life = _Life.STARTING
        return _start(self._start())

    async def _start(self) -> None:
        rpcbind = self._rpcbind
        try:
            if self._replace:
                for program, version, netid in _keys(self.entries):
                    await rpcbind.unregister(program, version, netid, owner=self._owner)
            for entry in self.entries:
                if self._life is not _Life.STARTING:
                    break
                uaddr, d = rpcbind._set(entry, self._owner)
                ok, path = await d
                if not ok:
                    raise RegistrationRefused(entry, uaddr, path)
                self._registered.append(entry)
                self.log.info(
                    "rpcbind: registered program {program} version {version} on {netid} "
                    "at {uaddr} ({path})",
                    program=entry.program,
                    version=entry.version,
                    netid=entry.netid,
                    uaddr=uaddr,
                    path=path,
                )
        except BaseException:
            await self._take_back()
            raise
        if self._life is _Life.STARTING:
            self._life = _Life.REGISTERED
        else:
            # stop() was called meanwhile: it waits for us.
            await self._take_back()

    def stop(self) -> Deferred[bool]:
        """
        Take back what was registered (while starting: once the start
        finished). Failures are logged, with their numbers, not raised:
        stopping a server goes on.

        @return: a Deferred firing with C{True} when everything registered
            was taken back, C{False} otherwise.
        """
        life = self._life
        if life is _Life.STOPPED:
            return succeed(not self._registered)
        d: Deferred[bool] = Deferred()
        self._stopped.append(d)
        if life is _Life.NEW:
            self._finish()
        elif life is _Life.REGISTERED:
            self._life = _Life.STOPPING
            _start(self._take_back())
        elif life is _Life.STARTING:
            # _start takes back what it registered, then finishes.
            self._life = _Life.STOPPING
        return d

    async def _take_back(self) -> None:
        """
        Unregister what was registered, then fire L{stop}'s Deferreds.
        """
        rpcbind = self._rpcbind
        for program, version, netid in _keys(self._registered):
            try:
                ok = await rpcbind.unregister(program, version, netid, owner=self._owner)
            except Exception as e:
                self.log.warn(
                    "rpcbind: could not unregister program {program} version {version} on "
                    "{netid}: {error}",
                    program=program,
                    version=version,
                    netid=netid,
                    error=str(e),
                )
                continue
            if ok:
                key = (program, version, netid)
                self._registered = [
                    e for e in self._registered if (e.program, e.version, e.netid) != key
                ]
        self._finish()

    def _finish(self) -> None:
        self._life = _Life.STOPPED
        waiters, self._stopped = self._stopped, []
        for d in waiters:
            d.callback(not self._registered)


def _keys(entries: Iterable[Entry]) -> list[tuple[int, int, str]]:
    """
    The distinct C{(program, version, netid)} of C{entries}, in order.
    """
    return list(dict.fromkeys((e.program, e.version, e.netid) for e in entries))
