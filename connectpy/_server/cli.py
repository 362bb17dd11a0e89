"""The ``connectpy`` command: serve an app with Hypercorn, or export services' ``.proto`` files.

``connectpy serve module:attr`` runs any ASGI app (an :class:`~connectpy.ASGIApp`, FastAPI,
Starlette) with the Hypercorn settings connectpy needs: HTTP/1.1 and HTTP/2 (h2c, or ALPN
with TLS) and no per-connection request limit. ``--workers N`` runs N processes that share
the listening socket (Hypercorn's own multi-process mode; each imports the app).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from hypercorn.config import Config
from hypercorn.run import run
from hypercorn.utils import NoAppError, load_application

from .._model.proto_text import render_files
from .._model.schema import ProtoSchema
from .._model.service import ServiceInfo, inspect_service
from ..app import ASGIApp
from ..schema import generate_proto
from .hypercorn import TLSFiles, absorb_shutdown_noise, hypercorn_config

__all__ = ["main"]


class _CommandError(Exception):
    """A failure reported in one line, without a traceback, with this exit status."""

    status = 1


class _UsageError(_CommandError):
    """A problem with the command line."""

    status = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``connectpy`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except _CommandError as exc:
        print(f"connectpy: error: {exc}", file=sys.stderr)
        return exc.status
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connectpy", description="Serve Connect, gRPC and gRPC-Web apps; print .proto files."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve an ASGI app with Hypercorn")
    serve.add_argument("app", help="the app as module:attribute, e.g. myapp.main:app")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the socket (1: this one)"
    )
    serve.add_argument("--certfile", help="PEM certificate: serve HTTPS (h2 by ALPN)")
    serve.add_argument("--keyfile", help="PEM private key of --certfile")
    serve.add_argument("--ca-certs", help="PEM CA bundle: require client certificates (mTLS)")
    serve.add_argument(
        "--worker-class",
        choices=("asyncio", "uvloop", "trio"),
        default="asyncio",
        help="the event loop of each worker (asyncio)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=None,
        help="seconds calls in flight get to finish after SIGTERM (Hypercorn's default: 3)",
    )
    serve.add_argument("--access-log", action="store_true", help="log each request to stderr")
    serve.set_defaults(run=_serve)

    proto = commands.add_parser("proto", help="print or write the .proto files of services")
    proto.add_argument(
        "targets",
        nargs="+",
        metavar="target",
        help="module:attribute: a service class or instance, or an ASGIApp",
    )
    proto.add_argument("--package", help="the protobuf package (overrides the services')")
    proto.add_argument("--name", help="the service name (overrides the class name)")
    proto.add_argument(
        "--out", metavar="DIR", help="write the files under DIR instead of printing them"
    )
    proto.set_defaults(run=_proto)
    return parser


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise _UsageError("--workers must be at least 1")
    if bool(args.certfile) != bool(args.keyfile):
        raise _UsageError("--certfile and --keyfile go together")
    tls = TLSFiles(args.certfile, args.keyfile, args.ca_certs) if args.certfile else None
    try:  # fail here, once and readably, rather than in every worker
        load_application(args.app, 0)
    except NoAppError as exc:
        raise _UsageError(str(exc)) from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    config = hypercorn_config(bind=[f"{host}:{args.port}"], tls=tls, access_log=args.access_log)
    config.application_path = args.app
    config.worker_class = args.worker_class
    if args.graceful_timeout is not None:
        config.graceful_timeout = args.graceful_timeout
    # Hypercorn runs in this process with 0 workers; with N it spawns N and supervises them.
    config.workers = 0 if args.workers == 1 else args.workers
    _check_can_listen(config, args.host, args.port)
    # Covers this process's own worker (with N workers, each is a process of its own).
    with absorb_shutdown_noise() as shutdown:
        code = run(config)
    if shutdown.cut_off:
        sys.stderr.write(
            f"connectpy: calls still running after the {config.graceful_timeout:g} s graceful "
            "timeout were cut off (--graceful-timeout sets it)\n"
        )
        return 0
    return code


def _check_can_listen(config: Config, host: str, port: int) -> None:
    """Bind the sockets once, and let go: a busy port or a wrong address is one line here,
    where Hypercorn's own bind would print a traceback."""
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        raise _CommandError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()


def _load(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise _UsageError(f"{target!r} must be module:attribute")
    if os.getcwd() not in sys.path:  # like `python -m`: modules next to the user first
        sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _UsageError(f"cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise _UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    return found


def _proto(args: argparse.Namespace) -> int:
    found = [_load(target) for target in args.targets]
    if len(found) == 1 and not isinstance(found[0], ASGIApp) and args.out is None:
        service = _instance(found[0], args.targets[0])
        try:
            sys.stdout.write(generate_proto(service, package=args.package, name=args.name))
        except TypeError as exc:
            raise _UsageError(str(exc)) from None
        return 0
    if args.name is not None and (len(found) > 1 or isinstance(found[0], ASGIApp)):
        raise _UsageError("--name renames one service: give a single service target")
    files = _proto_files(found, args)
    if args.out is None:
        sys.stdout.write("\n".join(f"// File: {name}\n{text}" for name, text in files.items()))
        return 0
    for name, text in files.items():
        path = os.path.join(args.out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        print(path)
    return 0


def _instance(found: object, target: str) -> object:
    if not isinstance(found, type):
        return found
    try:
        return found()
    except Exception as exc:  # whatever its constructor raises: say so, briefly
        raise _UsageError(
            f"cannot instantiate {target} without arguments "
            f"({type(exc).__name__}); point at an instance instead"
        ) from None


def _proto_files(found: Sequence[object], args: argparse.Namespace) -> dict[str, str]:
    """The files of every target's services, one schema for all, so that shared types are
    defined once; an app's services keep the packages they were mounted with."""
    services: list[ServiceInfo] = []
    try:
        for target, item in zip(args.targets, found, strict=True):
            if isinstance(item, ASGIApp):
                services.extend(item.services)
            else:
                service = _instance(item, target)
                services.append(inspect_service(service, package=args.package, name=args.name))
        schema = ProtoSchema.for_services(services)
    except TypeError as exc:
        raise _UsageError(str(exc)) from None
    return render_files(schema.file_descriptors, services=services, docs=schema.docs)
