"""The container images the jobs and the endpoint run in, and what Python packages each really holds.

This is a contract: the code in ``pipeline_code/container`` may import the standard library, its own
modules (including what it vendors, e.g. ``dogbreeds_jobs/vendor/``) and the modules listed here for the
image it runs in, nothing else. The pipeline builders take the tags from here, and local mode's
import guard (``dogbreeds/local_executor/import_guard.py``) refuses any other import, because the
local virtual environment holds packages no container has. This module imports nothing of the
project.

Sources, all read for this inventory (nothing here is guessed from the local environment):

* aws/deep-learning-containers, branch ``master`` at ``DLC_COMMIT``: the Dockerfiles of the images
  (``pytorch/training/docker/2.8/py3/Dockerfile.cpu``, ``.../2.8/py3/cu129/Dockerfile.gpu`` and its
  base ``base/x86_64/gpu/cu129/ubuntu22.04/Dockerfile`` with ``scripts/install_python.sh``,
  ``pytorch/inference/docker/2.6/py3/Dockerfile.cpu`` and its ``Dockerfile.sagemaker.cpu.core_packages.json``)
  and their buildspecs (``pytorch/training/buildspec-2-8-sm.yml``,
  ``pytorch/inference/buildspec-2-6-sm.yml``: TorchServe 0.12.0, sagemaker-pytorch-inference
  2.0.25). Each image is the Dockerfile's ``sagemaker`` target.
* aws/deep-learning-containers, branch ``main`` at ``DLC_DOCS_COMMIT``: the published tags
  (``docs/src/data/pytorch-training/2.8-{cpu,gpu}-sagemaker.yml``,
  ``docs/src/data/pytorch-inference/2.6-cpu-sagemaker.yml``).
* pytorch/serve tag v0.12.0 (``TORCHSERVE_COMMIT``): ``requirements/common.txt``, which the
  inference Dockerfile installs, and ``setup.py`` (TorchServe's own requirements).
* The published wheel metadata (``Requires-Dist``) of torch 2.8.0 and 2.6.0, torchvision 0.23.0 and
  0.21.0, sagemaker-training, sagemaker-pytorch-inference 2.0.25, and the setup.py of
  aws/sagemaker-pytorch-training-toolkit: what torch and the toolkits need is there too.

Only what those files name is listed: the packages a Dockerfile installs, plus the declared
requirements of torch, torchvision and the SageMaker toolkits (and a few well-known direct
requirements, marked). Deeper transitive dependencies are left out on purpose: a module missing
here only makes the local guard refuse an import that would have worked, never the reverse.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# ---- image tags (the one source of truth; pipeline_code.locations re-exports them) ----
# Training <= 2.8 and inference <= 2.6 are what the pinned sagemaker SDK knows; the container code
# keeps to APIs those versions have.
PYTORCH_TRAINING_VERSION = "2.8.0"
PYTORCH_INFERENCE_VERSION = "2.6.0"
PYTHON_VERSION = "py312"
TRAINING_IMAGE_REPOSITORY = "pytorch-training"  # training and processing jobs
INFERENCE_IMAGE_REPOSITORY = "pytorch-inference"  # the endpoint (the model package's image)
TRAINING_IMAGE_TAG = f"{PYTORCH_TRAINING_VERSION}-gpu-{PYTHON_VERSION}"
PROCESSING_IMAGE_TAG = f"{PYTORCH_TRAINING_VERSION}-cpu-{PYTHON_VERSION}"
INFERENCE_IMAGE_TAG = f"{PYTORCH_INFERENCE_VERSION}-cpu-{PYTHON_VERSION}"

DLC_REPOSITORY = "github.com/aws/deep-learning-containers"
DLC_COMMIT = "f06ada0e08ec0be1627f201691856eb8c28abd17"  # branch master, 2026-08-19
DLC_DOCS_COMMIT = "e0ecedea6a1c56d6b5914f9cfb2fec5c548e67e0"  # branch main, 2026-08-21
TORCHSERVE_COMMIT = "6bdb1baf7254c2bfc40a6669b0d922c08ba5f37a"  # pytorch/serve tag v0.12.0

# ---- pip distribution -> the top-level modules it makes importable ----
# Distributions that install no importable module (mkl, mkl-include, types-python-dateutil) and
# the 'typing' backport (shadowed by the standard library) map to nothing.
_MODULES_OF: dict[str, tuple[str, ...]] = {
    "accelerate": ("accelerate",),
    "awscli": ("awscli",),
    "black": ("black", "blackd", "blib2to3", "_black_version"),
    "blis": ("blis",),
    "bokeh": ("bokeh",),
    "boto3": ("boto3",),
    "botocore": ("botocore",),
    "captum": ("captum",),
    "charset-normalizer": ("charset_normalizer",),
    "click": ("click",),
    "cloudpickle": ("cloudpickle",),
    "cryptography": ("cryptography",),
    "cython": ("Cython", "cython", "pyximport"),
    "fastai": ("fastai",),
    "fastcore": ("fastcore",),
    "filelock": ("filelock",),
    "flash-attn": ("flash_attn", "flash_attn_2_cuda"),
    "fsspec": ("fsspec",),
    "gevent": ("gevent",),
    "h5py": ("h5py",),
    "idna": ("idna",),
    "imageio": ("imageio",),
    "inotify-simple": ("inotify_simple",),
    "ipykernel": ("ipykernel", "ipykernel_launcher"),
    "ipython": ("IPython",),
    "jinja2": ("jinja2",),
    "jmespath": ("jmespath",),
    "joblib": ("joblib",),
    "langcodes": ("langcodes",),
    "llvmlite": ("llvmlite",),
    "markupsafe": ("markupsafe",),
    "matplotlib": ("matplotlib", "mpl_toolkits", "pylab"),
    "mkl": (),
    "mkl-include": (),
    "mpi4py": ("mpi4py",),
    "mpmath": ("mpmath",),
    "networkx": ("networkx",),
    "ninja": ("ninja",),
    "numba": ("numba",),
    "numpy": ("numpy",),
    "nvidia-*": ("nvidia",),  # the CUDA libraries torch's cu129 wheel requires (one namespace)
    "opencv-python": ("cv2",),
    "packaging": ("packaging",),
    "pandas": ("pandas",),
    "paramiko": ("paramiko",),
    "parso": ("parso",),
    "pillow": ("PIL",),
    "pip": ("pip",),
    "plotly": ("plotly", "_plotly_utils"),
    "protobuf": ("google",),  # google.protobuf; 'google' is a namespace
    "psutil": ("psutil",),
    "pyasn1": ("pyasn1",),
    "pybind11": ("pybind11",),
    "pynvml": ("pynvml",),
    "pyopenssl": ("OpenSSL",),
    "python-dateutil": ("dateutil",),
    "pytz": ("pytz",),
    "pyyaml": ("yaml", "_yaml"),
    "requests": ("requests",),
    "retrying": ("retrying",),
    "s3torchconnector": ("s3torchconnector", "s3torchconnectorclient"),
    "s3transfer": ("s3transfer",),
    "sagemaker": ("sagemaker",),
    "sagemaker-experiments": ("smexperiments",),
    "sagemaker-pytorch-inference": ("sagemaker_pytorch_serving_container", "sagemaker_inference"),
    "sagemaker-pytorch-training": ("sagemaker_pytorch_container",),
    "sagemaker-training": ("sagemaker_training", "gethostname"),
    "scikit-learn": ("sklearn",),
    "scipy": ("scipy",),
    "seaborn": ("seaborn",),
    "setuptools": ("setuptools", "pkg_resources", "_distutils_hack"),
    "shap": ("shap",),
    "six": ("six",),
    "smclarify": ("smclarify",),
    "sniffio": ("sniffio",),
    "spacy": ("spacy",),
    "sympy": ("sympy",),
    "thinc": ("thinc",),
    "threadpoolctl": ("threadpoolctl",),
    "torch": ("torch", "torchgen", "functorch"),
    "torch-model-archiver": ("model_archiver",),
    "torchaudio": ("torchaudio",),
    "torchdata": ("torchdata",),
    "torchserve": ("ts",),
    "torchtext": ("torchtext",),
    "torchtnt": ("torchtnt",),
    "torchvision": ("torchvision",),
    "tornado": ("tornado",),
    "tqdm": ("tqdm",),
    "transformer-engine": ("transformer_engine",),
    "triton": ("triton",),
    "types-python-dateutil": (),
    "typing": (),
    "typing-extensions": ("typing_extensions",),
    "tzdata": ("tzdata",),
    "urllib3": ("urllib3",),
    "werkzeug": ("werkzeug",),
    "wheel": ("wheel",),
}

# ---- what each Dockerfile installs (sagemaker target), in its order ----
# pytorch/training/docker/2.8/py3/Dockerfile.cpu and cu129/Dockerfile.gpu, "Install common packages".
_TRAINING_COMMON = (
    "pip", "cython", "cryptography", "pyopenssl", "pybind11", "mkl", "mkl-include", "parso", "typing",
    "charset-normalizer", "packaging", "pyyaml", "numpy", "scipy", "click", "psutil", "ipython",
    "ipykernel", "pillow", "h5py", "fsspec", "idna", "tqdm", "requests", "setuptools", "urllib3",
    "pyasn1", "wheel", "pytz", "tzdata", "opencv-python", "mpi4py", "jinja2", "tornado", "filelock",
)  # fmt: skip
# "Install PyTorch": torch, torchvision, torchaudio, then the second pip install of that RUN.
_TRAINING_PYTORCH = (
    "torch", "torchvision", "torchaudio", "torchtnt", "torchdata", "s3torchconnector", "fastai",
    "fastcore", "accelerate", "spacy", "thinc", "blis", "numpy", "black",
)  # fmt: skip
# sagemaker target: "Install SM packages" and "Install extra packages" (awscli and boto3: the CPU
# Dockerfile installs them with the common packages, the GPU one here).
_TRAINING_SAGEMAKER = (
    "awscli", "boto3", "smclarify", "sagemaker", "sagemaker-experiments",
    "sagemaker-pytorch-training", "sagemaker-training", "sniffio",
    "bokeh", "imageio", "numba", "pandas", "plotly", "scikit-learn", "seaborn", "shap",
    "cloudpickle", "langcodes",
)  # fmt: skip
# GPU only: the base image (scripts/install_python.sh: awscli boto3 requests setuptools), ninja in
# the common list, triton beside torch, the flash-attn wheel and TransformerEngine.
_TRAINING_GPU_ONLY = ("ninja", "triton", "flash-attn", "transformer-engine", "nvidia-*")

# pytorch/inference/docker/2.6/py3/Dockerfile.cpu: "Install pip pakcages" [sic], "Install PyTorch",
# TorchServe's requirements/common.txt at v0.12.0 (psutil requests captum packaging pynvml pyyaml
# ninja setuptools), torchserve and torch-model-archiver, then the sagemaker target's extras.
_INFERENCE = (
    "pip", "cython", "cryptography", "pyopenssl", "mkl", "mkl-include", "parso", "typing",
    "charset-normalizer", "packaging", "boto3", "numpy", "scipy", "ipython", "h5py", "idna", "tqdm",
    "requests", "setuptools", "urllib3", "awscli", "types-python-dateutil", "opencv-python", "pytz",
    "tzdata",
    "torch", "torchvision", "torchaudio", "torchtext", "torchdata",
    "psutil", "captum", "pynvml", "pyyaml", "ninja",
    "torchserve", "torch-model-archiver",
    "scikit-learn", "pandas", "sagemaker-pytorch-inference", "s3transfer",
)  # fmt: skip

# ---- declared requirements of torch, torchvision and the toolkits (wheel Requires-Dist) ----
_TORCH_REQUIRES = ("filelock", "typing-extensions", "setuptools", "sympy", "networkx", "jinja2", "fsspec")
_TORCHVISION_REQUIRES = ("numpy", "pillow")  # 0.21.0 and 0.23.0 alike
_BOTO3_REQUIRES = ("botocore", "jmespath", "s3transfer", "python-dateutil", "urllib3", "six")
# sagemaker-training: numpy boto3 six pip retrying gevent inotify_simple werkzeug paramiko psutil
# protobuf scipy botocore; sagemaker-pytorch-training: retrying sagemaker-training six.
_TRAINING_TOOLKIT_REQUIRES = (
    "six", "pip", "retrying", "gevent", "inotify-simple", "werkzeug", "paramiko", "psutil",
    "protobuf", "scipy",
)  # fmt: skip
# sagemaker-pytorch-inference 2.0.25 (which carries sagemaker_inference): boto3 numpy six retrying
# scipy psutil; TorchServe 0.12.0's setup.py: Pillow psutil packaging wheel.
_INFERENCE_TOOLKIT_REQUIRES = ("six", "retrying", "scipy", "psutil", "pillow", "wheel")
# A few well-known direct requirements of listed packages: sympy -> mpmath, jinja2 -> markupsafe,
# scikit-learn -> joblib, threadpoolctl; seaborn and fastai -> matplotlib; numba -> llvmlite.
_WELL_KNOWN_REQUIRES = ("mpmath", "markupsafe", "joblib", "threadpoolctl")
_TRAINING_WELL_KNOWN_REQUIRES = ("matplotlib", "llvmlite")

# Modules the standard library lost, by the Python version that lost them: the local Python may
# be older than the image's and still have them.
STDLIB_REMOVED_IN: dict[str, frozenset[str]] = {
    "3.12": frozenset({"asynchat", "asyncore", "distutils", "imp", "smtpd"}),
    "3.13": frozenset({
        "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap",
        "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib",
        "uu", "xdrlib",
    }),
}  # fmt: skip


def _modules(*groups: tuple[str, ...]) -> frozenset[str]:
    return frozenset(module for group in groups for dist in group for module in _MODULES_OF[dist])


@dataclass(frozen=True)
class ContainerImage:
    """One image: where it comes from, its Python and torch, and the modules it can import."""

    repository: str
    tag: str
    tag_aliases: tuple[str, ...]  # the other published tags of the same image
    python_version: str
    torch_version: str
    torchvision_version: str
    modules: frozenset[str]  # importable top-level modules beyond the standard library
    sources: tuple[str, ...]  # files read, in DLC_REPOSITORY at DLC_COMMIT unless said otherwise

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def python_short_version(self) -> str:
        return ".".join(self.python_version.split(".")[:2])

    def stdlib_removed(self) -> frozenset[str]:
        """Standard-library modules of earlier Pythons that this image's Python no longer has."""
        mine = tuple(int(x) for x in self.python_short_version.split("."))
        return frozenset().union(
            *(
                names
                for version, names in STDLIB_REMOVED_IN.items()
                if tuple(int(x) for x in version.split(".")) <= mine
            )
        )

    def provides(self, module: str) -> bool:
        """Whether ``module`` (dotted or not) is importable in the image, standard library aside."""
        return module.partition(".")[0] in self.modules


_TRAINING_SOURCES = (
    "pytorch/training/buildspec-2-8-sm.yml",
    "pytorch/training/docker/2.8/py3/Dockerfile.cpu",
)
TRAINING_GPU = ContainerImage(
    repository=TRAINING_IMAGE_REPOSITORY,
    tag=TRAINING_IMAGE_TAG,
    tag_aliases=(
        "2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker",
        "2.8-gpu-py312-cu129-ubuntu22.04-sagemaker-v1",
        "2.8-gpu-py312",
    ),
    python_version="3.12.10",  # the base image's PYTHON_VERSION
    torch_version="2.8.0",
    torchvision_version="0.23.0",
    modules=_modules(
        _TRAINING_COMMON, _TRAINING_PYTORCH, _TRAINING_SAGEMAKER, _TRAINING_GPU_ONLY,
        _TORCH_REQUIRES, _TORCHVISION_REQUIRES, _BOTO3_REQUIRES, _TRAINING_TOOLKIT_REQUIRES,
        _WELL_KNOWN_REQUIRES, _TRAINING_WELL_KNOWN_REQUIRES,
    ),
    sources=(
        "pytorch/training/buildspec-2-8-sm.yml",
        "pytorch/training/docker/2.8/py3/cu129/Dockerfile.gpu",
        "base/x86_64/gpu/cu129/ubuntu22.04/Dockerfile",
        "scripts/install_python.sh",
        f"docs/src/data/pytorch-training/2.8-gpu-sagemaker.yml (at {DLC_DOCS_COMMIT})",
    ),
)
PROCESSING_CPU = ContainerImage(
    repository=TRAINING_IMAGE_REPOSITORY,
    tag=PROCESSING_IMAGE_TAG,
    tag_aliases=(
        "2.8.0-cpu-py312-ubuntu22.04-sagemaker",
        "2.8-cpu-py312-ubuntu22.04-sagemaker-v1",
        "2.8-cpu-py312",
    ),
    python_version="3.12.10",
    torch_version="2.8.0",
    torchvision_version="0.23.0",
    modules=_modules(
        _TRAINING_COMMON, _TRAINING_PYTORCH, _TRAINING_SAGEMAKER,
        _TORCH_REQUIRES, _TORCHVISION_REQUIRES, _BOTO3_REQUIRES, _TRAINING_TOOLKIT_REQUIRES,
        _WELL_KNOWN_REQUIRES, _TRAINING_WELL_KNOWN_REQUIRES,
    ),
    sources=(
        *_TRAINING_SOURCES,
        f"docs/src/data/pytorch-training/2.8-cpu-sagemaker.yml (at {DLC_DOCS_COMMIT})",
    ),
)
INFERENCE_CPU = ContainerImage(
    repository=INFERENCE_IMAGE_REPOSITORY,
    tag=INFERENCE_IMAGE_TAG,
    tag_aliases=(
        "2.6.0-cpu-py312-ubuntu22.04-sagemaker",
        "2.6-cpu-py312-ubuntu22.04-sagemaker-v1",
        "2.6-cpu-py312",
    ),
    python_version="3.12.12",
    torch_version="2.6.0",
    torchvision_version="0.21.0",
    modules=_modules(
        _INFERENCE, _TORCH_REQUIRES, _TORCHVISION_REQUIRES, _BOTO3_REQUIRES,
        _INFERENCE_TOOLKIT_REQUIRES, _WELL_KNOWN_REQUIRES,
    ),
    sources=(
        "pytorch/inference/buildspec-2-6-sm.yml",
        "pytorch/inference/docker/2.6/py3/Dockerfile.cpu",
        "pytorch/inference/docker/2.6/py3/Dockerfile.sagemaker.cpu.core_packages.json",
        f"docs/src/data/pytorch-inference/2.6-cpu-sagemaker.yml (at {DLC_DOCS_COMMIT})",
        f"github.com/pytorch/serve requirements/common.txt and setup.py (at {TORCHSERVE_COMMIT})",
    ),
)

IMAGES: dict[str, ContainerImage] = {
    image.name: image for image in (TRAINING_GPU, PROCESSING_CPU, INFERENCE_CPU)
}


def parse_image_uri(image_uri: str) -> tuple[str, str]:
    """``[registry/]repository:tag`` -> (repository name, tag); the registry and path are dropped."""
    last = image_uri.strip().rsplit("/", 1)[-1]
    if "@" in last or ":" not in last:
        raise ValueError(f"{image_uri!r} is not REPOSITORY:TAG (digests cannot be matched to a tag)")
    repository, _, tag = last.partition(":")
    return repository, tag


def find_image(image_uri: str) -> ContainerImage | None:
    """The inventory entry for an image URI (any registry; tag or published alias), or None."""
    try:
        repository, tag = parse_image_uri(image_uri)
    except ValueError:
        return None
    for image in IMAGES.values():
        if image.repository == repository and tag in (image.tag, *image.tag_aliases):
            return image
    return None


# Which AWS account publishes the PyTorch images in each region: the sagemaker SDK ships the table,
# and reading it needs neither the SDK's import (seconds) nor the CDK.
@cache
def pytorch_registry_accounts() -> dict[str, str]:
    """Region -> account id of AWS's PyTorch DLC registry, from the SDK's bundled image config."""
    # find_spec locates the package without importing it (importing sagemaker costs seconds).
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or spec.origin is None:
        raise RuntimeError("the sagemaker package is not installed; run `make setup`")
    config_path = Path(spec.origin).parent / "image_uri_config" / "pytorch.json"
    config = json.loads(config_path.read_text())
    accounts: dict[str, str] = {}
    for scope in ("training", "inference"):
        versions = config[scope]["versions"]
        # Newest first: early 1.x images lived in other accounts than today's DLC registries.
        for key in sorted(versions, key=_version_key, reverse=True):
            for region, account in versions[key].get("registries", {}).items():
                accounts.setdefault(region, account)
    return dict(sorted(accounts.items()))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
