"""A key-value RPC program: server and client in one process, XDR by xdrlib3."""
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react
from xdrlib3 import Packer, Unpacker

from rpctransport import GarbageArguments, RpcServer, connect_rpc_client, listen_stream

KV_PROGRAM, KV_VERSION, PUT, GET = 0x20000123, 1, 1, 2


def decode(arguments, *read):
    unpacker = Unpacker(arguments)
    try:
        values = [getattr(unpacker, f"unpack_{kind}")() for kind in read]
        unpacker.done()
    except Exception as e:  # xdrlib3 raises several kinds on bad input
        raise GarbageArguments(str(e))
    return values


def encode(*values):
    packer = Packer()
    for kind, value in values:
        getattr(packer, f"pack_{kind}")(value)
    return packer.get_buffer()


def make_server(store):
    def put(arguments, call):  # PUT(string key, opaque value) -> void
        key, value = decode(arguments, "string", "opaque")
        store[key] = value

    def get(arguments, call):  # GET(string key) -> (bool found, opaque value)
        (key,) = decode(arguments, "string")
        return encode(("bool", key in store), ("opaque", store.get(key, b"")))

    server = RpcServer()
    server.add_program(KV_PROGRAM, KV_VERSION, {PUT: put, GET: get})
    return server


async def main(reactor):
    server = make_server({})
    port = await listen_stream("tcp:0:interface=127.0.0.1", server.serve, reactor=reactor)
    address = f"tcp:host=127.0.0.1:port={port.getHost().port}"
    client = await connect_rpc_client(address, reactor=reactor)
    pair = encode(("string", b"colour"), ("opaque", b"blue"))
    await client.call(KV_PROGRAM, KV_VERSION, PUT, pair)
    for key in (b"colour", b"size"):
        reply = await client.call(KV_PROGRAM, KV_VERSION, GET, encode(("string", key)))
        found, value = decode(reply, "bool", "opaque")
        print(key.decode(), "->", value.decode() if found else "(not found)")
    await client.close()
    server.stop()
    await port.stopListening()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor)))
