"""Generate the peers' protobuf code into ``build/bench/gen`` with grpcio-tools' protoc:
``book_pb2`` (messages), ``book_pb2_grpc`` (grpcio) and ``book_connect`` (connect-python, via
its ``protoc-gen-connect-python`` plugin, installed next to the bench venv's Python); and, when
the second venv (``benchmarks/.venv-connectrpc``) is there, connectrpc 0.13's code as two
packages: ``connectrpc13`` (protobuf-py messages, its default) and ``connectrpc13_google``
(``protobuf=google``: Google's ``book_pb2``). With Go on the PATH it also builds the connect-go
ceiling server (``benchmarks/peers/connectgo``) in a copy under ``build/bench/connectgo``: its
protoc plugins come from the Go module proxy at the versions pinned here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import GEN_DIR, REPO

__all__ = ["CONNECT_GO_BINARY", "CONNECT_GO_VERSION", "generate", "go_version"]

PROTO = REPO / "benchmarks" / "proto" / "book.proto"
CONNECTRPC_VENV = REPO / "benchmarks" / ".venv-connectrpc"
CONNECT_GO_SOURCE = REPO / "benchmarks" / "peers" / "connectgo"
CONNECT_GO_BUILD = GEN_DIR.parent / "connectgo"
CONNECT_GO_BINARY = CONNECT_GO_BUILD / "server"
CONNECT_GO_VERSION = "v1.19.1"  # as in benchmarks/peers/connectgo/go.mod
_GO_PLUGINS = (
    "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12",
    f"connectrpc.com/connect/cmd/protoc-gen-connect-go@{CONNECT_GO_VERSION}",
)
_GO_MODULE = "connectpy-bench/connectgo"


def generate(out: Path = GEN_DIR) -> Path:
    """Run protoc once; returns ``out``. Raises RuntimeError when protoc fails."""
    from grpc_tools import protoc

    plugin = Path(sys.executable).parent / "protoc-gen-connect-python"
    if not plugin.exists():
        found = shutil.which("protoc-gen-connect-python")
        if found is None:
            raise RuntimeError("protoc-gen-connect-python is not installed (make bench does it)")
        plugin = Path(found)
    out.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO.parent}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-connect-python={plugin}",
        f"--connect-python_out={out}",
        str(PROTO),
    ]
    _protoc(args)
    if (CONNECTRPC_VENV / "bin" / "protoc-gen-connectrpc").exists():
        _generate_connectrpc13(out, include)
    if shutil.which("go") is not None:
        _build_connect_go(include)
    return out


def go_version() -> str:
    """The Go toolchain's version (``1.26.8``), or ``not installed``."""
    if shutil.which("go") is None:
        return "not installed"
    found = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True)
    return found.stdout.strip().removeprefix("go") or "unknown"


def _build_connect_go(include: str) -> None:
    """Generate the Go code and build the connect-go server (a few seconds once cached)."""
    bin_dir = CONNECT_GO_BUILD / "bin"
    env = {**os.environ, "GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod"}
    for plugin in _GO_PLUGINS:
        name = plugin.split("@")[0].rsplit("/", 1)[1]
        if not (bin_dir / name).exists():
            subprocess.run(["go", "install", plugin], env=env, check=True)
    CONNECT_GO_BUILD.mkdir(parents=True, exist_ok=True)
    for name in ("main.go", "go.mod", "go.sum"):
        shutil.copy(CONNECT_GO_SOURCE / name, CONNECT_GO_BUILD / name)
    mapping = f"Mbook.proto={_GO_MODULE}/gen/benchv1"
    _protoc(
        ["protoc", f"-I{PROTO.parent}", f"-I{include}",
         f"--plugin=protoc-gen-go={bin_dir / 'protoc-gen-go'}",
         f"--plugin=protoc-gen-connect-go={bin_dir / 'protoc-gen-connect-go'}",
         f"--go_out={CONNECT_GO_BUILD}", f"--go_opt=module={_GO_MODULE}", f"--go_opt={mapping}",
         f"--connect-go_out={CONNECT_GO_BUILD}", f"--connect-go_opt=module={_GO_MODULE}",
         f"--connect-go_opt={mapping}", str(PROTO)]
    )  # fmt: skip
    subprocess.run(
        ["go", "build", "-o", str(CONNECT_GO_BINARY), "."],
        cwd=CONNECT_GO_BUILD, env={**os.environ, "GOFLAGS": "-mod=mod"}, check=True,
    )  # fmt: skip


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")


def _generate_connectrpc13(out: Path, include: str) -> None:
    """connectrpc 0.13's generated code imports its messages relatively: one package each."""
    bin_dir = CONNECTRPC_VENV / "bin"
    plugins = [
        f"--plugin=protoc-gen-connectrpc={bin_dir / 'protoc-gen-connectrpc'}",
        f"--plugin=protoc-gen-py={bin_dir / 'protoc-gen-py'}",
    ]
    for package, messages, options in (
        ("connectrpc13", "--py_out", []),
        ("connectrpc13_google", "--python_out", ["--connectrpc_opt=protobuf=google"]),
    ):
        target = out / package
        target.mkdir(parents=True, exist_ok=True)
        (target / "__init__.py").write_text("")
        _protoc(
            ["protoc", f"-I{PROTO.parent}", f"-I{include}", *plugins, f"{messages}={target}",
             f"--connectrpc_out={target}", *options, str(PROTO)]
        )  # fmt: skip


if __name__ == "__main__":
    print(generate())
