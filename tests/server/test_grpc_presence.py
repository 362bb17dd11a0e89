"""grpcio with classes protoc generated from the exported ``.proto``, over a real Hypercorn:
a field whose default is not the zero value is ``optional`` there, so the client can send
``false`` and ``0``, a field it leaves unset reaches the handler as the Pydantic default, and
a zero the handler sets reaches the client as set."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import grpc_tools
import pytest
from grpc_tools import protoc

from connectpy import ASGIApp, Message
from connectpy.schema import generate_proto
from connectpy.testing import serve_in_thread

pytestmark = pytest.mark.timeout(90)

PACKAGE = "presence.grpc.v1"
WELL_KNOWN = str(Path(grpc_tools.__file__).parent / "_proto")


class Knobs(Message):
    enabled: bool = True
    level: int = 7
    name: str = "default"
    quiet: bool = False


class Seen(Message):
    """What the handler got, and a reply with every knob at zero (`enabled` included)."""

    got: Knobs
    zeros: Knobs


class KnobService:
    async def set_knobs(self, request: Knobs) -> Seen:
        return Seen(got=request, zeros=Knobs(enabled=False, level=0, name=""))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, Any]]:
    out = tmp_path_factory.mktemp("presence_grpc")
    (out / "presence_grpc.proto").write_text(generate_proto(KnobService(), package=PACKAGE))
    args = [f"-I{out}", f"-I{WELL_KNOWN}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main(["protoc", *args, "presence_grpc.proto"]) == 0, "protoc: see stderr"
    sys.path.insert(0, str(out))
    try:
        import presence_grpc_pb2  # type: ignore[import-not-found]
        import presence_grpc_pb2_grpc  # type: ignore[import-not-found]

        yield presence_grpc_pb2, presence_grpc_pb2_grpc
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def stub(generated: tuple[ModuleType, Any]) -> Iterator[Any]:
    app = ASGIApp(package=PACKAGE)
    app.mount(KnobService())
    with (
        serve_in_thread(app) as running,
        grpc.insecure_channel(running.target, options=[("grpc.enable_http_proxy", 0)]) as ch,
    ):
        yield generated[1].KnobServiceStub(ch)


def test_unset_fields_reach_the_handler_as_their_defaults(
    stub: Any, generated: tuple[ModuleType, Any]
) -> None:
    pb2 = generated[0]
    seen = stub.SetKnobs(pb2.Knobs(), timeout=10)
    assert (seen.got.enabled, seen.got.level, seen.got.name) == (True, 7, "default")


def test_a_client_sends_false_and_zero(stub: Any, generated: tuple[ModuleType, Any]) -> None:
    pb2 = generated[0]
    seen = stub.SetKnobs(pb2.Knobs(enabled=False, level=0, name=""), timeout=10)
    assert (seen.got.enabled, seen.got.level, seen.got.name) == (False, 0, "")


def test_zeros_set_by_the_handler_arrive_as_set(
    stub: Any, generated: tuple[ModuleType, Any]
) -> None:
    pb2 = generated[0]
    zeros = stub.SetKnobs(pb2.Knobs(), timeout=10).zeros
    assert all(zeros.HasField(name) for name in ("enabled", "level", "name"))
    assert (zeros.enabled, zeros.level, zeros.name) == (False, 0, "")
