"""The model directory that training writes and serving loads (packed by SageMaker as model.tar.gz).

Layout (the "Model artifact" contract of the container README)::

    model.pt        state dict of the whole network (fp32, CPU tensors, no DDP/compile prefixes)
    classes.json    normalised breed names in output-index order
    metadata.json   backbone, image_size, mean, std, dataset fingerprint, metrics, training settings
    code/           inference.py and every module it imports (SERVING_CODE), so it serves with no repack

The artifact is self-describing: ``load_model`` needs nothing but the directory, so evaluation,
the endpoint and local serving all load a model the same way.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import contract

from . import backbones

WEIGHTS_FILE = "model.pt"
CLASSES_FILE = "classes.json"
METADATA_FILE = "metadata.json"
CODE_DIR = "code"
# What code/ holds, as paths inside the code bundle: the handler module the inference toolkit imports
# and every module it imports, nothing else (the monitoring and training code do not serve).
SERVING_CODE = (
    "inference.py",
    "dogbreeds_jobs/__init__.py",
    "dogbreeds_jobs/data/__init__.py",
    "dogbreeds_jobs/data/image_decoding.py",
    "dogbreeds_jobs/serving/__init__.py",
    "dogbreeds_jobs/serving/backbones.py",
    "dogbreeds_jobs/serving/inference.py",
    "dogbreeds_jobs/serving/model_artifact.py",
)
# The bottom layer's modules the handlers import (standard library only), copied into code/contract/.
SERVING_CONTRACT_MODULES = ("__init__.py", "environment_variables.py")
REQUIRED_METADATA = ("backbone", "image_size", "mean", "std")
# The bundle's root (pipeline_code/container on the host, the unpacked bundle in a job).
CONTAINER_CODE_DIR = Path(__file__).resolve().parents[2]


@dataclass
class LoadedModel:
    """A model ready to predict, with everything needed to preprocess its input the training way."""

    module: nn.Module  # in eval mode, on the requested device
    classes: list[str]
    metadata: dict[str, Any]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def write_model_dir(
    model_dir: str | Path, model: nn.Module, classes: list[str], metadata: dict[str, Any]
) -> Path:
    """Write weights, classes.json, metadata.json and code/ into ``model_dir`` (made if needed)."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"metadata lacks {missing}; required: {list(REQUIRED_METADATA)}")
    backbones.backbone_spec(metadata["backbone"])  # fails early with the allowed names
    if len(classes) != len(set(classes)):
        raise ValueError("classes must be unique names in output-index order")
    head = backbones.get_head(unwrap(model), metadata["backbone"])
    if head.out_features != len(classes):
        raise ValueError(f"model has {head.out_features} outputs but {len(classes)} classes given")

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {
        key: value.detach().to("cpu", torch.float32)
        if value.is_floating_point()
        else value.detach().cpu()
        for key, value in unwrap(model).state_dict().items()
    }
    torch.save(state, model_dir / WEIGHTS_FILE)
    (model_dir / CLASSES_FILE).write_text(json.dumps(list(classes), indent=1) + "\n")
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    write_code_dir(model_dir / CODE_DIR, metadata["backbone"])
    return model_dir


def write_code_dir(code_dir: Path, backbone: str) -> None:
    """Copy the serving code, and the vendored package the backbone needs, from the code bundle.

    Both come from the folder this module lives in (the unpacked code bundle in a job, or
    ``pipeline_code/container`` on the host), never from an installed package: the inference image
    has neither, and vendoring (rather than a code/requirements.txt that the inference toolkit
    pip-installs at start-up) keeps the endpoint working with network isolation.
    """
    if code_dir.exists():
        shutil.rmtree(code_dir)
    code_dir.mkdir(parents=True)
    for name in SERVING_CODE:
        target = code_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CONTAINER_CODE_DIR / name, target)
    # Beside the bundle's root in a job, at the repository's root on the host: ask the import system.
    contract_dir = Path(contract.__file__).resolve().parent
    (code_dir / "contract").mkdir()
    for name in SERVING_CONTRACT_MODULES:
        shutil.copy2(contract_dir / name, code_dir / "contract" / name)
    package = backbones.backbone_spec(backbone).vendored_package
    if package:
        vendor_package(package, code_dir)


def vendor_package(package: str, code_dir: Path) -> None:
    """Copy ``dogbreeds_jobs/vendor/<package>/`` (code, LICENSE, ORIGIN.txt) from the bundle into code/."""
    vendor_dir = backbones.JOBS_DIR / backbones.VENDOR_PACKAGE
    source_dir = vendor_dir / package
    if not (source_dir / "__init__.py").is_file():
        raise FileNotFoundError(
            f"{source_dir} is missing: the code bundle must carry {backbones.VENDOR_PACKAGE}/{package}/"
        )
    target_dir = code_dir / backbones.JOBS_DIR.name / backbones.VENDOR_PACKAGE
    target_dir.mkdir(exist_ok=True)
    shutil.copy2(vendor_dir / "__init__.py", target_dir / "__init__.py")
    shutil.copytree(
        source_dir,
        target_dir / package,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        dirs_exist_ok=True,
    )


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network from ``metadata.json`` and load its weights; nothing is downloaded."""
    model_dir = Path(model_dir)
    for name in (WEIGHTS_FILE, CLASSES_FILE, METADATA_FILE):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"{model_dir} is not a model directory: {name} is missing "
                f"(expected {WEIGHTS_FILE}, {CLASSES_FILE}, {METADATA_FILE})"
            )
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    classes = json.loads((model_dir / CLASSES_FILE).read_text())
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"{model_dir / METADATA_FILE} lacks {missing}")
    module = backbones.build_backbone(metadata["backbone"], len(classes))
    state = backbones.read_state_dict(model_dir / WEIGHTS_FILE)
    module.load_state_dict(state, strict=True)
    module.eval().to(device)
    return LoadedModel(
        module=module,
        classes=list(classes),
        metadata=metadata,
        image_size=int(metadata["image_size"]),
        mean=tuple(float(x) for x in metadata["mean"]),
        std=tuple(float(x) for x in metadata["std"]),
    )
