"""The code bundle is deterministic, complete, and staged content-addressed for local mode."""

from __future__ import annotations

import json
import tarfile

from pipeline_code.code_bundle import CONTAINER_CODE_DIR, build_source_bundle, bundle_files
from pipeline_code.local_locations import local_path_for, prepare_local_locations
from pipeline_code.training_pipeline import render_training_pipeline
from stacks.naming import Names
from stacks.settings import TrainingSettings


def test_bundle_is_byte_identical_and_holds_the_container_code(tmp_path):
    first = build_source_bundle(tmp_path / "a" / "sourcedir.tar.gz").read_bytes()
    second = build_source_bundle(tmp_path / "b" / "sourcedir.tar.gz").read_bytes()
    assert first == second
    with tarfile.open(tmp_path / "a" / "sourcedir.tar.gz") as tar:
        names = set(tar.getnames())
        assert all(member.mtime == 0 and member.uid == 0 for member in tar.getmembers())
    expected = {p.relative_to(CONTAINER_CODE_DIR).as_posix() for p in bundle_files()}
    assert names == expected
    assert "image_decoding.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_bundle_changes_when_code_changes(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.py").write_text("x = 1\n")
    one = build_source_bundle(tmp_path / "1.tar.gz", source).read_bytes()
    (source / "a.py").write_text("x = 2\n")
    two = build_source_bundle(tmp_path / "2.tar.gz", source).read_bytes()
    assert one != two


def test_local_locations_stage_code_where_the_definition_points(tmp_path):
    locations = prepare_local_locations(tmp_path)
    assert local_path_for(tmp_path, locations.source_bundle_uri).is_file()
    assert local_path_for(tmp_path, locations.run_step_uri).is_file()
    definition = json.loads(
        render_training_pipeline(locations, TrainingSettings(), Names("dogbreeds", "local"))
    )
    text = json.dumps(definition)
    assert locations.source_bundle_uri in text and locations.run_step_uri in text
    assert "placeholder" not in text
