"""`dogbreeds local run --help` and `--list-params`: the pipeline's parameters, types and defaults."""

from __future__ import annotations

import argparse

from dogbreeds import local_run
from dogbreeds.cli import build_parser, main

PARAMETERS = [
    {"Name": "Backbone", "Type": "String", "DefaultValue": "resnet18"},
    {"Name": "Epochs", "Type": "Integer", "DefaultValue": 5},
    {"Name": "LearningRate", "Type": "Float", "DefaultValue": 0.001},
    {"Name": "NoDefault", "Type": "String"},
]


def run_help() -> str:
    parser = build_parser()
    local = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["local"]
    run = next(a for a in local._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    return run.format_help()


def test_help_without_a_cached_assembly_says_how_to_list_the_parameters(monkeypatch):
    monkeypatch.setattr(local_run, "cached_assembly", lambda env: None)
    monkeypatch.setattr(local_run, "pipeline_parameters", lambda d: (_ for _ in ()).throw(AssertionError))
    text = run_help()
    assert "--list-params" in text
    assert "`dogbreeds local run --env dev --list-params`" in " ".join(text.split())
    assert "Epochs" not in text


def test_help_with_a_cached_assembly_lists_the_parameters(monkeypatch, tmp_path):
    monkeypatch.setattr(local_run, "cached_assembly", lambda env: tmp_path if env == "dev" else None)
    monkeypatch.setattr(local_run, "pipeline_parameters", lambda d: PARAMETERS if d == tmp_path else [])
    lines = run_help().splitlines()
    assert any(line.split() == ["Epochs", "Integer", "5"] for line in lines)
    assert any(line.split() == ["LearningRate", "Float", "0.001"] for line in lines)
    assert any(line.split() == ["NoDefault", "String", "-"] for line in lines)
    assert "--env ENV --list-params" in " ".join(lines)


def test_list_params_synthesises_the_environment_and_prints_the_table(monkeypatch, tmp_path, capsys):
    synthesised = []

    def fake_synthesize(env_name, stream=None):
        synthesised.append(env_name)
        print(f"synthesising the {env_name} cloud assembly", flush=True)
        return tmp_path

    monkeypatch.setattr(local_run, "synthesize", fake_synthesize)
    monkeypatch.setattr(local_run, "pipeline_parameters", lambda d: PARAMETERS if d == tmp_path else [])
    monkeypatch.setattr(local_run, "run_local_training", lambda **kw: (_ for _ in ()).throw(AssertionError))
    assert main(["local", "run", "--env", "staging", "--list-params"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert synthesised == ["staging"]
    assert out[0] == "synthesising the staging cloud assembly"
    assert out[1].split() == ["NAME", "TYPE", "DEFAULT"]
    assert [line.split()[0] for line in out[2:]] == ["Backbone", "Epochs", "LearningRate", "NoDefault"]


def test_list_params_with_an_assembly_folder_does_not_synthesise(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(local_run, "synthesize", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    monkeypatch.setattr(local_run, "pipeline_parameters", lambda d: PARAMETERS if d == tmp_path else [])
    assert main(["local", "run", "--assembly", str(tmp_path), "--list-params"]) == 0
    assert "Backbone" in capsys.readouterr().out


def test_parameter_table_of_the_real_definition_when_cached():
    assembly = local_run.cached_assembly("dev")
    if assembly is None:
        return  # nothing cached: synthesising here would take too long for a help test
    table = local_run.parameter_table(local_run.pipeline_parameters(assembly))
    names = [line.split()[0] for line in table.splitlines()]
    assert {"Epochs", "Backbone", "DatasetS3Uri"} <= set(names)
