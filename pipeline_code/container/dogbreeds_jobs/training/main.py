"""Training job: fine-tune a backbone on preprocess's uint8 cache; write the model directory.

Run by SageMaker's PyTorch estimator (``source_dir`` = the code bundle, entry point ``train.py``,
which calls ``main`` here), alone or under torchrun (what the ``torch_distributed`` distribution
launches), and the same way by the local executor. The structure follows torchvision's
references/classification/train.py: plain argparse, one function per phase, distributed set-up in
one place.

Why it is fast: the cache is decoded once by preprocess and stays resident on the GPU when it
fits; random-resized-crop, flip and normalisation run on the device in one batched op
(``torchvision.ops.roi_align``); bf16 autocast (fp16 + GradScaler on GPUs without bf16) and
channels_last. The seed's per-epoch PIL decoding in DataLoader workers is gone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..serving import backbones, model_artifact
from . import checkpoints, data_cache, distributed, network
from .augmentation import DeviceAugment
from .checkpoints import TrainState
from .data_cache import Cache
from .distributed import Dist, log
from .errors import TrainingError
from .loop import LoopSetup, evaluate, metric_line, train_one_epoch

# ---- arguments ----------------------------------------------------------------------------------


def str2bool(text: str) -> bool:
    """SageMaker passes every hyperparameter as a string, so booleans arrive as "true"/"false"."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Fine-tune an image classifier on the cache.")
    # Paths: SageMaker's environment variables, with the container paths as fall-backs.
    parser.add_argument(
        "--train", type=Path, default=Path(env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=env("SM_CHANNEL_WEIGHTS"),
        help="pretrained weights channel (a folder) or file",
    )
    parser.add_argument("--weights-file", default="", help="file name inside the weights channel")
    parser.add_argument("--model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument(
        "--output-data-dir",
        type=Path,
        default=Path(env("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
    )
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("/opt/ml/checkpoints"))
    # Model and optimisation.
    parser.add_argument(
        "--backbone",
        default=backbones.DEFAULT_BACKBONE,
        help=f"one of {', '.join(sorted(backbones.BACKBONES))}",
    )
    parser.add_argument("--fine-tune", choices=("all", "head"), default="all")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--min-crop-scale",
        type=float,
        default=0.35,
        help="random resized crop: smallest area share",
    )
    parser.add_argument(
        "--patience", type=int, default=3, help="epochs without val accuracy gain before stopping"
    )
    parser.add_argument("--min-delta", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    # Speed knobs.
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto")
    parser.add_argument("--channels-last", type=str2bool, default=True)
    parser.add_argument("--cache-on-device", choices=("auto", "true", "false"), default="auto")
    parser.add_argument(
        "--cache-mode",
        choices=("auto", "resident", "stream"),
        default="auto",
        help="resident: the whole cache in (GPU or host) memory; stream: shards read from local "
        "disk as training goes, memory not growing with the dataset; auto: resident when it fits",
    )
    parser.add_argument("--prefetch-batches", type=int, default=4, help="streamed batches read ahead")
    parser.add_argument("--compile", type=str2bool, default=False, help="torch.compile the model")
    args = parser.parse_args(argv)
    validate_args(args, parser)
    return args


def validate_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.backbone not in backbones.BACKBONES:
        parser.error(
            f"--backbone {args.backbone!r} is unknown; allowed: {', '.join(sorted(backbones.BACKBONES))}"
        )
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.05 <= args.min_crop_scale <= 1.0:
        parser.error("--min-crop-scale must be between 0.05 and 1")
    if not args.train.is_dir():
        parser.error(f"training channel {args.train} is not a directory (SM_CHANNEL_TRAIN)")


# ---- the job ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    ctx = distributed.setup_distributed(args.device)
    torch.manual_seed(args.seed)  # identical initial heads on every rank
    try:
        return _run(args, ctx)
    finally:
        distributed.shutdown_distributed(ctx)


def _run(args: argparse.Namespace, ctx: Dist) -> dict[str, Any]:
    data, on_device = open_cache(args, ctx)
    describe_data(data, ctx)
    spec = backbones.backbone_spec(args.backbone)
    weights_path = network.find_weights_file(args.weights, args.weights_file)
    model = network.build_model(
        args.backbone,
        len(data.classes),
        weights_path,
        ctx,
        fine_tune=args.fine_tune,
        channels_last=args.channels_last,
    )
    setup = build_loop_setup(args, model, data, spec, ctx)
    state = train_epochs(args, model, setup, data, run_identity(args, data, ctx))
    distributed.barrier(ctx)  # best.pt is complete before anyone reads it

    result = {
        "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_accuracy,
        "epochs_run": state.epoch,
        "history": [{k: finite_or_none(v) for k, v in h.items()} for h in state.history],
    }
    if ctx.is_main:
        checkpoints.load_best(args.checkpoint_dir / checkpoints.CHECKPOINT_BEST, model)
        metadata = build_metadata(args, data, spec, state, weights_path, ctx, setup.amp_dtype, on_device)
        model_artifact.write_model_dir(args.model_dir, model, data.classes, metadata)
        args.output_data_dir.mkdir(parents=True, exist_ok=True)
        (args.output_data_dir / "history.json").write_text(json.dumps(result, indent=1) + "\n")
        log(
            ctx,
            f"train: best val_accuracy={state.best_accuracy:.6f} at epoch "
            f"{state.best_epoch}; model written to {args.model_dir}",
        )
    return result


def open_cache(args: argparse.Namespace, ctx: Dist) -> tuple[Cache, bool]:
    """The cache, resident or streamed; and whether it sits on the GPU."""
    index = data_cache.read_index(args.train)
    cache_mode = data_cache.choose_cache_mode(args.cache_mode, args.cache_on_device, index, ctx)
    log(ctx, f"train: cache of {index.nbytes() / 2**30:.2f} GiB: {cache_mode}")
    if cache_mode == "stream":
        data = data_cache.StreamingCache(index, args.batch_size, args.seed, ctx, args.prefetch_batches)
        return data, False
    # Filled shard by shard where it will live: a GPU-resident cache never passes through host
    # memory whole.
    on_device = data_cache.cache_fits_device(args.cache_on_device, index, ctx)
    data = data_cache.load_cache(args.train, ctx.device if on_device else None)
    where = ctx.device if on_device else "host memory"
    log(ctx, f"train: cache of {index.nbytes() / 2**30:.2f} GiB is resident in {where}")
    return data, on_device


def describe_data(data: Cache, ctx: Dist) -> None:
    log(
        ctx,
        f"train: {data_cache.train_count(data)} train / {data_cache.val_count(data)} validation "
        f"images, {len(data.classes)} classes, cache {data.cache_size}px, "
        f"{ctx.world_size} process(es) on {ctx.device.type}",
    )
    if data_cache.val_count(data) == 0:
        log(
            ctx,
            "train: WARNING no validation images; early stopping and best-checkpoint "
            "selection use train accuracy",
        )


def build_loop_setup(
    args: argparse.Namespace, model: nn.Module, data: Cache, spec: backbones.BackboneSpec, ctx: Dist
) -> LoopSetup:
    """Wrappers (DDP, compile), optimizer, one-cycle schedule, precision and device augmentation."""
    amp_dtype, needs_scaler = network.choose_precision(args.precision, ctx.device)
    trained = model
    if ctx.world_size > 1:
        device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
        trained = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if args.compile:
        trained = torch.compile(trained)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)
    steps = data_cache.steps_per_epoch(data, args.batch_size, args.seed, ctx)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=max(1, steps * args.epochs), pct_start=0.15
    )
    return LoopSetup(
        model=trained,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda") if needs_scaler else None,
        criterion=nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
        augment=DeviceAugment(
            args.image_size,
            spec.mean,
            spec.std,
            args.min_crop_scale,
            ctx.device,
            args.channels_last and ctx.device.type == "cuda",
        ),
        amp_dtype=amp_dtype,
        ctx=ctx,
        batch_size=args.batch_size,
        seed=args.seed,
        fine_tune=args.fine_tune,
    )


def run_identity(args: argparse.Namespace, data: Cache, ctx: Dist) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: anything else changes what the epochs mean."""
    return {
        "backbone": args.backbone,
        "classes": data.classes,
        "fingerprint": data.fingerprint,
        "image_size": args.image_size,
        "fine_tune": args.fine_tune,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "world_size": ctx.world_size,
    }


def train_epochs(
    args: argparse.Namespace, model: nn.Module, setup: LoopSetup, data: Cache, identity: dict[str, Any]
) -> TrainState:
    """Resume if a checkpoint of this run exists, then train until the epochs or patience run out."""
    ctx = setup.ctx
    last_path = args.checkpoint_dir / checkpoints.CHECKPOINT_LAST
    best_path = args.checkpoint_dir / checkpoints.CHECKPOINT_BEST
    state = checkpoints.try_resume(
        last_path, model, setup.optimizer, setup.scheduler, setup.scaler, identity, ctx
    )
    # A job restarted after it had already stopped early (e.g. a spot interruption while writing
    # the model) must not train on past the stop.
    first_epoch = args.epochs + 1 if state.epochs_without_gain >= args.patience else state.epoch + 1
    has_validation = data_cache.val_count(data) > 0

    for epoch in range(first_epoch, args.epochs + 1):
        metrics = train_one_epoch(setup, data, epoch)
        metrics.update(evaluate(model, setup, data))
        score = metrics["val_accuracy"] if has_validation else metrics["train_accuracy"]
        state.epoch = epoch
        state.history.append({"epoch": epoch, **metrics})
        if score > state.best_accuracy + args.min_delta:
            state.best_accuracy, state.best_epoch, state.epochs_without_gain = score, epoch, 0
            if ctx.is_main:
                checkpoints.save_best(best_path, model, epoch, identity)
        else:
            state.epochs_without_gain += 1
        if ctx.is_main:
            checkpoints.save_checkpoint(
                last_path, model, setup.optimizer, setup.scheduler, setup.scaler, state, identity
            )
        # Printed after the checkpoint is on disk: a job stopped after this line resumes after it.
        log(ctx, metric_line(epoch, metrics))
        if state.epochs_without_gain >= args.patience:
            log(
                ctx,
                f"train: early stop after epoch {epoch}: no validation accuracy gain "
                f"for {args.patience} epochs",
            )
            break
    return state


def finite_or_none(value: Any) -> Any:
    """NaN (no validation split) becomes null: strict JSON readers reject NaN."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def build_metadata(
    args: argparse.Namespace,
    data: Cache,
    spec: backbones.BackboneSpec,
    state: TrainState,
    weights_path: Path | None,
    ctx: Dist,
    amp_dtype: torch.dtype | None,
    on_device: bool,
) -> dict[str, Any]:
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), {})
    return {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "eval_transform": (
            "resize shorter side to image_size (bilinear, antialiased), centre-crop "
            "image_size x image_size, scale to 0..1, normalise with mean/std"
        ),
        "num_classes": len(data.classes),
        "dataset_fingerprint": data.fingerprint,
        "cache_size": data.cache_size,
        "metrics": {
            "best_epoch": state.best_epoch,
            "val_accuracy": finite_or_none(best.get("val_accuracy")),
            "val_loss": finite_or_none(best.get("val_loss")),
            "train_accuracy": finite_or_none(best.get("train_accuracy")),
            "train_loss": finite_or_none(best.get("train_loss")),
            "epochs_run": state.epoch,
        },
        "training": {
            "fine_tune": args.fine_tune,
            "epochs": args.epochs,
            "batch_size_per_process": args.batch_size,
            "world_size": ctx.world_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "label_smoothing": args.label_smoothing,
            "min_crop_scale": args.min_crop_scale,
            "seed": args.seed,
            "device": ctx.device.type,
            "precision": network.PRECISION_NAMES[amp_dtype],
            "cache_on_device": on_device,
            "cache_mode": "stream" if isinstance(data, data_cache.StreamingCache) else "resident",
            "pretrained_weights": weights_path.name if weights_path else None,
            "torch_version": torch.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """The one place a ``TrainingError`` becomes the job's exit: its message on stderr, status 1."""
    args = parse_args(argv)
    try:
        run(args)
    except TrainingError as error:
        print(f"train: {error}", file=sys.stderr, flush=True)
        return 1
    return 0
