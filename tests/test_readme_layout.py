"""The README's folder picture is the tree: every folder it names exists, and every package is named."""

from __future__ import annotations

import re

from repo_paths import REPO_ROOT

SOURCE_ROOTS = ("contract", "pipeline_code", "stacks", "dogbreeds")


def layout_block(readme: str) -> str:
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def folders_in(block: str) -> set[str]:
    """Each ``name/`` at the start of a line, joined to its parents by two-space indentation."""
    stack: list[str] = []
    folders = set()
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+/)\s", line + " ")
        if not match:
            continue
        depth = len(match.group(1)) // 2
        stack = stack[:depth] + [match.group(2).rstrip("/")]
        folders.add("/".join(stack))
    return folders


def packages() -> set[str]:
    """Every folder of the source roots holding Python, except third-party code and code folders
    of a Lambda (named by their function's folder)."""
    found = set()
    for root in SOURCE_ROOTS:
        for path in (REPO_ROOT / root).rglob("*.py"):
            folder = path.parent.relative_to(REPO_ROOT)
            if "__pycache__" in folder.parts or "vendor" in folder.parts[:-1]:
                continue
            if folder.name in ("code", "import_guard_site"):
                folder = folder.parent
            found.add(folder.as_posix())
    return found


def test_the_layout_picture_names_existing_folders_and_every_package():
    folders = folders_in(layout_block((REPO_ROOT / "README.md").read_text()))
    assert {
        "contract",
        "stacks/functions/deploy_endpoint",
        "pipeline_code/container/dogbreeds_jobs",
    } <= folders
    assert sorted(f for f in folders if not (REPO_ROOT / f).is_dir()) == []
    assert sorted(packages() - folders) == []


def test_the_picture_reader_follows_indentation():
    block = "a/    x\n  b/  y\n    c/  z\n  d/\nfile.py  no\ne/\n"
    assert folders_in(block) == {"a", "a/b", "a/b/c", "a/d", "e"}
