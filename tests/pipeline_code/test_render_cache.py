"""The render cache returns exactly what the builder renders, and renders again on any change."""

from __future__ import annotations

import json

from contract.naming import Names
from contract.settings import TrainingSettings
from pipeline_code.render_cache import cache_key, cached_render
from pipeline_code.training_pipeline import render_training_pipeline
from stacks.constructs.rendered_pipeline import placeholder_locations

CALLS: list[str] = []
BUILDER = "test_render_cache:counting_builder"


def counting_builder(locations, settings, names) -> str:
    CALLS.append(names.env)
    return json.dumps({"bucket": locations.bucket, "epochs": settings.epochs, "env": names.env})


def test_a_hit_skips_the_builder_and_any_change_renders_again(tmp_path):
    CALLS.clear()
    locations = placeholder_locations()
    names, settings = Names("dogbreeds", "dev"), TrainingSettings()
    first = cached_render(BUILDER, locations, settings, names, cache_dir=tmp_path / "cache")
    again = cached_render(BUILDER, locations, settings, names, cache_dir=tmp_path / "cache")
    assert first == again and CALLS == ["dev"]

    changed = settings.model_copy(update={"epochs": 3})
    assert json.loads(cached_render(BUILDER, locations, changed, names, cache_dir=tmp_path / "cache"))[
        "epochs"
    ] == 3
    cached_render(BUILDER, locations, settings, Names("dogbreeds", "prod"), cache_dir=tmp_path / "cache")
    assert CALLS == ["dev", "dev", "prod"]
    assert cache_key(BUILDER, locations, settings, names) != cache_key(
        "other:builder", locations, settings, names
    )


def test_a_damaged_entry_is_rendered_again(tmp_path):
    CALLS.clear()
    locations = placeholder_locations()
    names, settings = Names("dogbreeds", "dev"), TrainingSettings()
    cached_render(BUILDER, locations, settings, names, cache_dir=tmp_path / "cache")
    [entry] = (tmp_path / "cache").glob("*.json")
    entry.write_text('{"truncated": ')
    text = cached_render(BUILDER, locations, settings, names, cache_dir=tmp_path / "cache")
    assert json.loads(text)["env"] == "dev" and len(CALLS) == 2


def test_the_cached_training_definition_is_byte_identical_to_a_fresh_render(tmp_path):
    locations = placeholder_locations()
    names, settings = Names("dogbreeds", "dev"), TrainingSettings()
    builder = "pipeline_code.training_pipeline:render_training_pipeline"
    cached_render(builder, locations, settings, names, cache_dir=tmp_path / "cache")
    from_cache = cached_render(builder, locations, settings, names, cache_dir=tmp_path / "cache")
    assert from_cache == render_training_pipeline(locations, settings, names)
