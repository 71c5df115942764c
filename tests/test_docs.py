"""The README is a front door and the docs pages hold the rest: every generated block is what the
committed results render, the README stays short, and every link and picture resolves."""

import os
import re

import pytest

from scripts import render_docs
from tests.conftest import REPO

pytestmark = pytest.mark.quick
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_every_generated_block_is_rendered_from_the_committed_results():
    # Changing one figure in a results JSON (or typing one into a page) makes this fail.
    assert render_docs.history_missing() is None, render_docs.history_missing()  # else other figures, not stale ones
    assert render_docs.stale() == [], "run: python -m scripts.render_docs"


def test_every_page_has_each_of_its_blocks_once_and_each_block_has_a_renderer():
    seen = {}
    for page in render_docs.PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            text = f.read()
        for name in re.findall(r"<!-- ([a-z0-9-]+):begin -->", text):
            assert name in render_docs.BLOCKS, (page, name)
            assert text.count(f"<!-- {name}:end -->") == 1, (page, name)
            seen.setdefault(name, []).append(page)
    assert set(seen) == set(render_docs.BLOCKS), "a renderer no page uses"


def test_the_readme_is_a_front_door():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert len(text.splitlines()) <= 250
    for section in ("## Install", "## Train", "## Sample", "## Evaluate", "## Layout", "## Tests"):
        assert section in text, section
    assert "pytest -m quick" in text and 'pip install -e ".[test]" && pytest' in text


def heading_slugs(text: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_link_and_picture_resolves_and_the_pages_link_to_each_other():
    pages = [p for p in render_docs.PAGES if p.startswith("docs")]
    for page in render_docs.PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            text = f.read()
        targets = [m.group(1) for m in LINK.finditer(text) if not m.group(1).startswith("http")]
        for target in targets:
            path = os.path.normpath(os.path.join(REPO, os.path.dirname(page), target))
            assert os.path.exists(path), (page, target)
        for m in LINK.finditer(text):  # a link to a section names a heading of that page
            target, fragment = m.group(1), m.group(2)
            if fragment and target.endswith(".md") and not target.startswith("http"):
                with open(os.path.normpath(os.path.join(REPO, os.path.dirname(page), target)), encoding="utf-8") as f:
                    assert fragment[1:] in heading_slugs(f.read()), (page, target + fragment)
        linked = {os.path.normpath(os.path.join(os.path.dirname(page), t)) for t in targets}
        # The README links every page; every page links the README and every other page.
        others = set(pages) - {page}
        assert others <= linked, (page, sorted(others - linked))
        if page != "README.md":
            assert "README.md" in linked, page


# A code span that names a test: `test_x.py`, `test_x.py::test_y`, `test_y`, `test_y*` (a prefix).
TEST_NAME = re.compile(r"`(?:tests/)?(test_\w+?)(\.py)?(?:::(test_\w+?)(\*)?)?(\*)?`")
NOT_TESTS = {"test_batch": "CIFAR-10's own test file, in docs/data.md's table of on-disk formats"}


def test_every_test_the_pages_name_exists():
    in_module = {}  # module -> its test functions
    for name in os.listdir(os.path.join(REPO, "tests")):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(REPO, "tests", name), encoding="utf-8") as f:
                in_module[name[:-3]] = set(re.findall(r"^def (test_\w+)", f.read(), re.M))
    modules, defined = set(in_module), set().union(*in_module.values())
    named = []
    for page in render_docs.PAGES:
        with open(os.path.join(REPO, page), encoding="utf-8") as f:
            for m in TEST_NAME.finditer(f.read()):
                first, py, function, star, first_star = m.groups()
                if first in NOT_TESTS:
                    continue
                named.append(first)
                if function:  # module::function
                    assert first in modules, (page, m[0])
                    own = in_module[first]  # the function of that module, not of another
                    found = {t for t in own if t.startswith(function)} if star else {function} & own
                    assert found, (page, m[0])
                elif py or first in modules:
                    assert first in modules, (page, m[0])
                else:
                    found = {t for t in defined if t.startswith(first)} if first_star else {first} & defined
                    assert found, (page, m[0])
    assert len(named) > 10  # the pages name tests: this reads them


def test_rendering_needs_the_history_and_says_so_in_a_shallow_clone(tmp_path, monkeypatch, capsys):
    # The headline's spread and the H200 heading come from git's history: a shallow clone would
    # render other figures (and --check would call the pages out of date), so it is refused.
    import subprocess

    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(shallow)], check=True, timeout=120)
    assert render_docs.history_missing() is None  # this checkout
    monkeypatch.setattr(render_docs, "REPO", str(shallow))
    assert render_docs.main(["--check"]) == 2
    err = capsys.readouterr().err
    assert "shallow clone" in err and "git fetch --unshallow" in err and len(err.strip().splitlines()) == 1
