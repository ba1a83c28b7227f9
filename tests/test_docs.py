"""The documentation cannot drift from the code: generated pages are fresh, code pointers name symbols
that exist, statements checked against the code's own lists, and the site builds in strict mode."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sac.changeable import CHANGEABLE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_generated_pages_are_fresh():
    gen_docs = _script("gen_docs")
    stale = gen_docs.stale_pages()
    assert not stale, "; ".join(f"{name} is stale: run `{gen_docs.COMMAND}`" for name in stale)


def test_code_pointers_name_existing_symbols():
    hooks = _script("docs_hooks")
    found, broken = 0, []
    for page in _pages():
        for path, symbol in hooks.pointers(page.read_text()):
            found += 1
            try:
                hooks.resolve(path, symbol)
            except LookupError as exc:
                broken.append(f"{page.relative_to(REPO)}: `{path}:{symbol}`: {exc}")
    assert found > 20, "the algorithm page should point at the code"
    assert not broken, "code pointers to nothing (fix the page): " + "; ".join(broken)


def test_pointer_gives_the_line_of_the_definition():
    hooks = _script("docs_hooks")
    line = hooks.resolve("sac/losses.py", "td_target")
    assert (REPO / "sac/losses.py").read_text().splitlines()[line - 1].startswith("def td_target(")
    with pytest.raises(LookupError):
        hooks.resolve("sac/losses.py", "no_such_function")


def test_resume_page_lists_exactly_the_changeable_entries():
    text = (DOCS / "resume.md").read_text()
    match = re.search(r"Only the entries of\s+`sac/changeable\.py:CHANGEABLE`(.*?)Any other entry", text, re.S)
    assert match, "docs/resume.md must say which entries a resume may change (sac/changeable.py CHANGEABLE)"
    named = re.findall(r"`(\w+)`", match.group(1))
    assert sorted(named) == sorted(CHANGEABLE), f"docs/resume.md names {named}; sac/changeable.py has {CHANGEABLE}"


def test_readme_links_exist():
    text = (REPO / "README.md").read_text()
    missing = [target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
               if not re.match(r"[a-z]+:", target) and not (REPO / target).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                             str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
    assert (tmp_path / "site" / "search" / "search_index.json").is_file()
