"""The code bundle is deterministic, complete, and staged content-addressed for local mode."""

from __future__ import annotations

import tarfile

from pipeline_code.code_bundle import SHIPPED_CONTRACT_MODULES, build_source_bundle, bundle_files


def test_bundle_is_byte_identical_and_holds_the_container_code(tmp_path):
    first = build_source_bundle(tmp_path / "a" / "sourcedir.tar.gz").read_bytes()
    second = build_source_bundle(tmp_path / "b" / "sourcedir.tar.gz").read_bytes()
    assert first == second
    with tarfile.open(tmp_path / "a" / "sourcedir.tar.gz") as tar:
        names = set(tar.getnames())
        assert all(member.mtime == 0 and member.uid == 0 for member in tar.getmembers())
    assert names == {name for name, _ in bundle_files()}
    assert {"preprocess.py", "dogbreeds_jobs/data/image_decoding.py"} <= names
    assert {f"contract/{module}" for module in SHIPPED_CONTRACT_MODULES} <= names
    assert "contract/settings.py" not in names  # pydantic: no image holds it
    assert "dogbreeds_jobs/training/main.py" in names  # job packages travel too
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_bundle_changes_when_code_changes(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.py").write_text("x = 1\n")
    one = build_source_bundle(tmp_path / "1.tar.gz", source).read_bytes()
    (source / "a.py").write_text("x = 2\n")
    two = build_source_bundle(tmp_path / "2.tar.gz", source).read_bytes()
    assert one != two
