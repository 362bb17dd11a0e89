"""MkDocs hooks of the docs site (mkdocs.yml): generated pages and a nav that needs no upkeep.

- The API reference: one page for the ``connectpy`` package (its ``__all__``) and one for each
  public submodule that has names of its own, generated from the docstrings by mkdocstrings.
- Repository files the pages link to (``../examples/streaming.py``) are outside ``docs/``, so a
  built site would have nowhere to send those links: each becomes a page under ``source/``
  showing the file, and the link points there. A link to a file that does not exist is left
  alone, so the strict build still fails on it.
- The nav: the reading order in mkdocs.yml, then every other page under ``docs/`` (a page added
  by a branch shows up without an edit to mkdocs.yml), then the API reference.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

PACKAGE = "connectpy"
API_DIR = "api"
SOURCE_DIR = "source"
# A Markdown link or image target: ](target) or ](target "title").
LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?P<rest>[^)]*)\)")
LANGUAGES = {".py": "python", ".proto": "proto", ".toml": "toml", ".yaml": "yaml", ".txt": "text"}

_hand_nav: list[Any] | None = None


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _hand_nav
    # `mkdocs serve` may hand the same config to every rebuild: keep the nav as written.
    if _hand_nav is None:
        _hand_nav = copy.deepcopy(config.nav or [])
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    api_pages = [_add(files, config, uri, text) for uri, text in api_reference()]
    for uri, shown in source_pages(files, config):
        if isinstance(shown, Path):  # a Markdown file of the repository, rendered as it is
            files.append(File.generated(config, uri, abs_src_path=str(shown)))
        else:
            _add(files, config, uri, shown)
    config.nav = site_nav(_hand_nav or [], files, api_pages)
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Points links to repository files at their pages under ``source/``."""
    return LINK.sub(lambda link: _source_link(link, page.file, config), markdown)


# --- the API reference ---------------------------------------------------------------------


def api_reference() -> list[tuple[str, str]]:
    """(uri, Markdown) of each API page: the package, then its public submodules."""
    package = importlib.import_module(PACKAGE)
    pages = [(f"{API_DIR}/index.md", _api_page(PACKAGE, "API reference", package.__all__))]
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        name = f"{PACKAGE}.{module_info.name}"
        module = importlib.import_module(name)
        # What the package re-exports is documented once, on the package's page.
        own = [
            member
            for member in getattr(module, "__all__", [])
            if getattr(package, member, None) is not getattr(module, member)
        ]
        if own:
            pages.append((f"{API_DIR}/{name}.md", _api_page(name, f"`{name}`", own)))
    return pages


def _api_page(module: str, title: str, members: list[str]) -> str:
    listed = "".join(f"\n        - {member}" for member in members)
    return (
        f"# {title}\n\n::: {module}\n    options:\n      show_root_heading: false\n"
        f"      members:{listed}\n"
    )


# --- repository files the pages link to ----------------------------------------------------


def source_pages(files: Files, config: MkDocsConfig) -> list[tuple[str, str | Path]]:
    """(uri, Markdown or a Markdown file) of a page for each repository file or folder that a
    page links to."""
    root = _repo_root(config)
    pages: dict[str, str | Path] = {}
    paths = [Path(file.abs_src_path) for file in _markdown(files) if file.abs_src_path]
    texts = [path.read_text() for path in paths]
    sources = [path.parent for path in paths]
    while texts:  # a linked Markdown file is shown as a page, and may link further
        text, folder = texts.pop(), sources.pop()
        for link in LINK.finditer(text):
            target = _outside_docs(folder / link["target"], config)
            if target is None or _source_uri(target, root) in pages:
                continue
            pages[_source_uri(target, root)] = _source_page(target, root)
            if target.suffix == ".md":
                texts.append(target.read_text())
                sources.append(target.parent)
    return sorted(pages.items())


def _source_page(path: Path, root: Path) -> str | Path:
    relative = path.relative_to(root).as_posix()
    if path.is_dir():
        listing = "".join(f"- `{name}`\n" for name in _tracked_files(path, root))
        return f"# `{relative}/`\n\nThe files of the folder in the repository:\n\n{listing}"
    if path.suffix == ".md":
        return path
    language = LANGUAGES.get(path.suffix, "text")
    return f"# `{relative}`\n\n```{language}\n{path.read_text().rstrip()}\n```\n"


def _tracked_files(folder: Path, root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", str(folder)], cwd=root, capture_output=True, text=True
    )
    if listed.returncode == 0 and listed.stdout:
        return [
            str(PurePosixPath(line).relative_to(folder.relative_to(root).as_posix()))
            for line in listed.stdout.splitlines()
        ]
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _source_link(link: re.Match[str], page_file: File, config: MkDocsConfig) -> str:
    if page_file.abs_src_path is None:
        return link[0]
    target = _outside_docs(Path(page_file.abs_src_path).parent / link["target"], config)
    if target is None:
        return link[0]
    uri = _source_uri(target, _repo_root(config))
    relative = _relative(PurePosixPath(uri), PurePosixPath(page_file.src_uri).parent)
    return f"]({relative}{link['rest']})"


def _outside_docs(path: Path, config: MkDocsConfig) -> Path | None:
    """The existing repository file or folder ``path`` names, if it is not under docs/."""
    if "://" in str(path) or str(path).startswith("mailto:"):
        return None
    resolved = path.resolve()
    root = _repo_root(config)
    if not resolved.exists() or not resolved.is_relative_to(root):
        return None
    if resolved.is_relative_to(Path(config.docs_dir).resolve()):
        return None
    return resolved


def _source_uri(path: Path, root: Path) -> str:
    relative = path.relative_to(root).as_posix()
    if path.is_dir():
        return f"{SOURCE_DIR}/{relative}/index.md"
    return f"{SOURCE_DIR}/{relative}.md" if path.suffix != ".md" else f"{SOURCE_DIR}/{relative}"


def _relative(uri: PurePosixPath, here: PurePosixPath) -> str:
    ups = [part for part in here.parts if part]
    common = 0
    while common < min(len(ups), len(uri.parts) - 1) and ups[common] == uri.parts[common]:
        common += 1
    return "/".join([".."] * (len(ups) - common) + list(uri.parts[common:]))


def _repo_root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


# --- the nav -------------------------------------------------------------------------------


def site_nav(hand_nav: list[Any], files: Files, api_pages: list[File]) -> list[Any]:
    listed = set(_nav_uris(hand_nav))
    others = sorted(
        file.src_uri
        for file in _markdown(files)
        if file.src_uri not in listed
        and not file.src_uri.startswith((f"{API_DIR}/", f"{SOURCE_DIR}/"))
    )
    package_page, *module_pages = (page.src_uri for page in api_pages)
    api = [{PACKAGE: package_page}, *module_pages]
    return [*copy.deepcopy(hand_nav), *others, {"API reference": api}]


def _nav_uris(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [uri for value in nav.values() for uri in _nav_uris(value)]
    if isinstance(nav, list):
        return [uri for item in nav for uri in _nav_uris(item)]
    return []


def _markdown(files: Files) -> list[File]:
    return [file for file in files if file.src_uri.endswith(".md") and file.abs_src_path]


def _add(files: Files, config: MkDocsConfig, uri: str, text: str) -> File:
    file = File.generated(config, uri, content=text)
    files.append(file)
    return file
