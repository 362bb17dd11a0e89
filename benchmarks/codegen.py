"""Generate the peers' protobuf code into ``build/bench/gen`` with grpcio-tools' protoc:
``book_pb2`` (messages), ``book_pb2_grpc`` (grpcio) and ``book_connect`` (connect-python, via
its ``protoc-gen-connect-python`` plugin, installed next to the bench venv's Python); and, when
the second venv (``benchmarks/.venv-connectrpc``) is there, connectrpc 0.13's code as two
packages: ``connectrpc13`` (protobuf-py messages, its default) and ``connectrpc13_google``
(``protobuf=google``: Google's ``book_pb2``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .common import GEN_DIR, REPO

__all__ = ["generate"]

PROTO = REPO / "benchmarks" / "proto" / "book.proto"
CONNECTRPC_VENV = REPO / "benchmarks" / ".venv-connectrpc"


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
    return out


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
