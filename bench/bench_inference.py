"""Inference latency at batch 1: serving handler against the bare forward and the seed handler.

For a 500x375 and a 1414x943 JPEG, times per request (p50/p99 over ``--iterations``):

* ``forward``: the network alone on a ready 1x3xSxS tensor (the floor any handler pays);
* ``handler``: ``input_fn`` + ``predict_fn`` + ``output_fn`` from the artifact's own
  ``code/inference.py`` (decode with JPEG draft scaling, resize, normalise, forward, JSON);
* ``seed``: the seed system's handler: full PIL decode, ``Resize((S, S))`` of the full image,
  ``ToTensor``, ``Normalize``, fp32 eager forward, JSON.

Targets: handler <= 1.15x forward, and handler >= 1.2x faster than seed.
Weights are random: latency does not depend on their values. Run:

    OMP_NUM_THREADS=2 python bench/bench_inference.py --out bench/results/inference-cpu.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from dogbreeds import sample_data  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.serving import backbones, model_artifact, serving_handlers  # noqa: E402

SIZES = ((500, 375), (1414, 943))


def photo_like_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A generated picture with shapes, texture and noise, saved as a quality-90 JPEG."""
    rng = np.random.default_rng(seed)
    picture = sample_data.render_image(sample_data.breed_style(3, 10), width, height, rng)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def timed_interleaved(
    variants: dict[str, Callable[[], object]],
    iterations: int,
    warmup: int,
    sync: Callable[[], None],
) -> dict[str, tuple[float, float]]:
    """p50/p99 ms per variant, running the variants in turn each iteration so that load from
    other processes on a shared machine hits them all alike and the ratios stay fair."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(iterations):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append((time.perf_counter() - start) * 1000.0)
    return {name: percentiles(values) for name, values in samples.items()}


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (
        f"{cpu}, {os.cpu_count()} logical CPUs visible, torch {torch.__version__} "
        f"with {torch.get_num_threads()} intra-op threads, Python {platform.python_version()}"
    )
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--classes", type=int, default=133, help="head size (the seed had 133)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    spec = backbones.backbone_spec(args.backbone)
    classes = [f"breed_{i:03d}" for i in range(args.classes)]
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as scratch:
        model_dir = model_artifact.write_model_dir(
            Path(scratch) / "model",
            backbones.build_backbone(args.backbone, len(classes)),
            classes,
            {"backbone": args.backbone, "image_size": args.image_size, "mean": list(spec.mean),
             "std": list(spec.std), "model_version": "bench"},
        )  # fmt: skip
        service = serving_handlers.HandlerService(model_dir)
        # The seed served the plain eager fp32 network: load it the plain way.
        eager = model_artifact.load_model(model_dir, service.model.device).module.eval()
    handler, model = service.module, service.model
    device = model.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    size = args.image_size

    from torchvision import transforms  # the seed's preprocessing

    seed_transform = transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(),
         transforms.Normalize(spec.mean, spec.std)]
    )  # fmt: skip

    def seed_handler(body: bytes) -> str:
        image = Image.open(io.BytesIO(body)).convert("RGB")
        batch = seed_transform(image).unsqueeze(0).to(device)
        with torch.no_grad():
            probabilities = torch.softmax(eager(batch), dim=1)
        top_p, top_i = probabilities.topk(5, dim=1)
        return json.dumps([[classes[i], p] for i, p in zip(top_i[0].tolist(), top_p[0].tolist(),
                                                           strict=True)])  # fmt: skip

    def serving_handler(body: bytes) -> object:
        data = handler.input_fn(body, "image/jpeg")
        return handler.output_fn(handler.predict_fn(data, model), "application/json")

    ready = torch.randn(1, 3, size, size, device=device)
    ready_channels_last = ready.contiguous(memory_format=torch.channels_last)

    def forward() -> object:  # the network the handler runs (fused, channels_last)
        with torch.inference_mode():
            return model.module(ready_channels_last)

    def eager_forward() -> object:  # the seed's network: eager fp32, NCHW
        with torch.no_grad():
            return eager(ready)

    rows = []
    for width, height in SIZES:
        body = photo_like_jpeg(width, height)
        timings = timed_interleaved(
            {
                "forward": forward,
                "eager": eager_forward,
                "handler": lambda b=body: serving_handler(b),
                "seed": lambda b=body: seed_handler(b),
            },
            args.iterations,
            args.warmup,
            sync,
        )
        forward_p, eager_p = timings["forward"], timings["eager"]
        handler_p, seed_p = timings["handler"], timings["seed"]
        rows.append((f"{width}x{height}", len(body), forward_p, eager_p, handler_p, seed_p))
        print(f"{width}x{height}: forward p50 {forward_p[0]:.2f} ms, handler p50 "
              f"{handler_p[0]:.2f} ms, seed p50 {seed_p[0]:.2f} ms", flush=True)  # fmt: skip

    lines = [
        f"# Inference latency, batch 1 ({device.type})",
        "",
        f"Machine: {machine_description(device)}.",
        f"Model: {args.backbone}, {args.classes} classes, {size} px input, fp32, random weights; "
        f"{args.iterations} timed requests after {args.warmup} warm-up, per image and variant, "
        "the variants taking turns request by request.",
        f"Load average at the end: {os.getloadavg()[0]:.2f} (the machine may be shared).",
        "",
        "| image | JPEG bytes | forward p50 / p99 ms | eager forward p50 / p99 ms "
        "| handler p50 / p99 ms | seed p50 / p99 ms | handler / forward | handler / eager forward "
        "| seed / handler |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, nbytes, fwd, eag, hnd, seed in rows:
        lines.append(
            f"| {name} | {nbytes} | {fwd[0]:.2f} / {fwd[1]:.2f} | {eag[0]:.2f} / {eag[1]:.2f} "
            f"| {hnd[0]:.2f} / {hnd[1]:.2f} | {seed[0]:.2f} / {seed[1]:.2f} "
            f"| {hnd[0] / fwd[0]:.3f} | {hnd[0] / eag[0]:.3f} | {seed[0] / hnd[0]:.2f} |"
        )
    lines += [
        "",
        "Ratios are of p50s. forward = the network the handler runs (BatchNorm folded, "
        "channels_last); eager forward = the seed's plain fp32 NCHW network.",
        "Targets: handler / forward <= 1.15 and seed / handler >= 1.2.",
        "",
        "Command: `python bench/bench_inference.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
