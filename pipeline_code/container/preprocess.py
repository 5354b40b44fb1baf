"""Processing job: validate an ImageFolder tree, split it, and cache it for fast training.

Reads ``--input-dir/<class folder>/<image>`` and writes:

* ``--cache-dir``: uint8 shards (``<host>-<split>-NNNN.npz`` with ``images`` N x S x S x 3 and
  ``labels``), a manifest and classes.json. Training reads these instead of decoding JPEGs every
  epoch, which is what bounded the seed system's GPU.
* ``--test-dir/<class>/``: the test split's ORIGINAL files, because evaluation sends them through
  the serving handler exactly as production requests arrive.
* ``--baseline-dir``: the training split's image features (features.csv) and their statistics.json /
  constraints.json, against which the data-quality monitor compares live traffic.
* ``--report-dir``: dataset_report.json (counts per class and split, skipped files and why).

Every image goes through ``image_decoding.decode_image``; a file that fails is skipped and counted
by reason, never fatal. The split is stratified per class and seeded: files are ordered by a hash
of (seed, relative path), so the result does not depend on listing order or on which host saw it.

Several instances (ShardedByS3Key): each host processes only its share and writes host-named files
(``manifest-<host>.json`` etc., see ``output_names``), so nothing collides in the shared S3 prefix;
training reads every manifest and assigns class indices over the union of classes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import image_features
import numpy as np
from class_names import normalise_class_name
from image_decoding import ImageDecodeError, decode_image
from PIL import Image
from tqdm import tqdm

SPLITS = ("train", "validation", "test")
MANIFEST_VERSION = 1
DEFAULT_HOST = "algo-1"


@dataclass(frozen=True)
class InputFile:
    path: Path
    relative: str  # posix path under the input dir: stable across hosts, used for hashing
    class_name: str  # normalised


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
                files.append(InputFile(path, relative, class_name))
    merged = {name: folders for name, folders in folders_by_class.items() if len(folders) > 1}
    return files, skipped, merged


def _skip(relative: str, reason: str, message: str) -> dict[str, str]:
    return {"path": relative, "reason": reason, "message": message}


def drop_exact_duplicates(
    valid: list[int], files: list, results: list, skipped: list[dict[str, str]]
) -> list[int]:
    """One file per content hash: the same picture under two paths could otherwise land in train
    and test and inflate the accuracy the pipeline gates on. Copies within a class keep the first
    by path; a picture filed under two breeds has no trustworthy label and is left out entirely."""
    by_content: dict[str, list[int]] = defaultdict(list)
    for i in sorted(valid, key=lambda index: files[index].relative):
        by_content[results[i].sha256].append(i)
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


def stratified_split(
    relatives_by_class: dict[str, list[str]], fractions: dict[str, float], seed: int
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Assign each file to a split, per class; returns (relative -> split, too-small classes).

    Every split with a non-zero fraction gets at least one image of every class, so a class needs
    that many images; smaller classes are left out entirely and reported.
    """
    needed = sum(1 for split in SPLITS if fractions[split] > 0)
    assignment: dict[str, str] = {}
    too_small: list[dict[str, Any]] = []
    for class_name in sorted(relatives_by_class):
        ordered = sorted(relatives_by_class[class_name], key=lambda r: split_order_key(seed, r))
        n = len(ordered)
        if n < needed:
            too_small.append({"class": class_name, "images": n, "needed": needed})
            continue
        counts = {}
        for split in ("validation", "test"):
            share = fractions[split]
            counts[split] = max(1, round(n * share)) if share > 0 else 0
        # Rounding up small shares must not eat the training split.
        while n - counts["validation"] - counts["test"] < 1:
            largest = max(("validation", "test"), key=lambda s: counts[s])
            counts[largest] -= 1
        bounds = {"test": counts["test"], "validation": counts["test"] + counts["validation"]}
        for index, relative in enumerate(ordered):
            if index < bounds["test"]:
                assignment[relative] = "test"
            elif index < bounds["validation"]:
                assignment[relative] = "validation"
            else:
                assignment[relative] = "train"
    return assignment, too_small


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


def decode_all(
    files: list[InputFile], cache_size: int, workers: int, cache_rows: np.ndarray
) -> list[FileResult]:
    """Decode every file (in parallel when ``workers`` > 1); pictures go into ``cache_rows``."""
    jobs = [(str(f.path), cache_size) for f in files]
    results: list[FileResult] = []
    bar = tqdm(total=len(jobs), desc="decode", file=sys.stdout, mininterval=_progress_interval())
    if workers > 1:
        executor = ProcessPoolExecutor(max_workers=workers)
        iterator = executor.map(process_file, jobs, chunksize=16)
    else:
        executor = None
        iterator = map(process_file, jobs)
    try:
        for index, result in enumerate(iterator):
            if result.array is not None:
                cache_rows[index] = result.array
                result.array = None  # the row lives on disk now; keep memory flat
            results.append(result)
            bar.update()
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown()
    return results


def _progress_interval() -> float:
    # In a job log every refresh is a new line; a terminal can take frequent updates.
    return 0.5 if sys.stdout.isatty() else 15.0


# ---- writing ------------------------------------------------------------------------------------


def write_shards(
    cache_dir: Path,
    host: str,
    split: str,
    indices: list[int],
    labels: list[int],
    cache_rows: np.ndarray,
    shard_size: int,
) -> list[dict[str, Any]]:
    shards = []
    for number, start in enumerate(range(0, len(indices), shard_size)):
        chunk = indices[start : start + shard_size]
        name = f"{host}-{split}-{number:04d}.npz"
        images = np.ascontiguousarray(cache_rows[chunk])
        np.savez(
            cache_dir / name,
            images=images,
            labels=np.asarray(labels[start : start + shard_size], dtype=np.int64),
        )
        shards.append({"file": name, "split": split, "count": len(chunk)})
    return shards


def copy_test_files(test_dir: Path, files: list[InputFile]) -> dict[str, str]:
    """Copy originals to test_dir/<class>/<name>; returns relative input path -> copied path."""
    copied: dict[str, str] = {}
    for item in files:
        target_dir = test_dir / item.class_name
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / item.path.name
        counter = 1
        while target.exists():  # nested folders can repeat a file name within one class
            target = target_dir / f"{item.path.stem}-{counter}{item.path.suffix}"
            counter += 1
        shutil.copyfile(item.path, target)
        copied[item.relative] = target.relative_to(test_dir).as_posix()
    return copied


def write_baseline(
    baseline_dir: Path, names: dict[str, str], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    baseline_dir.mkdir(parents=True, exist_ok=True)
    columns = ["path", "class", *image_features.FEATURE_NAMES]
    with open(baseline_dir / names["features"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    statistics = image_features.dataset_statistics(rows)
    constraints = image_features.dataset_constraints(statistics)
    _write_json(baseline_dir / names["statistics"], statistics)
    _write_json(baseline_dir / names["constraints"], constraints)
    return statistics


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")


def dataset_fingerprint(entries: list[tuple[str, str, str]], settings: dict[str, Any]) -> str:
    """sha256 over (relative path, content hash, split) of every used file and the settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for relative, content, split in sorted(entries):
        digest.update(f"{relative}\0{content}\0{split}\n".encode())
    return digest.hexdigest()


# ---- the job ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole job; returns the dataset report (also written to --report-dir)."""
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
    with tempfile.TemporaryDirectory(prefix="preprocess-") as scratch:
        # Decoded pictures wait on disk, not in memory, until the split is known.
        cache_rows = np.lib.format.open_memmap(
            Path(scratch) / "rows.npy",
            mode="w+",
            dtype=np.uint8,
            shape=(max(1, len(files)), args.cache_size, args.cache_size, 3),
        )
        results = decode_all(files, args.cache_size, workers, cache_rows)
        for item, result in zip(files, results, strict=True):
            if not result.ok:
                skipped.append(_skip(item.relative, result.reason, result.message))

        valid = drop_exact_duplicates(
            [i for i, result in enumerate(results) if result.ok], files, results, skipped
        )
        relatives_by_class: dict[str, list[str]] = defaultdict(list)
        for i in valid:
            relatives_by_class[files[i].class_name].append(files[i].relative)
        assignment, too_small = stratified_split(relatives_by_class, fractions, args.seed)
        for entry in too_small:
            print(
                f"preprocess: WARNING class {entry['class']!r} has {entry['images']} valid "
                f"image(s) on this host, needs {entry['needed']} for the split; left out",
                flush=True,
            )
        classes = sorted({files[i].class_name for i in valid if files[i].relative in assignment})
        class_index = {name: index for index, name in enumerate(classes)}
        by_split: dict[str, list[int]] = {split: [] for split in SPLITS}
        for i in valid:
            split = assignment.get(files[i].relative)
            if split:
                by_split[split].append(i)

        shards = []
        for split in ("train", "validation"):
            indices = by_split[split]
            labels = [class_index[files[i].class_name] for i in indices]
            shards += write_shards(
                args.cache_dir, host, split, indices, labels, cache_rows, args.shard_size
            )
    copy_test_files(args.test_dir, [files[i] for i in by_split["test"]])

    feature_rows = [
        {"path": files[i].relative, "class": files[i].class_name, **results[i].features}
        for i in by_split["train"]
    ]
    write_baseline(args.baseline_dir, names, feature_rows)

    settings = {
        "fractions": fractions,
        "seed": args.seed,
        "cache_size": args.cache_size,
        "manifest_version": MANIFEST_VERSION,
    }
    fingerprint = dataset_fingerprint(
        [(files[i].relative, results[i].sha256, assignment[files[i].relative])
         for split in SPLITS for i in by_split[split]],
        settings,
    )  # fmt: skip
    counts = {split: len(by_split[split]) for split in SPLITS}
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
        "fingerprint": fingerprint,
    }
    _write_json(args.cache_dir / names["manifest"], manifest)
    _write_json(args.cache_dir / names["classes"], classes)

    report = build_report(files, results, assignment, skipped, too_small, merged_folders)
    report.update({"host": host, "hosts": hosts, "fingerprint": fingerprint, "settings": settings})
    _write_json(args.report_dir / names["report"], report)
    print(
        f"preprocess: train {counts['train']}, validation {counts['validation']}, "
        f"test {counts['test']} images in {len(classes)} classes; skipped {len(skipped)} "
        f"({dict(Counter(s['reason'] for s in skipped))})",
        flush=True,
    )
    return report


def build_report(
    files: list[InputFile],
    results: list[FileResult],
    assignment: dict[str, str],
    skipped: list[dict[str, str]],
    too_small: list[dict[str, Any]],
    merged_folders: dict[str, list[str]],
) -> dict[str, Any]:
    per_class: dict[str, dict[str, int]] = defaultdict(
        lambda: {"train": 0, "validation": 0, "test": 0, "skipped": 0, "left_out": 0}
    )
    for item, result in zip(files, results, strict=True):
        counts = per_class[item.class_name]
        if not result.ok:
            counts["skipped"] += 1
        elif item.relative in assignment:
            counts[assignment[item.relative]] += 1
        else:
            counts["left_out"] += 1
    totals = Counter()
    for counts in per_class.values():
        totals.update(counts)
    return {
        "classes": {name: per_class[name] for name in sorted(per_class)},
        "totals": {key: totals.get(key, 0) for key in (*SPLITS, "skipped", "left_out")},
        "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "skipped_files": skipped,
        "too_small_classes": too_small,
        "merged_class_folders": merged_folders,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    if sum(report["totals"][split] for split in ("train",)) == 0:
        print("preprocess: ERROR no usable training images; see dataset_report.json", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
