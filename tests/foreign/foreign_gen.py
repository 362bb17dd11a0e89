"""Client code for the every-type service, generated at test time from ``connectpy proto``.

The ``.proto`` file is what the command prints for :mod:`every_type`, so the clients are built
from exactly what connectpy tells client authors. protoc is grpcio-tools' (``python -m
grpc_tools.protoc``); connect-es code comes from the ``protoc-gen-es`` plugin that
``npm ci`` installs into ``node/node_modules`` (``tests/foreign/run.py`` runs it).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import grpc_tools
from every_type import PACKAGE
from node_project import NodeProject

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_DIR = HERE / "node"
NODE_PROJECT = NodeProject(NODE_DIR)
PROTOC_GEN_ES = NODE_PROJECT.bin / "protoc-gen-es"
CLIENT_JS = NODE_DIR / "client.js"
GEN_DIR = NODE_DIR / "gen"
"""Where generated connect-es code goes: inside the Node project, so that its imports of
``@bufbuild/protobuf`` resolve to ``node_modules``. Git-ignored."""

SERVICE_TARGET = "tests.foreign.every_type:EveryTypeService"
PROTO_FILE = "everytype/v1/everytype.proto"
WELL_KNOWN = Path(grpc_tools.__file__).resolve().parent / "_proto"


def node_missing() -> str | None:
    """Why the connect-es clients cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node not found on PATH: install Node.js >= 20 and npm"
    if not NODE_PROJECT.is_installed() or not PROTOC_GEN_ES.is_file():
        return "the connect-es clients are not installed (or are stale): run `make foreign`"
    return None


def write_proto(proto_root: Path) -> Path:
    """``connectpy proto``'s output for the service, as ``PROTO_FILE`` under ``proto_root``."""
    proc = subprocess.run(
        [sys.executable, "-m", "connectpy", "proto", SERVICE_TARGET, "--package", PACKAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    path = proto_root / PROTO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(proc.stdout)
    return path


def _protoc(proto_root: Path, *options: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{WELL_KNOWN}",
            *options,
            PROTO_FILE,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"protoc {' '.join(options)} failed:\n{proc.stderr}")


def generate_es(proto_root: Path, out: Path) -> Path:
    """connect-es (protoc-gen-es v2) code for the file; returns the module to import."""
    _protoc(
        proto_root,
        f"--plugin=protoc-gen-es={PROTOC_GEN_ES}",
        f"--es_out={out}",
        "--es_opt=target=js,import_extension=js",
    )
    return out / PROTO_FILE.replace(".proto", "_pb.js")


def generate_python(proto_root: Path, out: Path) -> tuple[ModuleType, ModuleType]:
    """grpcio stubs for the file, imported; the caller removes ``out`` from ``sys.path``."""
    _protoc(proto_root, f"--python_out={out}", f"--grpc_python_out={out}")
    sys.path.insert(0, str(out))
    module = PROTO_FILE.removesuffix(".proto").replace("/", ".")
    return importlib.import_module(f"{module}_pb2"), importlib.import_module(f"{module}_pb2_grpc")
