"""Generate the peers' protobuf code into ``build/bench/gen`` with grpcio-tools' protoc:
``book_pb2`` (messages), ``book_pb2_grpc`` (grpcio) and ``book_connect`` (connect-python, via
its ``protoc-gen-connect-python`` plugin, installed next to the bench venv's Python)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .common import GEN_DIR, REPO

__all__ = ["generate"]

PROTO = REPO / "benchmarks" / "proto" / "book.proto"


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
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return out


if __name__ == "__main__":
    print(generate())
