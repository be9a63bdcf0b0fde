"""
An echo server and a client over loopback TCP with rpctransport.

Run it with C{python docs/examples/stream_echo.py}.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react

from rpctransport import ACCEPT, DENY, END_OF_FILE, Accepted, connect_stream, listen_stream

LIMIT = 1024 * 1024


def before_record(size_so_far, peer):
    # Decide on the header, before a byte of the record is buffered.
    return DENY if size_so_far > LIMIT else ACCEPT


@inlineCallbacks
def echo(controller):
    try:
        while True:
            result = yield controller.start_reading(before_record=before_record)
            if result is END_OF_FILE:
                break
            record, peer = result
            if not isinstance(record, Accepted):
                break  # denied: too large
            yield controller.start_writing(record.message)
    finally:
        controller.inactivate()


@inlineCallbacks
def main(reactor):
    port = yield listen_stream("tcp:0:interface=127.0.0.1", echo, reactor=reactor)
    address = port.getHost()
    client = yield connect_stream(
        f"tcp:host={address.host}:port={address.port}", reactor=reactor
    )
    replies = []
    for message in (b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"):
        reading = client.start_reading()
        yield client.start_writing(message)
        record, peer = yield reading
        replies.append(record.message)
    yield client.start_shutting_down()
    client.inactivate()
    yield port.stopListening()
    return replies


if __name__ == "__main__":
    react(lambda reactor: main(reactor).addCallback(print))
