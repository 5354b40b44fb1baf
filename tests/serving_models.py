"""Shared helpers for the serving tests: a tiny really-trained model and a real local server.

Kept small on purpose (32 px inputs, resnet18, a few classes, a handful of steps): the
point is that real images are decoded, a real network is trained and saved through
``model_artifact.write_model_dir``, and the server is a real subprocess speaking HTTP.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from repo_paths import REPO_ROOT

from dogbreeds import sample_data
from pipeline_code.container.dogbreeds_jobs.data import image_decoding
from pipeline_code.container.dogbreeds_jobs.serving import backbones, inference, model_artifact

BACKBONE = "resnet18"
IMAGE_SIZE = 32


def subprocess_env() -> dict[str, str]:
    """Child-process environment: this worktree importable, one thread each (2 shared cores)."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def write_dataset(root: Path, *, breeds: int = 3, per_breed: int = 8, seed: int = 7) -> Path:
    """A generated ImageFolder tree (plain class names, no broken files)."""
    sample_data.generate(
        root, breeds=breeds, per_breed=per_breed, size=(48, 40), seed=seed, progress=False
    )
    return root


def image_files(root: Path) -> list[tuple[Path, str]]:
    """(file, class folder) pairs in a stable order."""
    return [
        (path, folder.name)
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(folder.iterdir())
    ]


def train_tiny_model(data_dir: Path, model_dir: Path, *, epochs: int = 10, seed: int = 0) -> Path:
    """Train resnet18 at 32 px on ``data_dir`` for a few epochs and write the artifact.

    Inputs go through the serving transform (``inference.preprocess``), so what the network
    learns is what the handler feeds it.
    """
    torch.manual_seed(seed)
    files = image_files(data_dir)
    classes = sorted({label for _, label in files})
    spec = backbones.backbone_spec(BACKBONE)
    images = torch.stack(
        [
            inference.preprocess(
                image_decoding.decode_image(path.read_bytes()).image,
                IMAGE_SIZE,
                spec.mean,
                spec.std,
            )
            for path, _ in files
        ]
    )
    labels = torch.tensor([classes.index(label) for _, label in files])
    model = backbones.build_backbone(BACKBONE, len(classes))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(order), 8):
            index = order[start : start + 8]
            if len(index) < 2:  # BatchNorm needs two samples in train mode
                continue
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            optimiser.step()
    model.eval()
    metadata = {
        "backbone": BACKBONE,
        "image_size": IMAGE_SIZE,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "model_version": "tiny-test-1",
    }
    return model_artifact.write_model_dir(model_dir, model, classes, metadata)


def pack_model(model_dir: Path, archive: Path) -> Path:
    """``model.tar.gz`` with the directory's contents at its root, as SageMaker packs it."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    return archive


def register_version(
    workdir: Path,
    archive: Path,
    environment: dict[str, str],
    *,
    group: str = "dogbreeds-test-models",
    approval_status: str = "Approved",
) -> dict:
    """Put ``archive`` in the workdir's local S3 and register it as the training pipeline does:
    one container with its image, ModelDataUrl and Environment."""
    from dogbreeds.local_registry import LocalModelRegistry

    key = f"models/{archive.parent.name}/{len(list((workdir / 's3').rglob('*.tar.gz')))}/model.tar.gz"
    uri = f"s3://dogbreeds-local/{key}"
    target = workdir / "s3" / "dogbreeds-local" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(archive.read_bytes())
    return LocalModelRegistry(workdir).register(
        group=group,
        model_data_url=uri,
        approval_status=approval_status,
        inference_specification={
            "Containers": [
                {
                    "Image": "local.dkr.ecr.local.amazonaws.com/pytorch-inference:2.6.0-cpu-py312",
                    "ModelDataUrl": uri,
                    "Environment": environment,
                    "Framework": "PYTORCH",
                    "FrameworkVersion": "2.6.0",
                }
            ],
            "SupportedContentTypes": list(inference.SUPPORTED_CONTENT_TYPES),
            "SupportedResponseMIMETypes": [inference.JSON],
        },
    )


@dataclass
class RunningServer:
    """A `dogbreeds local serve` subprocess and what it printed at start-up."""

    process: subprocess.Popen
    url: str
    startup: dict

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        """Send ``sig`` and wait; returns (exit code, rest of stdout)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out


def start_server(model: Path | None, *extra: str, timeout: float = 60.0) -> RunningServer:
    """Start the server on a free loopback port (``--port 0``) and wait for its start-up line.

    ``model`` is passed as ``--model``; with None, ``extra`` says what to serve (``--version``).
    """
    source = ["--model", str(model)] if model is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "dogbreeds", "local", "serve", *source, "--port", "0", *extra],
        cwd=REPO_ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines = []
    # The first line is JSON with the URL; anything before it (warnings) is kept for the error.
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith("{"):
            startup = json.loads(line)
            return RunningServer(process=process, url=startup["url"], startup=startup)
        if len(lines) > 200:
            break
    process.kill()
    raise RuntimeError("server did not start:\n" + "".join(lines) + (process.stdout.read() or ""))


def png_bomb_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR announcing a huge image, with almost no data behind it."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def truncated_archive(path: Path) -> Path:
    """A model.tar.gz cut in half, as a full disk or a killed copy leaves it."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        data = random.Random(0).randbytes(200_000)  # incompressible, so the cut lands mid-member
        member = tarfile.TarInfo("model.pt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload.getvalue()[: len(payload.getvalue()) // 2])
    return path

