"""Scale: preprocess and one training epoch at growing dataset sizes; memory must stay flat.

For each size N: N distinct small JPEGs (a pool of generated pictures, each file made distinct by
bytes after the JPEG end marker, so every file is decoded and none is a duplicate), then
preprocess.py (2 workers); one epoch of train.py's data path in both cache modes (resident:
load_cache + indexed batches; stream: StreamingCache), each batch through DeviceAugment, no model;
and, up to --train-max images (a CPU epoch of a real backbone is slow), one epoch of train.py
itself in both modes. Each is a subprocess whose process tree's anonymous memory (Pss_Anon) is sampled every
0.1 s. Also the model-only rate (the same model on synthetic tensors), for end-to-end /
model-only per path.

    python bench/bench_scale.py --sizes 5000 20000 100000

Prints a markdown table (paste it into bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONTAINER = REPO / "pipeline_code" / "container"

from dogbreeds.sample_data import BREEDS, generate  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--breeds", type=int, default=len(BREEDS))
    parser.add_argument("--pool", type=int, default=4, help="generated pictures per breed")
    parser.add_argument("--size", type=int, default=64, help="picture side, pixels")
    parser.add_argument("--cache-size", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--shard-size", type=int, default=2048)
    parser.add_argument("--train-max", type=int, default=None,
                        help="time training only for sizes up to this (a CPU epoch is slow)")
    parser.add_argument("--work-dir", type=Path, default=None)
    return parser.parse_args()


def tree_rss(pid: int) -> int:
    """Anonymous resident bytes, proportionally shared (Pss_Anon: a page shared by k processes
    counts 1/k), of a process and all its descendants: the heap, arrays and tensors. Forked decode
    workers share the parent's pages, which plain RSS would count once per worker; shared
    libraries (whose Pss moves with whatever else maps the same files on the machine) and the
    page cache behind memory-mapped shards (reclaimable) are left out."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss_Anon:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(current, [])
    return total


def measured(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak tree RSS bytes, output) of a command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{command[1]} failed:\n{output[-3000:]}")
    return seconds, peak, output


def make_images(out: Path, pool_dir: Path, count: int, breeds: int) -> None:
    folders = sorted(p for p in pool_dir.iterdir() if p.is_dir())
    pictures = {f: sorted(f.iterdir()) for f in folders}
    for n in range(count):
        folder = folders[n % breeds]
        source = pictures[folder][(n // breeds) % len(pictures[folder])]
        target = out / folder.name / f"{n:07d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes() + n.to_bytes(4, "big"))


DATA_PATH_EPOCH = """
import sys, time, torch
sys.path.insert(0, sys.argv[1])
from dogbreeds_jobs.training import data_cache
from dogbreeds_jobs.training.augmentation import DeviceAugment
from dogbreeds_jobs.training.distributed import Dist
from pathlib import Path
cache, mode, batch, image_size = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ctx = Dist(0, 1, 0, torch.device("cpu"))
index = data_cache.read_index(cache)
augment = DeviceAugment(image_size, (0.5,) * 3, (0.25,) * 3, 0.35, ctx.device, False)
start = time.perf_counter()
if mode == "stream":
    data = data_cache.StreamingCache(index, batch, 0, ctx, 4)
    source = data.batches("train", 1)
else:
    data = data_cache.load_cache(cache)
    source = data_cache.train_batches(data, batch, 1, 0, ctx)
seen = 0
for images, labels in source:
    augment.train(images)
    seen += len(labels)
print("SEEN", seen, time.perf_counter() - start)
"""


def model_only_rate(args) -> float:
    import torch

    from pipeline_code.container.dogbreeds_jobs.serving import backbones

    torch.manual_seed(0)
    model = backbones.build_backbone(args.backbone, args.breeds, None)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, args.breeds, (args.batch_size,))
    loss_fn = torch.nn.CrossEntropyLoss()
    for step in range(23):
        if step == 3:
            start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return 20 * args.batch_size / (time.perf_counter() - start)


def main() -> int:
    args = parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    pool = work / "pool"
    if not pool.is_dir():
        generate(pool, breeds=args.breeds, per_breed=args.pool, size=(args.size, args.size),
                 seed=0, odd=False, progress=False)  # fmt: skip
    rows = []
    for count in args.sizes:
        root = work / f"n{count}"
        shutil.rmtree(root, ignore_errors=True)
        make_images(root / "images", pool, count, args.breeds)
        out = {n: root / n for n in ("cache", "test", "baseline", "report")}
        seconds, peak, _ = measured(
            [sys.executable, str(CONTAINER / "preprocess.py"), "--input-dir", str(root / "images"),
             *[a for n, p in out.items() for a in (f"--{n}-dir", str(p))],
             "--resource-config", str(root / "none.json"), "--cache-size", str(args.cache_size),
             "--shard-size", str(args.shard_size), "--workers", "2"],
            env,
        )  # fmt: skip
        manifest = json.loads((out["cache"] / "manifest.json").read_text())
        row = {"images": count, "train": manifest["counts"]["train"],
               "preprocess_s": seconds, "preprocess_peak_mib": peak / 2**20}  # fmt: skip
        shutil.rmtree(root / "images")
        shutil.rmtree(out["test"])
        for mode in ("resident", "stream"):
            seconds, peak, output = measured(
                [sys.executable, "-c", DATA_PATH_EPOCH, str(CONTAINER), str(out["cache"]), mode,
                 str(args.batch_size), str(args.image_size)],
                env,
            )  # fmt: skip
            row.update({f"data_{mode}_s": seconds, f"data_{mode}_peak_mib": peak / 2**20})
        for mode in ("resident", "stream") if not args.train_max or count <= args.train_max else ():
            run = root / f"train-{mode}"
            train_env = dict(env, SM_CHANNEL_TRAIN=str(out["cache"]), SM_MODEL_DIR=str(run / "model"),
                             SM_OUTPUT_DATA_DIR=str(run / "output"))  # fmt: skip
            seconds, peak, output = measured(
                [sys.executable, str(CONTAINER / "train.py"), "--backbone", args.backbone,
                 "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                 "--epochs", "1", "--device", "cpu", "--cache-mode", mode,
                 "--checkpoint-dir", str(run / "checkpoints")],
                train_env,
            )  # fmt: skip
            rate = float(re.search(r"images_per_second=([0-9.]+)", output).group(1))
            row.update({f"{mode}_s": seconds, f"{mode}_peak_mib": peak / 2**20, f"{mode}_rate": rate})
        rows.append(row)
        shutil.rmtree(root)
        print(json.dumps(row), flush=True)
    model_only = model_only_rate(args)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {args.size}x{args.size} JPEGs, {args.breeds} "
          f"classes, cache {args.cache_size} px, {args.backbone} at {args.image_size} px, batch "
          f"{args.batch_size}, CPU\n")  # fmt: skip
    print("| images | train split | preprocess s | preprocess peak MiB | data-path epoch s "
          "resident | peak MiB | data-path epoch s stream | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['images']} | {r['train']} | {r['preprocess_s']:.1f} | "
              f"{r['preprocess_peak_mib']:.0f} | {r['data_resident_s']:.1f} | "
              f"{r['data_resident_peak_mib']:.0f} | {r['data_stream_s']:.1f} | "
              f"{r['data_stream_peak_mib']:.0f} |")
    print("\n| images | train.py epoch s resident | peak MiB | train.py epoch s stream | peak MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        keys = ("resident_s", "resident_peak_mib", "stream_s", "stream_peak_mib")
        if "resident_s" not in r:
            continue
        cells = [f"{r[k]:.1f}" if k.endswith("_s") else f"{r[k]:.0f}" for k in keys]
        print(f"| {r['images']} | {' | '.join(cells)} |")
    print(f"\nmodel-only (synthetic tensors): {model_only:.1f} images/s")
    for r in (r for r in rows if "stream_rate" in r):
        print(f"N={r['images']}: end-to-end / model-only: resident "
              f"{r['resident_rate'] / model_only:.2f}, stream {r['stream_rate'] / model_only:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
