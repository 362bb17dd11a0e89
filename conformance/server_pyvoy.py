"""The server under test on pyvoy (Envoy, with the app in an embedded Python) instead of
Hypercorn, for ``make conformance-pyvoy``: ``server.py`` serves through this module when
``CONFORMANCE_ON=pyvoy``. Envoy listens itself; the runner is told its port."""

from __future__ import annotations

import signal
import sys

import anyio
from connectrpc.conformance.v1 import server_compat_pb2
from pyvoy import PyvoyServer

from conformance.pyvoy_app import READ_MAX_BYTES_ENV
from conformance.server import HOST, write_delimited


def pyvoy_server(request: server_compat_pb2.ServerCompatRequest) -> PyvoyServer:
    tls = request.use_tls
    client_ca = request.client_tls_cert if tls else b""
    return PyvoyServer(
        "conformance.pyvoy_app:app",
        address=HOST,
        port=0,  # with a key and certificate: the TLS port
        tls_key=request.server_creds.key if tls else None,
        tls_cert=request.server_creds.cert if tls else None,
        tls_ca_cert=client_ca or None,
        tls_require_client_certificate=bool(client_ca),
        tls_enable_http3=False,
        env={READ_MAX_BYTES_ENV: str(request.message_receive_limit)},
        stdout=sys.stderr.fileno(),
        stderr=sys.stderr.fileno(),
        log_level="error",
    )


async def serve(request: server_compat_pb2.ServerCompatRequest) -> None:
    async with pyvoy_server(request) as server:
        response = server_compat_pb2.ServerCompatResponse(
            host=HOST,
            port=server.listener_port,
            pem_cert=request.server_creds.cert if request.use_tls else b"",
        )
        write_delimited(sys.stdout.buffer, response.SerializeToString())
        sys.stdout = sys.stderr  # the runner never reads stdout again
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return
