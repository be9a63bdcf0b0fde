"""
An echo server and a client over loopback TCP, written as typed code:
C{mypy --strict} (with the C{mypy_zope} plugin, for Twisted's interfaces)
passes on it, and narrows what a read gives to a record and its peer.

Run it with C{python docs/examples/typed_client.py}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.task import react

from rpctransport import (
    ACCEPT,
    DENY,
    END_OF_FILE,
    Accepted,
    InRule,
    ReadResult,
    StreamController,
    connect_stream,
    listen_stream,
)

LIMIT = 1024 * 1024


def before_record(size_so_far: int, peer: IAddress) -> InRule:
    # Decide on the header, before a byte of the record is buffered.
    return DENY if size_so_far > LIMIT else ACCEPT


async def echo(controller: StreamController) -> None:
    try:
        while True:
            result: ReadResult = await controller.start_reading(before_record=before_record)
            if result is END_OF_FILE:
                break
            record, peer = result
            if not isinstance(record, Accepted):
                break  # denied: too large
            await controller.start_writing(record.message)
    finally:
        controller.inactivate()


def serve(controller: StreamController) -> None:
    ensureDeferred(echo(controller))


async def call(client: StreamController, message: bytes) -> bytes:
    reading = client.start_reading()
    await client.start_writing(message)
    result = await reading
    if result is END_OF_FILE:
        raise ConnectionError("the server closed the connection")
    record, peer = result
    if not isinstance(record, Accepted):
        raise ConnectionError(f"{peer} sent no reply: {record!r}")
    return record.message


async def main(reactor: IReactorTime) -> None:
    port = await listen_stream("tcp:0:interface=127.0.0.1", serve, reactor=reactor)
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    client = await connect_stream(
        f"tcp:host={address.host}:port={address.port}", reactor=reactor
    )
    for message in (b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"):
        print(await call(client, message))
    await client.start_shutting_down()
    client.inactivate()
    stopped = port.stopListening()  # a Deferred, or None when done at once
    if stopped is not None:
        await stopped


if __name__ == "__main__":
    react(main)
