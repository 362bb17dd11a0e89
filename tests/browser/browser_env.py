"""What the browser tier needs and builds: Chromium, the Node project, the page's bundle.

``tests/browser/run_browser.py`` installs Chromium (Debian's ``chromium``) and the Node project
(``npm ci`` in ``node/``: connect-web, protoc-gen-es, esbuild, puppeteer-core); the test then
generates connect-es code from ``connectpy proto``'s output for the example's service,
bundles ``node/page.js`` with it, and drives Chromium with ``node/drive.js``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools
from node_project import NodeProject

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_DIR = HERE / "node"
NODE_PROJECT = NodeProject(NODE_DIR)
BIN = NODE_PROJECT.bin
PAGE_JS = NODE_DIR / "page.js"
DRIVE_JS = NODE_DIR / "drive.js"
GEN_DIR = NODE_DIR / "gen"
"""Generated code, inside the Node project so that its imports resolve to ``node_modules``.
Git-ignored."""

SERVICE_TARGET = "examples.browser_cors:GreetService"
PACKAGE = "greet.v1"
PROTO_FILE = "greet/v1/greet.proto"
WELL_KNOWN = Path(grpc_tools.__file__).resolve().parent / "_proto"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if find_chromium() is None:
        return "chromium not found on PATH: run `make browser-prepare` (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node not found on PATH: install Node.js >= 20 and npm"
    if not NODE_PROJECT.is_installed() or not (BIN / "esbuild").is_file():
        return "the Node project is not installed (or is stale): run `make browser-prepare`"
    return None


def _run(argv: list[str], what: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def build_page(work: Path) -> Path:
    """``page.js`` bundled with connect-es code for the greet service, as ``work/page.js``.

    The ``.proto`` file is ``connectpy proto``'s, generated with protoc-gen-es into a fresh
    directory under ``GEN_DIR``; the caller removes ``work``.
    """
    proto_root = work / "proto"
    (proto_root / PROTO_FILE).parent.mkdir(parents=True)
    proto = [sys.executable, "-m", "connectpy", "proto", SERVICE_TARGET, "--package", PACKAGE]
    (proto_root / PROTO_FILE).write_text(_run(proto, "connectpy proto"))
    GEN_DIR.mkdir(exist_ok=True)
    gen = GEN_DIR / work.name
    gen.mkdir()
    try:
        protoc = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"-I{WELL_KNOWN}"]
        protoc += [f"--plugin=protoc-gen-es={BIN / 'protoc-gen-es'}", f"--es_out={gen}"]
        protoc += ["--es_opt=target=js,import_extension=js", PROTO_FILE]
        _run(protoc, "protoc-gen-es")
        module = gen / PROTO_FILE.replace(".proto", "_pb.js")
        bundle = work / "page.js"
        esbuild = [str(BIN / "esbuild"), str(PAGE_JS), "--bundle", "--format=esm"]
        esbuild += [f"--alias:greet-gen=./{module.relative_to(NODE_DIR)}", f"--outfile={bundle}"]
        _run(esbuild, "esbuild", cwd=NODE_DIR)
    finally:
        shutil.rmtree(gen)
    return bundle
