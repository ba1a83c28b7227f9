"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`), applied at every build.

Code pointers. A page names code as `path.py:symbol` in backticks (`sac/losses.py:td_target`,
`sac/agent.py:SACAgent.update`); the build writes it as `path.py:<line>` (symbol), the line read from
the file at build time with `ast`, so a pointer follows the code when it moves and a symbol that no
longer exists fails the build (and tests/test_docs.py, which checks every page without MkDocs).

Repository files. Pages link files outside docs/ as they are in the repository
(`../results/overview.png`, `../benchmarks/REFERENCE.md`), so the links work on a code host too. The
build copies each such file into the site under repo/ (Markdown ones become pages, whose own links are
followed the same way) and points the link there, so the site needs nothing outside itself.
"""
from __future__ import annotations

import ast
import logging
import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = "docs"
REPO_PREFIX = "repo"  # where repository files linked from pages go in the site

POINTER = re.compile(r"`((?:sac|benchmarks|tests|scripts)/[\w/]+\.py|tests\.py):([A-Za-z_][\w.]*)`")
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\s+\"[^\"]*\")?(\))")  # inline links and images
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

log = logging.getLogger("mkdocs.hooks.sac")


def _name(node: ast.AST) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def resolve(path: str, symbol: str) -> int:
    """The line where `symbol` (a top-level name, or Class.method) is defined in the repository file
    `path`; LookupError if there is no such file or name."""
    source = ROOT / path
    if not source.is_file():
        raise LookupError(f"no file {path}")
    nodes = ast.parse(source.read_text()).body
    node = None
    for part in symbol.split("."):
        node = next((n for n in nodes if _name(n) == part), None)
        if node is None:
            raise LookupError(f"{path} defines no {symbol}")
        nodes = getattr(node, "body", [])
    return node.lineno


def pointers(markdown: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in POINTER.finditer(markdown)]


def render_pointers(markdown: str, where: str) -> str:
    def replace(match: re.Match) -> str:
        path, symbol = match.group(1), match.group(2)
        try:
            line = resolve(path, symbol)
        except LookupError as exc:
            raise SystemExit(f"{where}: code pointer `{path}:{symbol}`: {exc}") from None
        return f"`{path}:{line}` (`{symbol}`)"

    return POINTER.sub(replace, markdown)


def _repo_path(src_uri: str) -> str:
    """The repository path of a site file."""
    if src_uri.startswith(REPO_PREFIX + "/"):
        return src_uri[len(REPO_PREFIX) + 1:]
    return f"{DOCS_DIR}/{src_uri}"


def _site_uri(repo_path: str) -> str:
    if repo_path.startswith(DOCS_DIR + "/"):
        return repo_path[len(DOCS_DIR) + 1:]
    return f"{REPO_PREFIX}/{repo_path}"


def _targets(markdown: str, repo_path: str) -> list[str]:
    """The repository paths, outside docs/, of the files a page links to."""
    found = []
    for match in LINK.finditer(markdown):
        target = match.group(2)
        if _SCHEME.match(target) or target.startswith("/"):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), target))
        if not path.startswith((DOCS_DIR + "/", "../")) and (ROOT / path).is_file():
            found.append(path)
    return found


def on_files(files, config):
    from mkdocs.structure.files import File

    todo = [f for f in files.documentation_pages()]
    added: set[str] = set()
    while todo:
        page = todo.pop()
        markdown = Path(page.abs_src_path).read_text()
        for path in _targets(markdown, _repo_path(page.src_uri)):
            if path in added:
                continue
            added.add(path)
            new = File.generated(config, _site_uri(path), abs_src_path=str(ROOT / path))
            files.append(new)
            if path.endswith(".md"):
                todo.append(new)
    return files


def on_page_markdown(markdown, page, config, files):
    repo_path = _repo_path(page.file.src_uri)

    def relink(match: re.Match) -> str:
        target = match.group(2)
        if _SCHEME.match(target) or target.startswith("/"):
            return match.group(0)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), target))
        if not (ROOT / path).is_file() or (path.startswith(DOCS_DIR + "/") and repo_path.startswith(DOCS_DIR + "/")):
            return match.group(0)  # a page of docs/ linked from docs/ (MkDocs checks it), or a missing file
        uri = posixpath.relpath(_site_uri(path), posixpath.dirname(page.file.src_uri) or ".")
        return f"{match.group(1)}{uri}{match.group(3) or ''}{match.group(4) or ''}{match.group(5)}"

    if page.file.src_uri.startswith(REPO_PREFIX + "/"):
        markdown = LINK.sub(relink, markdown)
        return markdown
    return render_pointers(LINK.sub(relink, markdown), page.file.src_uri)
