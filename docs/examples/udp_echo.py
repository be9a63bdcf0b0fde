"""
An echo server and a client over loopback UDP with rpctransport.

Run it with C{python docs/examples/udp_echo.py}.
"""

import socket

from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionClosed
from twisted.internet.task import react

from rpctransport import (
    ACCEPT,
    DROP,
    Accepted,
    SendFailed,
    connect_datagram,
    listen_datagram,
)


def before_record(size, sender):
    # A call starts with a 4-byte xid: anything shorter is not RPC.
    return ACCEPT if size >= 4 else DROP


def peer_error(error, address):
    # An ICMP error about an earlier reply, such as a client that went away
    # before its reply came: it concerns that client only, and never fails
    # the server's read.
    print("peer", address, "is gone:", error)


@inlineCallbacks
def echo(server):
    while True:
        try:
            record, sender = yield server.start_reading(before_record=before_record)
        except ConnectionClosed:
            return  # the socket is gone, or was shut down
        except Exception as error:
            # before_record raised on one datagram: the others are still served.
            print("read failed:", error)
            continue
        if isinstance(record, Accepted):
            try:
                yield server.start_writing(record.message, sender)
            except SendFailed as error:
                # The socket would not send this one reply (port 0, an
                # unreachable network): the other peers are still served.
                print("reply to", sender, "not sent:", error)


@inlineCallbacks
def main(reactor):
    server = listen_datagram(0, "127.0.0.1", reactor, on_peer_error=peer_error)
    echo(server)
    address = server.getsockname()
    client = connect_datagram(address.host, address.port, reactor)
    # A client that leaves before its reply: the reply bounces, and the
    # server goes on.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as careless:
        careless.sendto(b"\x00\x00\x00\x00gone", (address.host, address.port))
    replies = []
    for message in (b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"):
        reading = client.start_reading()
        reading.addTimeout(5, reactor)  # UDP may lose datagrams: never wait forever
        yield client.start_writing(message)
        record, sender = yield reading
        replies.append(record.message)
    yield server.start_shutting_down()  # ends echo(): its read fails with ConnectionDone
    for controller in (client, server):
        controller.inactivate()
        yield controller.when_closed()
    return replies


if __name__ == "__main__":
    react(lambda reactor: main(reactor).addCallback(print))
