"""
An echo server on the stream of records (``receive_records`` and
``send_record``), and a client that pipelines its messages the same way.

Run it with C{python docs/examples/streaming_echo.py}.
"""

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import react
from zope.interface import implementer

from rpctransport import IRecordReceiver, REJECT, ACCEPT, connect_stream, listen_stream

LIMIT = 1024 * 1024


def before_record(size_so_far, peer):
    # Decide on the header, before a byte of the record is buffered.
    return REJECT if size_so_far > LIMIT else ACCEPT


@implementer(IRecordReceiver)
class Echo:
    def __init__(self, controller):
        self.controller = controller
        stream = controller.receive_records(self, before_record)
        # Take no more calls while the replies cannot go out.
        controller.register_producer(stream)

    def record_received(self, message, peer):
        self.controller.send_record(message)

    def record_refused(self, record, peer):
        pass  # rejected on its size: only its xid was kept

    def receiving_ended(self, reason):
        self.controller.inactivate()


@implementer(IRecordReceiver)
class Collect:
    def __init__(self, expected):
        self.expected = expected
        self.replies = []
        self.done = Deferred()

    def record_received(self, message, peer):
        self.replies.append(message)
        if len(self.replies) == self.expected:
            self.done.callback(self.replies)

    def record_refused(self, record, peer):
        pass

    def receiving_ended(self, reason):
        if not self.done.called:
            self.done.errback(reason if not reason.check(ConnectionDone) else Exception("closed"))


@inlineCallbacks
def main(reactor):
    port = yield listen_stream("tcp:0:interface=127.0.0.1", Echo, reactor=reactor)
    address = port.getHost()
    client = yield connect_stream(f"tcp:host={address.host}:port={address.port}", reactor=reactor)
    messages = [b"\x00\x00\x00\x01hello", b"\x00\x00\x00\x02world"]
    collect = Collect(len(messages))
    client.receive_records(collect)
    client.send_records(messages)  # one writeSequence for both
    replies = yield collect.done
    yield client.start_shutting_down()
    client.inactivate()
    yield port.stopListening()
    return replies


if __name__ == "__main__":
    react(lambda reactor: main(reactor).addCallback(print))
