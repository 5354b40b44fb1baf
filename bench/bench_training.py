"""Training throughput: our data path against the model alone and against the seed's data path.

Three rates, images per second, on one device:

* model-only: train steps on synthetic, already-normalised tensors resident on the device: the
  ceiling any data path can reach with this model, batch and precision;
* end-to-end: the training job's own epoch function on preprocess's uint8 cache (cache resident on the
  device, crop/flip/normalise on the device, AMP and channels_last where the device has them);
* seed-style: what the seed system did: PIL decode + RandomResizedCrop + flip + ToTensor +
  Normalize every epoch in DataLoader workers, fp32, batch 32.

Targets (GPU): end-to-end >= 0.85 x model-only and >= 10 x seed-style.

    python bench/bench_training.py --device cuda          # H100/H200: defaults are the real sizes
    python bench/bench_training.py --device cpu --small   # what a laptop CPU can do in minutes

Prints a markdown table (paste it into bench/results/).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402

from dogbreeds.sample_data import generate  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.data import preprocess  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.serving import backbones  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.training import data_cache, network  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.training.augmentation import DeviceAugment  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.training.distributed import Dist  # noqa: E402
from pipeline_code.container.dogbreeds_jobs.training.loop import (  # noqa: E402
    LoopSetup,
    train_one_epoch,
    train_step,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--small", action="store_true", help="CPU-sized run (64 px, few steps)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cache-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256, help="ours and model-only")
    parser.add_argument("--seed-batch-size", type=int, default=32)
    parser.add_argument("--seed-workers", type=int, default=4)
    parser.add_argument("--photos", type=int, default=1024, help="generated 500x375 JPEGs")
    parser.add_argument("--train-images", type=int, default=16384, help="cache tiled to this")
    parser.add_argument("--steps", type=int, default=40, help="timed steps, model-only/seed")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    if args.small:
        args.image_size, args.cache_size, args.batch_size = 64, 72, 32
        args.photos, args.train_images, args.steps = 256, 512, 10
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare_data(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """Generated photo-sized JPEGs (so decoding costs what a real photo costs), then the cache."""
    images = work / "images"
    if not images.exists():
        generate(images, breeds=8, per_breed=args.photos // 8, size=(500, 375), seed=0,
                 odd=False, progress=False)  # fmt: skip
    cache = work / f"cache-{args.cache_size}"
    if not (cache / "manifest.json").exists():
        preprocess.run(
            SimpleNamespace(
                input_dir=images, cache_dir=cache, test_dir=work / "test",
                baseline_dir=work / "baseline", report_dir=work / "report",
                resource_config=work / "none.json", train_fraction=0.9,
                validation_fraction=0.1, test_fraction=0.0, seed=0,
                cache_size=args.cache_size, shard_size=4096, workers=0,
                processing_instance_type="", training_instance_type="",
                training_instance_count=1, volume_size_gb=30,
            )
        )  # fmt: skip
    return images, cache


def make_model(args: argparse.Namespace, classes: int, device: torch.device) -> nn.Module:
    model = backbones.build_backbone(args.backbone, classes).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def loop_setup(args, model: nn.Module, steps: int, device: torch.device, amp_dtype) -> LoopSetup:  # noqa: ANN001
    """What the job's loop needs, with the job's optimizer, schedule and scaler choice."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    spec = backbones.backbone_spec(args.backbone)
    return LoopSetup(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=steps),
        scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
        criterion=nn.CrossEntropyLoss(),
        augment=DeviceAugment(args.image_size, spec.mean, spec.std, 0.35, device, device.type == "cuda"),
        amp_dtype=amp_dtype,
        ctx=Dist(0, 1, 0, device),
        batch_size=args.batch_size,
    )


def model_only(args, classes: int, device: torch.device, amp_dtype) -> float:  # noqa: ANN001
    """The job's own train step on inputs that need no data path at all."""
    model = make_model(args, classes, device).train()
    setup = loop_setup(args, model, args.steps + 3, device, amp_dtype)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, classes, (args.batch_size,), device=device)

    for _ in range(3):
        train_step(setup, x, y)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(setup, x, y)
    synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def end_to_end(args, cache: Path, device: torch.device, amp_dtype) -> tuple[float, int, bool]:  # noqa: ANN001
    data = data_cache.load_cache(cache)
    repeat = max(1, args.train_images // len(data.train_labels))
    data.train_images = data.train_images.repeat(repeat, 1, 1, 1)
    data.train_labels = data.train_labels.repeat(repeat)
    ctx = Dist(0, 1, 0, device)
    on_device = data_cache.place_cache(data, "auto", ctx)
    model = make_model(args, len(data.classes), device)
    steps = data_cache.steps_per_epoch(data, args.batch_size, 0, ctx)
    setup = loop_setup(args, model, steps * 2, device, amp_dtype)
    train_one_epoch(setup, data, 1)  # warm-up epoch
    metrics = train_one_epoch(setup, data, 2)
    return metrics["images_per_second"], len(data.train_labels), on_device


class SeedStyleFolder(Dataset):
    """The seed's input pipeline: decode and transform every file on every epoch, in workers."""

    def __init__(self, root: Path, image_size: int) -> None:
        self.files = sorted(p for p in root.rglob("*.jpg"))
        classes = sorted({p.parent.name for p in self.files})
        self.labels = [classes.index(p.parent.name) for p in self.files]
        self.transform = transforms.Compose(
            [
                transforms.RandomResizedCrop(image_size),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(backbones.IMAGENET_MEAN, backbones.IMAGENET_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), self.labels[index]


def seed_style(args, images: Path, device: torch.device) -> float:  # noqa: ANN001
    dataset = SeedStyleFolder(images, args.image_size)
    loader = DataLoader(dataset, batch_size=args.seed_batch_size, shuffle=True,
                        num_workers=args.seed_workers, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=args.seed_workers > 0)  # fmt: skip
    model = backbones.build_backbone(args.backbone, 8).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    done = 0
    warmup = 3
    start = None
    while done < args.steps + warmup:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == warmup:
                synchronize(device)
                start = time.perf_counter()
            if done >= args.steps + warmup:
                break
    synchronize(device)
    return args.steps * args.seed_batch_size / (time.perf_counter() - start)


def main() -> int:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench: --device cuda but no CUDA device; use --device cpu --small")
    amp_dtype, _ = network.choose_precision(args.precision, device)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        images, cache = prepare_data(args, work)
        classes = 8
        rate_model = model_only(args, classes, device, amp_dtype)
        rate_ours, n_images, on_device = end_to_end(args, cache, device, amp_dtype)
        rate_seed = seed_style(args, images, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    precision = network.PRECISION_NAMES[amp_dtype]
    print(
        f"\nDevice: {name or platform.machine()} ({device.type}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads; {args.backbone} at {args.image_size} px; "
        f"cache {args.cache_size} px, {n_images} images, resident on device: {on_device}\n"
    )
    print("| path | batch | precision | images/s | vs model-only | vs seed-style |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("model-only (synthetic tensors on device)", args.batch_size, precision, rate_model),
        ("end-to-end (uint8 cache, device augment)", args.batch_size, precision, rate_ours),
        (f"seed-style (PIL per epoch, {args.seed_workers} workers)", args.seed_batch_size,
         "fp32", rate_seed),
    ]  # fmt: skip
    for label, batch, prec, rate in rows:
        print(f"| {label} | {batch} | {prec} | {rate:,.1f} | {rate / rate_model:.2f} | "
              f"{rate / rate_seed:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
