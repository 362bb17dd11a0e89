"""Sans-IO wire knowledge that the server and the client share: message framing, compression,
timeout headers, and what is particular to Connect and to gRPC / gRPC-Web on the wire.

Nothing here does I/O or knows ASGI; :mod:`connectpy._server` and :mod:`connectpy.client`
both build on it, so each fact about a protocol is written once.
"""
