"""Processing job: merge the preprocess hosts' partial baselines and reports into one.

With several preprocess instances (ShardedByS3Key) every host measures only its share of the
training split and writes ``statistics-partial-<host>.json`` and ``features-<host>.csv``; this job
turns them into the one ``statistics.json`` / ``constraints.json`` the monitors and the model
package read, and the hosts' ``dataset_report-<host>.json`` into one ``dataset_report.json``.
With one host it rewrites the same files preprocess wrote (the same code computes both). The
pipeline uploads the hosts' files to Preprocess/partial_baseline and partial_report and this
job's to Preprocess/baseline and report, where the monitors read a run's baseline.

Why a step of its own, not the start of training: the baseline is data, not model, and must land
in the preprocess baseline prefix the monitors read, which a training job cannot write; this step
depends only on Preprocess, so it runs beside Train and adds no time to the pipeline; and it is
small (memory does not grow with the dataset: partials are bounded, tables are streamed).

The merge is exact: counts and histograms are added, moments merged with Chan et al.'s rule in
exact rationals, the sketch is a bottom-k by image-key hash (see image_features). One host or
three give byte-identical statistics for the same data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .preprocess import SPLITS, _write_json, finish_baseline, missing_from_splits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-dir", type=Path, default=Path("/opt/ml/processing/partial/baseline"))
    parser.add_argument("--report-dir", type=Path, default=Path("/opt/ml/processing/partial/report"))
    parser.add_argument("--out-baseline-dir", type=Path, default=Path("/opt/ml/processing/baseline"))
    parser.add_argument("--out-report-dir", type=Path, default=Path("/opt/ml/processing/report"))
    args = parser.parse_args(argv)
    for name in ("baseline_dir", "report_dir"):
        if not getattr(args, name).is_dir():
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is not a directory")
    return args


def merge_baseline(baseline_dir: Path, out_dir: Path) -> dict[str, Any]:
    partial_paths = sorted(baseline_dir.glob("statistics-partial*.json"))
    tables = sorted(baseline_dir.glob("features*.csv"))
    if not partial_paths:
        raise SystemExit(f"merge_baseline: no statistics-partial*.json in {baseline_dir}")
    if len(tables) != len(partial_paths):
        raise SystemExit(
            f"merge_baseline: {len(partial_paths)} partial statistics but {len(tables)} features "
            f"tables in {baseline_dir}; every host writes one of each"
        )
    partials = [json.loads(path.read_text()) for path in partial_paths]
    statistics = finish_baseline(baseline_dir, partials, tables, out_dir)
    # features.csv: the hosts' tables one after another (the header once), streamed.
    with open(out_dir / "features.csv", "w", newline="") as out:
        for number, table in enumerate(tables):
            with open(table, newline="") as handle:
                header = handle.readline()
                if number == 0:
                    out.write(header)
                shutil.copyfileobj(handle, out)
    return statistics


def merge_reports(report_dir: Path) -> dict[str, Any]:
    reports = [json.loads(p.read_text()) for p in sorted(report_dir.glob("dataset_report*.json"))]
    if not reports:
        raise SystemExit(f"merge_baseline: no dataset_report*.json in {report_dir}")
    per_class: dict[str, Counter] = defaultdict(Counter)
    skipped: list[dict[str, str]] = []
    folders: dict[str, set[str]] = defaultdict(set)
    for report in reports:
        for name, counts in report["classes"].items():
            per_class[name].update(counts)
        skipped += report["skipped_files"]
        for name, names in report["merged_class_folders"].items():
            folders[name].update(names)
    classes = {name: dict(per_class[name]) for name in sorted(per_class)}
    totals: Counter = Counter()
    for counts in classes.values():
        totals.update(counts)
    return {
        "classes": classes,
        "totals": {key: totals.get(key, 0) for key in (*SPLITS, "skipped", "left_out")},
        "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "skipped_files": sorted(skipped, key=lambda s: s["path"]),
        "classes_missing_from_splits": missing_from_splits(classes),
        "merged_class_folders": {name: sorted(v) for name, v in sorted(folders.items())},
        "hosts": sorted({h for r in reports for h in r.get("hosts", [])}),
        "host_fingerprints": {r.get("host", ""): r.get("fingerprint", "") for r in reports},
        # What train.py records as the dataset's fingerprint, for one host or several.
        "fingerprint": reports[0].get("fingerprint", "") if len(reports) == 1 else hashlib.sha256(
            "".join(sorted(r.get("fingerprint", "") for r in reports)).encode()).hexdigest(),
        "settings": reports[0].get("settings", {}),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    statistics = merge_baseline(args.baseline_dir, args.out_baseline_dir)
    report = merge_reports(args.report_dir)
    _write_json(args.out_report_dir / "dataset_report.json", report)
    print(
        f"merge_baseline: {statistics['dataset']['item_count']} training rows from "
        f"{len(report['hosts'])} host(s); totals {report['totals']}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
