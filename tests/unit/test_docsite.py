"""The docs site's generated parts (docsite/): the nav, the API pages, the docstring roles.

`make docs` builds the whole site with warnings as errors; these pin what the hooks decide.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import griffe
import pytest
from mkdocs.structure.files import File, Files

import connectpy
from docsite import hooks
from docsite.griffe_roles import SphinxRoles

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api() -> griffe.Module:
    loaded = griffe.load(
        "connectpy", search_paths=[ROOT], extensions=griffe.load_extensions(SphinxRoles)
    )
    assert isinstance(loaded, griffe.Module)
    return loaded


def test_package_page_lists_all_of_the_public_api() -> None:
    uri, text = hooks.api_reference()[0]
    assert uri == "api/index.md"
    assert "::: connectpy\n" in text
    listed = [line.strip("- ") for line in text.splitlines() if line.startswith("        - ")]
    assert listed == connectpy.__all__


def test_module_pages_leave_out_what_the_package_documents() -> None:
    pages = dict(hooks.api_reference())
    assert "api/connectpy.code.md" not in pages  # Code is all it has, shown on the package page
    testing = pages["api/connectpy.testing.md"]
    assert "- RunningServer" in testing
    assert "- serve_in_thread" in testing
    app = pages["api/connectpy.app.md"]
    assert "- DEFAULT_READ_MAX_BYTES" in app
    assert "- ASGIApp" not in app


def test_nav_adds_unlisted_pages_then_the_api_reference() -> None:
    written = ["index.md", "getting-started.md", "zebra.md", "browsers.md"]
    files = Files([File(uri, "/docs", "/site", False) for uri in written])
    # Generated pages (src_dir None) are not read from docs/: they join the nav only as the API.
    files.append(File("source/examples/streaming.py.md", None, "/site", False))
    # A repository Markdown file shown under source/ is read from its place, yet is no page.
    files.append(File("source/benchmarks/results/x.md", "/repo", "/site", False))
    api = [File(uri, None, "/site", False) for uri in ["api/index.md", "api/connectpy.app.md"]]
    nav = hooks.site_nav(["index.md", "getting-started.md"], files, api)
    assert nav == [
        "index.md",
        "getting-started.md",
        "browsers.md",
        "zebra.md",
        {"API reference": [{"connectpy": "api/index.md"}, "api/connectpy.app.md"]},
    ]


def test_relative_links_between_generated_pages() -> None:
    target = PurePosixPath("source/examples/streaming.py.md")
    assert hooks._relative(target, PurePosixPath("")) == "source/examples/streaming.py.md"
    assert hooks._relative(target, PurePosixPath("source/benchmarks")) == (
        "../examples/streaming.py.md"
    )


def test_sphinx_roles_become_links_to_documented_objects(api: griffe.Module) -> None:
    health = api["app.ASGIApp.enable_health"].docstring
    assert health is not None
    assert "[`health`][connectpy.app.ASGIApp.health]" in health.value
    server = api["server.AsyncIOServer"].docstring
    assert server is not None
    # An import is followed to where the object is defined.
    assert "[`ASGIApp`][connectpy.app.ASGIApp]" in server.value
    assert "[`ASGIApp.enable_reflection`][connectpy.app.ASGIApp.enable_reflection]" in server.value
    # An undocumented attribute is not shown, so it is not linked.
    assert "(read it from `port` once started)" in server.value
    assert ":class:" not in server.value


def test_names_from_outside_connectpy_stay_code(api: griffe.Module) -> None:
    deadline = api["context.Context.deadline"].docstring
    assert deadline is not None
    assert "(`anyio.current_time`)" in deadline.value
