"""`dogbreeds dataset upload|stage-weights` against a moto S3 server over HTTP."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from aws_test_env import ACCOUNT, REGION, aws_environment
from PIL import Image
from repo_paths import REPO_ROOT

from contract.naming import Names
from dogbreeds.cli import main
from dogbreeds.dataset_upload import scan_dataset, upload_dataset
from dogbreeds.sample_data import generate

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


# --- hostile input -------------------------------------------------------------------------------


def _emulate_permissions_as_root(monkeypatch, *folders) -> None:
    """Tests run as root, where mode 000 stops nobody: make os.scandir refuse those folders."""
    if os.geteuid() != 0:
        return
    refused = {str(folder) for folder in folders}
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) in refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.fixture
def fifo_release():
    """FIFOs made by a test; at teardown a writer opens and closes each, so no reader stays blocked."""
    fifos: list[Path] = []
    yield fifos
    for path in fifos:
        with contextlib.suppress(OSError):  # ENXIO: no reader waiting, nothing to release
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.timeout(120)
def test_entries_that_are_not_images_in_a_class_folder_are_reported_with_a_reason(
    bucket, dataset, tmp_path, capsys, monkeypatch, fifo_release
):
    breed_dir = sorted(p for p in dataset.iterdir() if p.is_dir())[0]
    image = sorted(p for p in breed_dir.glob("*.jpg") if not p.name.startswith("broken"))[0]
    (breed_dir / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (breed_dir / "linked.jpg").symlink_to(image)  # a link to a good image is uploaded as before
    fifo = breed_dir / "pipe.jpg"
    os.mkfifo(fifo)
    fifo_release.append(fifo)
    (dataset / "stray.jpg").write_bytes(image.read_bytes())
    locked = dataset / "n02099999-locked_breed"
    locked.mkdir()
    (locked / "hidden.jpg").write_bytes(image.read_bytes())
    locked.chmod(0)
    _emulate_permissions_as_root(monkeypatch, locked)
    try:
        assert main(["dataset", "upload", str(dataset), "--env", "dev", "--workers", "4"]) == 0
    finally:
        locked.chmod(0o755)
    out = capsys.readouterr().out
    assert len(_keys(bucket)) == 13  # 12 images and the link to one
    assert "4 entries skipped" in out
    assert f"  {breed_dir / 'gone.jpg'}: dangling symlink (to {tmp_path / 'missing.jpg'})" in out
    assert f"  {fifo}: a FIFO, not a regular file" in out
    assert f"  {dataset / 'stray.jpg'}: not in a class folder" in out
    assert f"  {locked}: folder cannot be read (Permission denied)" in out


# Runs the console script and reports its peak resident memory from /proc (VmHWM). getrusage's
# ru_maxrss cannot be used: Linux carries the high-water mark across fork and exec, so a child of
# this (large) pytest process would report at least the parent's size.
_MEASURED_CLI = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as status:\n"
    "        kb = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))\n"
    "    print(f'peak-rss-kb {kb}', file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'dogbreeds'\n"
    "runpy.run_module('dogbreeds', run_name='__main__', alter_sys=True)\n"
)


def _peak_rss_mb(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``dogbreeds ARGS`` (it must exit 0); returns its peak resident memory in MB and output."""
    result = subprocess.run([sys.executable, "-c", _MEASURED_CLI, *args], capture_output=True,
                            text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [kb] = re.findall(r"peak-rss-kb (\d+)", result.stderr)
    return int(kb) / 1024, result.stdout


def _subprocess_env(aws_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **aws_environment(aws_url), "PYTHONPATH": str(REPO_ROOT)}


def _padded_png(path: Path, size: int) -> None:
    """A valid 16x16 PNG followed by zeros up to ``size`` bytes (sparse: costs no disk)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    os.truncate(path, size)


def test_upload_memory_stays_far_below_the_size_of_huge_files(bucket, aws, tmp_path):  # noqa: F811
    small = tmp_path / "small"
    generate(small, breeds=2, per_breed=2, size=(32, 32), seed=1, naming="plain", progress=False)
    big = tmp_path / "big"
    generate(big, breeds=2, per_breed=2, size=(32, 32), seed=1, naming="plain", progress=False)
    breed_dir = sorted(big.iterdir())[0]
    with open(breed_dir / "huge.jpg", "wb") as handle:
        handle.truncate(2**30)  # 1 GiB of zeros named .jpg: not an image
    _padded_png(breed_dir / "padded.png", 120 * 2**20)  # a valid image of 120 MiB: uploaded
    env = _subprocess_env(aws)
    upload = ["dataset", "upload", "--env", "dev", "--workers", "4"]
    baseline, _ = _peak_rss_mb([*upload, str(small)], env)
    peak, out = _peak_rss_mb([*upload, str(big)], env)
    print(f"peak RSS: {peak:.0f} MB with a 1 GiB and a 120 MiB file; {baseline:.0f} MB without")
    assert "huge.jpg: too large for an image (1,073.7 MB; the limit is 200.0 MB)" in out, out
    assert "uploaded 5 " in out, out
    assert bucket.head_object(Bucket=BUCKET, Key=_keys(bucket)[0])  # the upload went through
    assert peak - baseline < 40, f"peak {peak:.0f} MB vs {baseline:.0f} MB for a tiny dataset"


def test_validating_a_huge_file_reads_only_what_decoding_needs(tmp_path):
    root = tmp_path / "images" / "beagle"
    root.mkdir(parents=True)
    with open(root / "zeros.jpg", "wb") as handle:
        handle.truncate(2**30)
    _padded_png(root / "padded.png", 2**30)
    script = (
        "import sys; from pathlib import Path; "
        "from dogbreeds.dataset_upload import scan_dataset; "
        "report = scan_dataset(Path(sys.argv[1]), max_file_bytes=2**31); "
        "print([f.relative_key for f in report.files], [reason for _, reason in report.bad]); "
        "print('peak', next(int(line.split()[1]) for line in open('/proc/self/status') "
        "if line.startswith('VmHWM:')) // 1024)"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "images")],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert "['beagle/padded.png'] ['not an image (cannot identify image file)']" in result.stdout
    peak = int(result.stdout.split("peak ")[1])
    print(f"peak RSS validating two 1 GiB files: {peak} MB")
    assert peak < 150


def test_rejection_reasons_say_what_is_wrong(aws, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "images"
    generate(root, breeds=3, per_breed=2, size=(32, 32), seed=1, naming="plain", broken=3,
             progress=False)
    assert main(["dataset", "upload", str(root), "--env", "dev", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "object at 0x" not in out
    reasons = sorted(line.split(": ", 1)[1] for line in out.splitlines() if "/broken_" in line)
    assert reasons[0] == "empty file", reasons
    assert reasons[1] == "not an image (cannot identify image file)", reasons
    assert reasons[2].startswith("truncated JPEG: image file is truncated"), reasons


def test_a_file_changed_after_validation_is_never_stored_under_the_old_hash(bucket, dataset):
    report = scan_dataset(dataset)
    victim = report.files[0]
    data = victim.path.read_bytes()
    victim.path.write_bytes(bytes(reversed(data)))  # same size, different content
    result = upload_dataset(bucket, BUCKET, "datasets/x", report.files, existing={}, workers=2)
    for key in _keys(bucket):
        stored = bucket.get_object(Bucket=BUCKET, Key=key)
        assert hashlib.sha256(stored["Body"].read()).hexdigest() == stored["Metadata"]["sha256"], key
    assert [path for path, _ in result.failed] == [victim.path]
    assert f"datasets/x/{victim.relative_key}" not in _keys(bucket)


def test_an_object_whose_metadata_s3_did_not_verify_is_sent_again(bucket, dataset, capsys):
    args = ["dataset", "upload", str(dataset), "--env", "dev", "--prefix", "datasets/current"]
    report = scan_dataset(dataset)
    forged = report.files[0]
    # As left by an older upload whose file changed on disk while it was being sent: the metadata
    # names the hash of the file, the content is something else of the same size.
    bucket.put_object(Bucket=BUCKET, Key=f"datasets/current/{forged.relative_key}",
                      Body=bytes(forged.size), Metadata={"sha256": forged.sha256})
    assert main(args) == 0
    assert "uploaded 12 " in capsys.readouterr().out
    stored = bucket.get_object(Bucket=BUCKET, Key=f"datasets/current/{forged.relative_key}")
    assert stored["Body"].read() == forged.path.read_bytes()


def test_ctrl_c_mid_upload_exits_130_with_one_line_and_a_rerun_finishes(aws, bucket, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "images"
    generate(root, breeds=4, per_breed=150, size=(24, 24), seed=2, naming="plain", progress=False)
    total = sum(1 for path in root.rglob("*") if path.is_file())
    process = subprocess.Popen(
        [sys.executable, "-m", "dogbreeds", "dataset", "upload", str(root), "--env", "dev",
         "--prefix", "datasets/current", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_subprocess_env(aws),
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_keys(bucket)) < 10:  # mid-upload: some objects are there, most are not
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: "), err
    keys = _keys(bucket)
    assert 10 <= len(keys) < total
    for key in keys:  # whatever is there is whole and says so truthfully
        stored = bucket.get_object(Bucket=BUCKET, Key=key)
        assert hashlib.sha256(stored["Body"].read()).hexdigest() == stored["Metadata"]["sha256"]

    assert main(["dataset", "upload", str(root), "--env", "dev", "--prefix", "datasets/current"]) == 0
    out = capsys.readouterr().out
    assert f"uploaded {total - len(keys)} " in out and f"skipped {len(keys)} unchanged" in out
    assert len(_keys(bucket)) == total
