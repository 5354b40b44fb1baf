"""`dogbreeds dataset upload|stage-weights` against a moto S3 server over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import boto3
import pytest
from cdk_helpers import REPO_ROOT
from moto_fixtures import ACCOUNT, REGION, aws, moto_server  # noqa: F401

from dogbreeds.cli import main
from dogbreeds.sample_data import generate
from stacks.naming import Names

BUCKET = Names("dogbreeds", "dev").bucket(ACCOUNT, REGION, "data")


@pytest.fixture
def bucket(aws):  # noqa: F811
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return s3


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "images"
    generate(root, breeds=3, per_breed=4, size=(32, 32), seed=1, naming="stanford", broken=2,
             progress=False)
    return root


def _keys(s3) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_upload_normalises_validates_and_addresses_the_dataset_by_content(bucket, dataset, capsys):
    assert main(["dataset", "upload", str(dataset), "--env", "dev", "--workers", "4"]) == 0
    out = capsys.readouterr().out
    keys = _keys(bucket)
    assert len(keys) == 12  # 3 breeds x 4 valid images; the 2 broken files stay behind
    [uri] = re.findall(r"DatasetS3Uri: (s3://\S+)", out)
    prefix = uri.removeprefix(f"s3://{BUCKET}/")
    assert re.fullmatch(r"datasets/[0-9a-f]{16}/", prefix) and all(k.startswith(prefix) for k in keys)
    breeds = {k.split("/")[2] for k in keys}
    assert all(b == b.lower() and not b.startswith("n0") for b in breeds)  # Stanford ids stripped
    assert "2 files are not usable images" in out
    head = bucket.head_object(Bucket=BUCKET, Key=keys[0])
    assert len(head["Metadata"]["sha256"]) == 64

    # Same content: same prefix, nothing sent again.
    assert main(["dataset", "upload", str(dataset), "--env", "dev"]) == 0
    out = capsys.readouterr().out
    assert "uploaded 0 (0.0 MB), skipped 12 unchanged" in out and uri in out

    # Changed content: a new prefix, so the pipeline's step cache cannot serve the old model.
    changed = sorted(p for p in dataset.rglob("*.jpg") if p.stat().st_size > 500)[0]
    replacement = sorted(p for p in dataset.rglob("*.jpg") if p.stat().st_size != changed.stat().st_size
                         and p.parent == changed.parent)[0]
    changed.write_bytes(replacement.read_bytes())
    assert main(["dataset", "upload", str(dataset), "--env", "dev"]) == 0
    out = capsys.readouterr().out
    [new_uri] = re.findall(r"DatasetS3Uri: (s3://\S+)", out)
    assert new_uri != uri
    new_prefix = new_uri.removeprefix(f"s3://{BUCKET}/")
    assert any(k.startswith(new_prefix) for k in _keys(bucket)) and "skipped 0 unchanged" in out


def test_an_explicit_prefix_sends_only_what_changed(bucket, dataset, capsys):
    args = ["dataset", "upload", str(dataset), "--env", "dev", "--prefix", "datasets/current"]
    assert main(args) == 0
    assert f"DatasetS3Uri: s3://{BUCKET}/datasets/current/" in capsys.readouterr().out
    changed = sorted(dataset.rglob("*.jpg"))[0]
    changed.write_bytes(sorted(changed.parent.glob("*.jpg"))[-1].read_bytes())
    assert main(args) == 0
    assert "uploaded 1 " in capsys.readouterr().out


def test_dry_run_uploads_nothing(bucket, dataset, capsys):
    assert main(["dataset", "upload", str(dataset), "--env", "dev", "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert _keys(bucket) == []


def test_bad_directory_is_a_clear_error(aws, tmp_path, capsys):  # noqa: F811
    (tmp_path / "flat.jpg").write_bytes(b"not a folder of folders")
    assert main(["dataset", "upload", str(tmp_path), "--env", "dev"]) == 2
    assert "has no class folders" in capsys.readouterr().err
    assert main(["dataset", "upload", str(tmp_path / "missing"), "--env", "dev"]) == 2
    assert "is not a folder of class folders" in capsys.readouterr().err
    assert main(["dataset", "upload", str(tmp_path), "--env", "qa"]) == 2
    assert "Unknown environment 'qa'" in capsys.readouterr().err


def test_stage_packaged_weights(bucket, capsys):
    assert main(["dataset", "stage-weights", "--env", "dev", "--backbone", "efficientnet_lite0"]) == 0
    [key] = _keys(bucket)
    assert key.startswith("pretrained-weights/efficientnet_lite0/") and key.endswith(".pth")
    assert main(["dataset", "stage-weights", "--env", "dev", "--backbone", "resnet18"]) == 2
    assert "pass --file" in capsys.readouterr().err
    assert main(["dataset", "stage-weights", "--env", "dev", "--backbone", "vgg"]) == 2
    assert "unknown backbone" in capsys.readouterr().err


def test_console_script_without_credentials_fails_clearly(dataset):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION=REGION, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "dataset", "upload", str(dataset), "--env", "dev"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )
    assert result.returncode == 2
    assert "no AWS credentials" in result.stderr
