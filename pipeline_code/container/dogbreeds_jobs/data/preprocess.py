"""Processing job: validate an ImageFolder tree, split it, and cache it for fast training.

Reads ``--input-dir/<class folder>/<image>`` and writes:

* ``--cache-dir``: uint8 shards (``<host>-<split>-NNNN.npz`` with ``images`` N x S x S x 3 and
  ``labels``), a manifest and classes.json. Training reads these instead of decoding JPEGs every
  epoch, which is what bounded the seed system's GPU.
* ``--test-dir/<class>/``: the test split's ORIGINAL files, because evaluation sends them through
  the serving handler exactly as production requests arrive.
* ``--baseline-dir``: the training split's image features (features.csv), this host's mergeable
  statistics-partial.json and, with one host, statistics.json / constraints.json, against which
  the data-quality monitor compares live traffic.
* ``--report-dir``: dataset_report.json (counts per class and split, skipped files and why, the
  plan).

First it prints the plan (capacity.py): the dataset's size and what every step needs on the chosen
instance types, and stops (exit 3) naming the setting to change where a step cannot fit. Then it
works in memory that does not grow with the number of images (see ``run``). Every image goes
through ``image_decoding.decode_image``; a file that fails is skipped and counted by reason, never
fatal. Each file's split comes from a hash of (seed, relative path) alone, so it does not depend on
listing order, on which host saw the file or on how many hosts there are.

Several instances (ShardedByS3Key): each host processes only its share and writes host-named files
(``manifest-<host>.json`` etc., see ``output_names``), so nothing collides in the shared S3 prefix;
training reads every manifest and assigns class indices over the union of classes, and
merge_baseline.py merges the hosts' partial statistics and reports exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from contract.instance_types import INSTANCE_TYPES

from . import capacity, image_features
from .class_names import normalise_class_name
from .image_decoding import ImageDecodeError, decode_image

SPLITS = ("train", "validation", "test")
MANIFEST_VERSION = 1
DEFAULT_HOST = "algo-1"


@dataclass(frozen=True, slots=True)
class InputFile:
    """One listed file. Plain strings in slots: a listing of a million files stays small."""

    location: str
    relative: str  # posix path under the input dir: stable across hosts, used for hashing
    class_name: str  # normalised

    @property
    def path(self) -> Path:
        return Path(self.location)


@dataclass
class FileResult:
    """What decoding one file produced; ``array`` is its cache-resolution picture."""

    ok: bool
    reason: str = ""
    message: str = ""
    sha256: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    array: np.ndarray | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--cache-dir", type=Path, default=Path("/opt/ml/processing/cache"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--baseline-dir", type=Path, default=Path("/opt/ml/processing/baseline"))
    parser.add_argument("--report-dir", type=Path, default=Path("/opt/ml/processing/report"))
    parser.add_argument(
        "--resource-config",
        type=Path,
        default=Path("/opt/ml/config/resourceconfig.json"),
        help="SageMaker's host list; absent means one host",
    )
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-size", type=int, default=256, help="side of the square cached images, pixels"
    )
    parser.add_argument("--shard-size", type=int, default=2048, help="images per shard file")
    parser.add_argument(
        "--workers", type=int, default=0, help="decoding processes; 0 = one per CPU, 1 = none"
    )
    # The instances the pipeline's steps run on, for the plan printed (and checked) up front.
    parser.add_argument("--processing-instance-type", default="", help="e.g. ml.m5.xlarge")
    parser.add_argument("--training-instance-type", default="", help="e.g. ml.g4dn.xlarge")
    parser.add_argument("--training-instance-count", type=int, default=1)
    parser.add_argument("--volume-size-gb", type=float, default=capacity.DEFAULT_VOLUME_GIB,
                        help="the jobs' storage volume on types without instance storage")
    args = parser.parse_args(argv)
    validate_args(args, parser)
    return args


def validate_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    fractions = (args.train_fraction, args.validation_fraction, args.test_fraction)
    if any(not 0.0 <= f < 1.0 for f in fractions) or args.train_fraction <= 0:
        parser.error(f"fractions must be in [0, 1) and the train fraction > 0, got {fractions}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        parser.error(f"train + validation + test fractions must sum to 1, got {sum(fractions):g}")
    if args.cache_size < 16:
        parser.error(f"--cache-size must be at least 16 pixels, got {args.cache_size}")
    if args.shard_size < 1:
        parser.error(f"--shard-size must be at least 1, got {args.shard_size}")
    if not args.input_dir.is_dir():
        parser.error(f"--input-dir {args.input_dir} is not a directory")
    for name in ("processing_instance_type", "training_instance_type"):
        value = getattr(args, name)
        if value and value not in INSTANCE_TYPES:
            parser.error(f"--{name.replace('_', '-')} {value!r} is not one of "
                         f"{', '.join(INSTANCE_TYPES)}")  # fmt: skip


# ---- hosts --------------------------------------------------------------------------------------


def read_hosts(resource_config: Path) -> tuple[str, list[str]]:
    """(current host, all hosts) from SageMaker's resourceconfig.json, or one default host."""
    if not resource_config.is_file():
        return DEFAULT_HOST, [DEFAULT_HOST]
    config = json.loads(resource_config.read_text())
    return str(config["current_host"]), sorted(str(h) for h in config["hosts"])


def output_names(host: str, hosts: list[str]) -> dict[str, str]:
    """File names of this host's outputs: the contract's names with one host, host-named with more.

    With ShardedByS3Key every host uploads to the same S3 prefix, so shared names would overwrite
    each other; training reads ``manifest*.json`` either way.
    """
    suffix = "" if len(hosts) == 1 else f"-{host}"
    return {
        "manifest": f"manifest{suffix}.json",
        "classes": f"classes{suffix}.json",
        "features": f"features{suffix}.csv",
        "partial": f"statistics-partial{suffix}.json",
        "statistics": f"statistics{suffix}.json",
        "constraints": f"constraints{suffix}.json",
        "report": f"dataset_report{suffix}.json",
    }


# ---- listing and splitting ----------------------------------------------------------------------


def list_inputs(input_dir: Path) -> tuple[list[InputFile], list[dict[str, str]], dict[str, list]]:
    """Files under class folders; stray files are returned as skipped, merged folders as a map."""
    files: list[InputFile] = []
    skipped: list[dict[str, str]] = []
    folders_by_class: dict[str, list[str]] = defaultdict(list)
    for entry in sorted(input_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            skipped.append(
                _skip(entry.name, "not_in_class_folder", "files must be in a class folder")
            )
            continue
        try:
            class_name = normalise_class_name(entry.name)
        except ValueError as error:
            skipped.append(_skip(entry.name + "/", "bad_class_folder", str(error)))
            continue
        folders_by_class[class_name].append(entry.name)
        for path in sorted(entry.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                relative = path.relative_to(input_dir).as_posix()
                files.append(InputFile(str(path), relative, class_name))
    merged = {name: folders for name, folders in folders_by_class.items() if len(folders) > 1}
    return files, skipped, merged


def _skip(relative: str, reason: str, message: str) -> dict[str, str]:
    return {"path": relative, "reason": reason, "message": message}


def drop_exact_duplicates(
    valid: list[int], files: list, hashes: list[str], skipped: list[dict[str, str]]
) -> list[int]:
    """One file per content hash: the same picture under two paths could otherwise land in train
    and test and inflate the accuracy the pipeline gates on. Copies within a class keep the first
    by path; a picture filed under two breeds has no trustworthy label and is left out entirely.
    (Copies that ShardedByS3Key sends to different hosts are not seen by either.)"""
    by_content: dict[str, list[int]] = defaultdict(list)
    for i in sorted(valid, key=lambda index: files[index].relative):
        by_content[hashes[i]].append(i)
    unique = []
    for copies in by_content.values():
        first = copies[0]
        classes = sorted({files[i].class_name for i in copies})
        if len(classes) > 1:
            for i in copies:
                skipped.append(
                    _skip(
                        files[i].relative,
                        "conflicting_labels",
                        f"the same picture is filed under {', '.join(classes)}",
                    )
                )
            continue
        unique.append(first)
        for i in copies[1:]:
            skipped.append(_skip(files[i].relative, "duplicate", f"same content as {files[first].relative}"))
    return sorted(unique)


def split_order_key(seed: int, relative: str) -> str:
    return hashlib.sha256(f"{seed}:{relative}".encode()).hexdigest()


def split_of(seed: int, relative: str, fractions: dict[str, float]) -> str:
    """A file's split from a hash of (seed, its path) alone: the same whichever host sees it and
    however many hosts there are. ``u`` is uniform in [0, 1): test below the test fraction,
    validation below test + validation, train above; so every class is split in proportion, in
    expectation (a small class may miss a split; the report lists such classes)."""
    u = int(split_order_key(seed, relative)[:16], 16) / 2.0**64
    if u < fractions["test"]:
        return "test"
    if u < fractions["test"] + fractions["validation"]:
        return "validation"
    return "train"


# ---- decoding -----------------------------------------------------------------------------------


def cache_array(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop a square: uint8 (size, size, 3)."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))),
        Image.Resampling.BILINEAR,
        reducing_gap=2.0,
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)


def process_file(job: tuple[str, int]) -> FileResult:
    """Decode one file once: validate it, measure its features, make its cache picture."""
    path, cache_size = job
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return FileResult(ok=False, reason="unreadable", message=str(error))
    digest = hashlib.sha256(data).hexdigest()
    try:
        decoded = decode_image(data)
    except ImageDecodeError as error:
        return FileResult(ok=False, reason=error.reason, message=str(error), sha256=digest)
    return FileResult(
        ok=True,
        sha256=digest,
        features=image_features.compute_features(decoded),
        array=cache_array(decoded.image, cache_size),
    )


def hash_file(path: Path) -> tuple[str, str]:
    """(sha256, "") or ("", why it could not be read); reads in blocks, whatever the file size."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as error:
        return "", str(error)
    return digest.hexdigest(), ""


def bounded_map(function, jobs: Iterable, workers: int, window: int) -> Iterator:
    """``map`` in order, in ``workers`` processes, with at most ``window`` results waiting: a slow
    writer never lets decoded pictures pile up in memory (Executor.map submits everything)."""
    if workers <= 1:
        yield from map(function, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as executor:
        pending: deque = deque()
        for job in jobs:
            pending.append(executor.submit(function, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _progress_interval() -> float:
    # In a job log every refresh is a new line; a terminal can take frequent updates.
    return 0.5 if sys.stdout.isatty() else 15.0


# ---- writing ------------------------------------------------------------------------------------


class ShardWriter:
    """One split's shards, written as pictures arrive: each picture is appended to a scratch file
    and a full shard is streamed from it into an uncompressed .npz, so memory holds one picture
    and one copy buffer, not a shard (a 2048-image shard at 292 px is 0.5 GB)."""

    def __init__(self, cache_dir: Path, scratch: Path, host: str, split: str, shard_size: int,
                 cache_size: int) -> None:  # fmt: skip
        self.cache_dir, self.host, self.split = cache_dir, host, split
        self.shard_size, self.cache_size = shard_size, cache_size
        self.raw_path = scratch / f"{split}.raw"
        self.raw = open(self.raw_path, "wb")  # noqa: SIM115 - closed in close()
        self.labels: list[int] = []
        self.shards: list[dict[str, Any]] = []

    def add(self, picture: np.ndarray, label: int) -> None:
        self.raw.write(np.ascontiguousarray(picture, dtype=np.uint8).tobytes())
        self.labels.append(label)
        if len(self.labels) == self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.labels:
            return
        self.raw.close()
        count = len(self.labels)
        name = f"{self.host}-{self.split}-{len(self.shards):04d}.npz"
        shape = (count, self.cache_size, self.cache_size, 3)
        with zipfile.ZipFile(self.cache_dir / name, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("images.npy", "w", force_zip64=True) as member:
                header = {"descr": "|u1", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(member, header)
                with open(self.raw_path, "rb") as raw:
                    shutil.copyfileobj(raw, member, 1 << 22)
            with zf.open("labels.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(self.labels, dtype=np.int64))
        self.shards.append({"file": name, "split": self.split, "count": count})
        self.labels = []
        self.raw = open(self.raw_path, "wb")  # noqa: SIM115 - truncates for the next shard

    def close(self) -> list[dict[str, Any]]:
        self.flush()
        self.raw.close()
        return self.shards


def copy_test_file(test_dir: Path, item: InputFile) -> str:
    """Copy an original to test_dir/<class>/<name>; returns the copied path under test_dir."""
    target_dir = test_dir / item.class_name
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / item.path.name
    counter = 1
    while target.exists():  # nested folders can repeat a file name within one class
        target = target_dir / f"{item.path.stem}-{counter}{item.path.suffix}"
        counter += 1
    shutil.copyfile(item.path, target)
    return target.relative_to(test_dir).as_posix()


FEATURE_COLUMNS = ["path", "class", *image_features.FEATURE_NAMES]


def read_feature_column(paths: list[Path], name: str) -> Iterator[str]:
    """One column of one or more features tables, streamed."""
    for path in paths:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                yield row[name]


def finish_baseline(baseline_dir: Path, partials: list[dict[str, Any]], tables: list[Path],
                    out_dir: Path) -> dict[str, Any]:  # fmt: skip
    """statistics.json and constraints.json from hosts' partial statistics and features tables
    (preprocess on one host, merge_baseline.py on several: the same code, the same files)."""
    merged = image_features.merge_partials(partials)
    statistics = image_features.finalize_statistics(
        merged, lambda name: read_feature_column(tables, name)
    )
    _write_json(out_dir / "statistics.json", statistics)
    _write_json(out_dir / "constraints.json", image_features.dataset_constraints(statistics))
    return statistics


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")


class Fingerprint:
    """sha256 over (relative path, content hash, split) of every used file, in path order, and the
    settings; fed as files are used (they are used in path order)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())

    def add(self, relative: str, content: str, split: str) -> None:
        self.digest.update(f"{relative}\0{content}\0{split}\n".encode())

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


# ---- the job ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole job; returns the dataset report (also written to --report-dir).

    Memory stays flat in the number of images: files are listed and hashed (a few hundred bytes
    each), then decoded in a bounded window; each picture goes straight to its split's shard
    writer, each test original is copied, each training row goes to features.csv and to the
    streaming statistics. Nothing holds all the pictures or all the feature rows.
    """
    host, hosts = read_hosts(args.resource_config)
    names = output_names(host, hosts)
    fractions = {
        "train": args.train_fraction,
        "validation": args.validation_fraction,
        "test": args.test_fraction,
    }
    print(f"preprocess: host {host} of {len(hosts)}, input {args.input_dir}", flush=True)
    files, skipped, merged_folders = list_inputs(args.input_dir)
    print(f"preprocess: {len(files)} files in {len({f.class_name for f in files})} classes")
    for directory in (args.cache_dir, args.test_dir, args.baseline_dir, args.report_dir):
        directory.mkdir(parents=True, exist_ok=True)
    workers = args.workers or os.cpu_count() or 1
    the_plan = make_plan(args, files, len(hosts), workers)

    # Pass 1: content hashes, so copies are found before anything is written. Per file this keeps
    # its hash and one status byte; flags, not sets of indices, to keep the listing small.
    hashes: list[str] = []
    status = np.zeros(len(files), dtype=np.uint8)  # 0 unreadable, 1 empty, 2 readable, 3 used
    for index, item in enumerate(files):
        digest, error = hash_file(item.path)
        hashes.append(digest)
        if error:
            skipped.append(_skip(item.relative, "unreadable", error))
        else:
            # Empty files are not compared: decoding reports each as "empty".
            status[index] = 2 if os.path.getsize(item.location) > 0 else 1
    readable = np.flatnonzero(status == 2).tolist()
    status[np.asarray(drop_exact_duplicates(readable, files, hashes, skipped), dtype=np.intp)] = 3
    del readable
    used = np.flatnonzero((status == 3) | (status == 1))
    classes = sorted({files[i].class_name for i in used})
    class_index = {name: index for index, name in enumerate(classes)}

    settings = {
        "fractions": fractions,
        "seed": args.seed,
        "cache_size": args.cache_size,
        "manifest_version": MANIFEST_VERSION,
    }
    fingerprint = Fingerprint(settings)
    counts = dict.fromkeys(SPLITS, 0)
    per_class: dict[str, dict[str, int]] = defaultdict(
        lambda: {"train": 0, "validation": 0, "test": 0, "skipped": 0, "left_out": 0}
    )
    skipped_paths = {entry["path"] for entry in skipped}
    for item in files:
        if item.relative in skipped_paths:
            per_class[item.class_name]["skipped"] += 1
    del skipped_paths
    statistics = image_features.StatisticsAccumulator()
    jobs = ((files[i].location, args.cache_size) for i in used)
    with (
        tempfile.TemporaryDirectory(prefix="preprocess-") as scratch,
        open(args.baseline_dir / names["features"], "w", newline="") as table,
    ):
        writers = {
            split: ShardWriter(args.cache_dir, Path(scratch), host, split, args.shard_size,
                               args.cache_size)
            for split in ("train", "validation")
        }  # fmt: skip
        features = csv.DictWriter(table, fieldnames=FEATURE_COLUMNS)
        features.writeheader()
        bar = tqdm(total=len(used), desc="decode", file=sys.stdout,
                   mininterval=_progress_interval())  # fmt: skip
        results = bounded_map(process_file, jobs, workers, window=max(8, workers * 8))
        for index, result in zip(used.tolist(), results, strict=True):
            item = files[index]
            bar.update()
            if not result.ok:
                skipped.append(_skip(item.relative, result.reason, result.message))
                per_class[item.class_name]["skipped"] += 1
                continue
            split = split_of(args.seed, item.relative, fractions)
            counts[split] += 1
            per_class[item.class_name][split] += 1
            fingerprint.add(item.relative, result.sha256, split)
            if split == "test":
                copy_test_file(args.test_dir, item)
                continue
            writers[split].add(result.array, class_index[item.class_name])
            if split == "train":
                row = {"path": item.relative, "class": item.class_name, **result.features}
                features.writerow(row)
                statistics.add(item.relative, row)
        bar.close()
        shards = writers["train"].close() + writers["validation"].close()

    partial = statistics.partial()
    _write_json(args.baseline_dir / names["partial"], partial)
    if len(hosts) == 1:
        finish_baseline(args.baseline_dir, [partial], [args.baseline_dir / names["features"]],
                        args.baseline_dir)  # fmt: skip

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "host": host,
        "hosts": hosts,
        "classes": classes,
        "cache_size": args.cache_size,
        "layout": "NHWC uint8 RGB",
        "shards": shards,
        "counts": counts,
        "settings": settings,
        "fingerprint": fingerprint.hexdigest(),
    }
    _write_json(args.cache_dir / names["manifest"], manifest)
    _write_json(args.cache_dir / names["classes"], classes)

    report = build_report(per_class, skipped, merged_folders)
    report.update({"host": host, "hosts": hosts, "fingerprint": fingerprint.hexdigest(),
                   "settings": settings, "plan": {"lines": the_plan.lines,
                                                  **the_plan.figures}})  # fmt: skip
    for entry in report["classes_missing_from_splits"]:
        print(f"preprocess: WARNING class {entry['class']!r} has no {entry['split']} image "
              "on this host", flush=True)  # fmt: skip
    _write_json(args.report_dir / names["report"], report)
    print(
        f"preprocess: train {counts['train']}, validation {counts['validation']}, "
        f"test {counts['test']} images in {len(classes)} classes; skipped {len(skipped)} "
        f"({dict(Counter(s['reason'] for s in skipped))})",
        flush=True,
    )
    return report


class CapacityError(Exception):
    """A step cannot fit on its instance type; the message says which setting to change."""


def make_plan(args: argparse.Namespace, files: list[InputFile], hosts: int,
              workers: int) -> capacity.Plan:  # fmt: skip
    """Print what every step will need; refuse, before anything is written, where one cannot fit."""
    input_bytes = 0
    for item in files:
        with contextlib.suppress(OSError):  # unreadable files are reported by pass 1
            input_bytes += item.path.stat().st_size
    result = capacity.plan(
        files=len(files),
        input_bytes=input_bytes,
        hosts=hosts,
        cache_size=args.cache_size,
        test_fraction=args.test_fraction,
        workers=workers,
        free_disk_bytes=shutil.disk_usage(args.cache_dir).free,
        processing_type=args.processing_instance_type,
        training_type=args.training_instance_type,
        training_count=args.training_instance_count,
        volume_gib=args.volume_size_gb,
    )
    for line in result.lines:
        print(f"preprocess: plan: {line}", flush=True)
    if result.problems:
        raise CapacityError("; ".join(result.problems))
    return result


def build_report(
    per_class: dict[str, dict[str, int]],
    skipped: list[dict[str, str]],
    merged_folders: dict[str, list[str]],
    fractions: dict[str, float] | None = None,
) -> dict[str, Any]:
    totals: Counter = Counter()
    for counts in per_class.values():
        totals.update(counts)
    return {
        "classes": {name: per_class[name] for name in sorted(per_class)},
        "totals": {key: totals.get(key, 0) for key in (*SPLITS, "skipped", "left_out")},
        "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "skipped_files": skipped,
        "classes_missing_from_splits": missing_from_splits(per_class),
        "merged_class_folders": merged_folders,
    }


def missing_from_splits(per_class: dict[str, dict[str, int]]) -> list[dict[str, str]]:
    """Classes with no image in a split (the split is per file, so a small class can miss one)."""
    return [
        {"class": name, "split": split}
        for name in sorted(per_class)
        for split in SPLITS
        if per_class[name][split] == 0 and sum(per_class[name][s] for s in SPLITS) > 0
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except CapacityError as error:
        print(f"preprocess: ERROR this dataset does not fit: {error}", flush=True)
        return 3
    if sum(report["totals"][split] for split in ("train",)) == 0:
        print("preprocess: ERROR no usable training images; see dataset_report.json", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
