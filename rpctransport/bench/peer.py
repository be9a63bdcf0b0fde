# -*- test-case-name: rpctransport.test.test_bench -*-
"""
The benchmark's Twisted peers, each run in a process of its own by
L{rpctransport.bench.cases}:

  - C{python -m rpctransport.bench.peer receive --variant V [--memory]}:
    listen on loopback TCP, print C{listening tcp HOST:PORT}, and on each
    connection receive records (or bytes) until the sender half-closes,
    timed from C{connectionMade} to the end of the input; print one JSON
    line per connection (C{elapsed}, C{records}, C{bytes}), then close it.
    C{V} is
    C{bare} (a C{Protocol} whose C{dataReceived} only counts bytes: the
    ceiling of anything on Twisted), C{int32} (Twisted's
    C{Int32StringReceiver}, C{MAX_LENGTH} raised), C{controller} (the
    stream controller's C{start_reading} loop, one Deferred per record) or
    C{stream} (the stream controller's C{receive_records}, a call per
    record).
    With C{--memory}, the line also has the process's resident memory
    before the connection and its peak during it.
  - C{python -m rpctransport.bench.peer echo-server --variant V}: echo every
    record back, with the controller's one-shot API (C{start_reading},
    C{start_writing}), its streaming API (C{receive_records},
    C{send_record}) or with C{Int32StringReceiver}; no RPC decoding.
  - C{python -m rpctransport.bench.peer echo-client --variant V --port P
    --size S --count N --depth D}: the other end, C{D} records in flight;
    prints one JSON line and exits.
  - C{python -m rpctransport.bench.peer deferred-floor --count N}: no I/O
    at all; make, hook and fire C{N} Deferreds the way the controller's
    read loop does, one per record, and print one JSON line. No API that
    hands out one Deferred per record can beat this rate.

The byte streams come from L{rpctransport.bench._sender}, a process that
imports no Twisted, so that the sender costs as little as it can.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import Int32StringReceiver

__all__ = ["main", "memory_status"]

LARGEST = 64 * 1024 * 1024
"""The largest record the receivers accept (all the benchmark sends fit)."""


def memory_status() -> dict[str, int]:
    """
    This process's C{VmRSS} and C{VmHWM} (peak resident) in bytes, from
    C{/proc/self/status}; empty where there is no such file.
    """
    found: dict[str, int] = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


def _reset_peak() -> bool:
    """
    Reset this process's C{VmHWM} to its current resident size (Linux 4.0
    and later); say whether it worked.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


class _Timed:
    """
    The timing and reporting the receivers share.
    """

    memory = False
    started = 0.0
    before: dict[str, int] = {}
    peak_reset = False

    def begin(self) -> None:
        if self.memory:
            self.peak_reset = _reset_peak()
            self.before = memory_status()
        self.started = time.perf_counter()

    def report(self, records: int, payload: int, close: Callable[[], object]) -> None:
        elapsed = time.perf_counter() - self.started
        result: dict[str, Any] = {"elapsed": elapsed, "records": records, "bytes": payload}
        if self.memory:
            after = memory_status()
            result.update(
                rss_before=self.before.get("VmRSS"),
                hwm_before=self.before.get("VmHWM"),
                hwm=after.get("VmHWM"),
                rss_after=after.get("VmRSS"),
                peak_reset=self.peak_reset,
            )
        _emit(result)
        close()


class BareReceiver(_Timed, Protocol):
    """
    Counts bytes, nothing else: the ceiling of any protocol on Twisted.
    """

    def __init__(self) -> None:
        self.got = 0

    def connectionMade(self) -> None:
        self.begin()

    def dataReceived(self, data: bytes) -> None:
        self.got += len(data)

    def connectionLost(self, reason: object = None) -> None:
        self.report(0, self.got, lambda: None)


class Int32Receiver(_Timed, Int32StringReceiver):
    """
    Twisted's own length-prefixed framing, counting whole strings.
    """

    MAX_LENGTH = LARGEST

    def __init__(self) -> None:
        self.received = 0
        self.payload = 0

    def connectionMade(self) -> None:
        self.begin()

    def stringReceived(self, string: bytes) -> None:
        self.received += 1
        self.payload += len(string)

    def connectionLost(self, reason: object = None) -> None:
        self.report(self.received, self.payload, lambda: None)


def _controller_receiver(memory: bool) -> Factory:
    """
    A factory of stream controllers that read records with C{start_reading},
    one Deferred per record, until the end of the input.
    """
    from ..entry.stream import StreamControllerFactory
    from ..sansio.types import END_OF_FILE

    def on_connection(controller: Any) -> None:
        timed = _Timed()
        timed.memory = memory
        timed.begin()
        state = {"records": 0, "payload": 0}

        def on_read(result: Any) -> None:
            if result is END_OF_FILE:
                timed.report(state["records"], state["payload"], controller.inactivate)
                return
            state["records"] += 1
            state["payload"] += len(result[0].message)
            controller.start_reading().addCallbacks(on_read, on_error)

        def on_error(failure: Any) -> None:
            _emit({"error": str(failure.value), **state})
            controller.inactivate()

        controller.start_reading().addCallbacks(on_read, on_error)

    return StreamControllerFactory(on_connection, _reactor(), max_record_size=LARGEST)


class _CountingReceiver:
    """
    A receiver of C{receive_records} that counts records until the end of
    the input.
    """

    def __init__(self, controller: Any, timed: _Timed) -> None:
        self.controller = controller
        self.timed = timed
        self.records = 0
        self.payload = 0

    def record_received(self, message: bytes, peer: object) -> None:
        self.records += 1
        self.payload += len(message)

    def record_refused(self, record: object, peer: object) -> None:
        _emit({"error": f"refused: {record!r}"})

    def receiving_ended(self, reason: Any) -> None:
        from twisted.internet.error import ConnectionDone

        if not reason.check(ConnectionDone):
            _emit({"error": str(reason.value), "records": self.records})
            self.controller.inactivate()
            return
        self.timed.report(self.records, self.payload, self.controller.inactivate)


def _stream_receiver(memory: bool) -> Factory:
    """
    A factory of stream controllers that take records with
    C{receive_records} until the end of the input.
    """
    from ..entry.stream import StreamControllerFactory

    def on_connection(controller: Any) -> None:
        timed = _Timed()
        timed.memory = memory
        timed.begin()
        controller.receive_records(_CountingReceiver(controller, timed))

    return StreamControllerFactory(on_connection, _reactor(), max_record_size=LARGEST)


def _receive(args: argparse.Namespace) -> Factory:
    kinds: dict[str, type[BareReceiver] | type[Int32Receiver]] = {
        "bare": BareReceiver,
        "int32": Int32Receiver,
    }
    if args.variant == "stream":
        return _stream_receiver(args.memory)
    kind = kinds.get(args.variant)
    if kind is None:
        return _controller_receiver(args.memory)

    def build() -> BareReceiver | Int32Receiver:
        receiver = kind()
        receiver.memory = args.memory
        return receiver

    return Factory.forProtocol(build)


class Int32Echo(Int32StringReceiver):
    """
    Sends every string back.
    """

    MAX_LENGTH = LARGEST

    def stringReceived(self, string: bytes) -> None:
        self.sendString(string)


class _StreamEcho:
    """
    Sends every record back with C{send_record}; the stream pauses while
    the transport pushes back.
    """

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self.record_received = lambda message, peer: controller.send_record(message)
        controller.register_producer(controller.receive_records(self))

    def record_refused(self, record: object, peer: object) -> None:
        pass

    def receiving_ended(self, reason: Any) -> None:
        self.controller.inactivate()


def _echo_server(args: argparse.Namespace) -> Factory:
    if args.variant == "int32":
        return Factory.forProtocol(Int32Echo)
    from ..entry.stream import StreamControllerFactory
    from ..sansio.types import END_OF_FILE

    if args.variant == "stream":
        return StreamControllerFactory(_StreamEcho, _reactor(), max_record_size=LARGEST)

    def on_connection(controller: Any) -> None:
        def on_read(result: Any) -> None:
            if result is END_OF_FILE:
                controller.inactivate()
                return
            controller.start_writing(result[0].message).addCallbacks(read_next, on_error)

        def read_next(_: object = None) -> None:
            controller.start_reading().addCallbacks(on_read, on_error)

        def on_error(failure: Any) -> None:
            controller.inactivate()

        read_next()

    return StreamControllerFactory(on_connection, _reactor(), max_record_size=LARGEST)


class _EchoClient:
    """
    Keeps C{depth} records in flight until C{count} have come back, then
    reports and stops the reactor.
    """

    def __init__(self, reactor: Any, size: int, count: int, depth: int) -> None:
        self.reactor = reactor
        self.payload = bytes(i % 251 for i in range(size))
        self.count = count
        self.depth = depth
        self.sent = 0
        self.received = 0
        self.started = 0.0

    def begin(self) -> None:
        self.started = time.perf_counter()

    def done(self) -> None:
        elapsed = time.perf_counter() - self.started
        _emit({"elapsed": elapsed, "records": self.received})
        self.reactor.stop()

    def fail(self, why: str) -> None:
        _emit({"error": why, "records": self.received})
        self.reactor.stop()


class Int32EchoClient(Int32StringReceiver):
    """
    The L{_EchoClient} on C{Int32StringReceiver}.
    """

    MAX_LENGTH = LARGEST

    def __init__(self, client: _EchoClient) -> None:
        self.client = client

    def connectionMade(self) -> None:
        client = self.client
        client.begin()
        while client.sent < client.count and client.sent < client.depth:
            client.sent += 1
            self.sendString(client.payload)

    def stringReceived(self, string: bytes) -> None:
        client = self.client
        client.received += 1
        if string != client.payload:
            client.fail("an echo differs")
            return
        if client.received == client.count:
            client.done()
        elif client.sent < client.count:
            client.sent += 1
            self.sendString(client.payload)

    def connectionLost(self, reason: Any = None) -> None:
        if self.client.received < self.client.count:
            self.client.fail(f"connection lost: {reason}")


def _controller_echo_client(controller: Any, client: _EchoClient) -> None:
    """
    The L{_EchoClient} on a stream controller.
    """
    from ..sansio.types import END_OF_FILE

    state = {"writing": False}

    def write_more() -> None:
        while (
            not state["writing"]
            and client.sent < client.count
            and client.sent - client.received < client.depth
        ):
            client.sent += 1
            d = controller.start_writing(client.payload)
            if not d.called:
                # The transport pushes back: wait for it.
                state["writing"] = True
                d.addCallback(resumed)
            d.addErrback(on_error)

    def resumed(_: object) -> None:
        state["writing"] = False
        write_more()

    def on_read(result: Any) -> None:
        if result is END_OF_FILE:
            client.fail("the server closed the connection")
            return
        client.received += 1
        if result[0].message != client.payload:
            client.fail("an echo differs")
            return
        if client.received == client.count:
            client.done()
            return
        write_more()
        controller.start_reading().addCallbacks(on_read, on_error)

    def on_error(failure: Any) -> None:
        client.fail(str(failure.value))

    client.begin()
    controller.start_reading().addCallbacks(on_read, on_error)
    write_more()


class _StreamEchoClient:
    """
    The L{_EchoClient} on a stream controller's streaming API: replies come
    to C{record_received}, calls go out with C{send_record}, and sending
    waits while the transport pushes back (this is its producer).
    """

    def __init__(self, controller: Any, client: _EchoClient) -> None:
        self.controller = controller
        self.client = client
        self.paused = False
        controller.register_producer(self)
        controller.receive_records(self)
        client.begin()
        self.write_more()

    def write_more(self) -> None:
        client = self.client
        send = self.controller.send_record
        payload = client.payload
        while (
            not self.paused
            and client.sent < client.count
            and client.sent - client.received < client.depth
        ):
            client.sent += 1
            send(payload)

    def record_received(self, message: bytes, peer: object) -> None:
        client = self.client
        client.received += 1
        if message != client.payload:
            client.fail("an echo differs")
        elif client.received == client.count:
            client.done()
        else:
            self.write_more()

    def record_refused(self, record: object, peer: object) -> None:
        self.client.fail(f"refused: {record!r}")

    def receiving_ended(self, reason: Any) -> None:
        if self.client.received < self.client.count:
            self.client.fail(f"the server closed the connection: {reason.value}")

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.write_more()

    def stopProducing(self) -> None:
        self.paused = True


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _listen(factory: Factory) -> None:
    port = _reactor().listenTCP(0, factory, interface="127.0.0.1")
    print(f"listening tcp 127.0.0.1:{port.getHost().port}", flush=True)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rpctransport.bench.peer")
    modes = parser.add_subparsers(dest="mode", required=True)
    receive = modes.add_parser("receive")
    receive.add_argument(
        "--variant", choices=("bare", "int32", "controller", "stream"), required=True
    )
    receive.add_argument("--memory", action="store_true")
    server = modes.add_parser("echo-server")
    server.add_argument("--variant", choices=("int32", "controller", "stream"), required=True)
    client = modes.add_parser("echo-client")
    client.add_argument("--variant", choices=("int32", "controller", "stream"), required=True)
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--size", type=int, required=True)
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--depth", type=int, required=True)
    floor = modes.add_parser("deferred-floor")
    floor.add_argument("--count", type=int, required=True)
    return parser.parse_args(argv)


def deferred_floor(count: int) -> dict[str, Any]:
    """
    Time C{count} rounds of what one record costs a C{start_reading} loop in
    Deferred machinery alone: a L{Deferred <twisted.internet.defer.Deferred>}
    with a canceller, its
    C{addCallbacks}, and its C{callback} with a C{(record, peer)} result.
    """
    from twisted.internet.defer import Deferred

    got = [0]
    record = (b"\0" * 64, None)

    def on_read(result: object) -> None:
        got[0] += 1

    def on_error(failure: object) -> None:
        pass

    def cancel(d: object) -> None:
        pass

    started = time.perf_counter()
    for _ in range(count):
        d: Deferred[Any] = Deferred(cancel)
        d.addCallbacks(on_read, on_error)
        d.callback(record)
    return {"elapsed": time.perf_counter() - started, "records": got[0]}


def _die_with_parent() -> None:
    """
    Ask Linux to send us SIGTERM when the benchmark that started us dies, so
    that no peer outlives a benchmark that was killed.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run one peer (see the module's docstring) until SIGTERM, or for the
    echo client, until its records are done.
    """
    args = _parse(sys.argv[1:] if argv is None else argv)
    _die_with_parent()
    if args.mode == "deferred-floor":
        _emit(deferred_floor(args.count))
        return
    reactor = _reactor()

    if args.mode == "receive":
        _listen(_receive(args))
    elif args.mode == "echo-server":
        _listen(_echo_server(args))
    else:
        client = _EchoClient(reactor, args.size, args.count, args.depth)
        if args.variant == "int32":
            from twisted.internet.protocol import ClientFactory

            factory = ClientFactory.forProtocol(lambda: Int32EchoClient(client))
            reactor.connectTCP("127.0.0.1", args.port, factory)
        else:
            from ..entry.stream import connect_stream

            d = connect_stream(f"tcp:host=127.0.0.1:port={args.port}", reactor=reactor)
            start: Callable[[Any, _EchoClient], object] = (
                _StreamEchoClient if args.variant == "stream" else _controller_echo_client
            )
            d.addCallbacks(
                lambda controller: start(controller, client),
                lambda failure: client.fail(str(failure.value)),
            )
    reactor.run()


if __name__ == "__main__":
    main()
