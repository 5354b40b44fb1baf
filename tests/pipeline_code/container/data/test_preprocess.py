"""preprocess.py run as the Processing job runs it, on a corpus with odd and broken files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ml_jobs import make_dataset, read_json, run_preprocess

from pipeline_code.container.dogbreeds_jobs.training.data_cache import load_cache


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 breeds with odd files and 3 broken ones, a stray top-level file, a class too small to
    split, and two folders that name the same breed."""
    root = tmp_path_factory.mktemp("corpus")
    images = make_dataset(root, breeds=4, per_breed=14, broken=3)
    (images / "README.txt").write_text("not in a class folder")
    (images / "n02099999-Tiny_breed").mkdir()
    first = next((images / "n02085620-Chihuahua").glob("*_0000.jpg"))

    def variant(n: int) -> bytes:
        # Bytes after the JPEG end marker: the same picture, a different file (not a duplicate).
        return first.read_bytes() + b"\0" * n

    (images / "n02099999-Tiny_breed" / "only.jpg").write_bytes(variant(1))
    (images / "Golden Retriever").mkdir()
    (images / "golden_retriever").mkdir()
    for offset, (folder, name) in enumerate((("Golden Retriever", "a.jpg"), ("golden_retriever", "b.jpg"))):
        for i in range(3):
            (images / folder / f"{i}{name}").write_bytes(variant(2 + 3 * offset + i))
    # An exact copy within a class is kept once; a picture filed under two breeds is left out.
    (images / "n02085620-Chihuahua" / "copy_of_first.jpg").write_bytes(first.read_bytes())
    breeds = sorted(
        p for p in images.iterdir() if p.is_dir() and p.name.startswith("n020") and "Tiny" not in p.name
    )
    mislabelled = sorted(breeds[1].glob("*_0001.jpg"))[0]
    (breeds[2] / "mislabelled_copy.jpg").write_bytes(mislabelled.read_bytes())
    return images


@pytest.fixture(scope="module")
def processed(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("processed")
    result, paths = run_preprocess(corpus, root, "--shard-size", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    return result, paths


def test_bad_files_are_skipped_and_counted_by_reason(processed):
    result, paths = processed
    report = read_json(paths["report"] / "dataset_report.json")
    assert report["skipped_by_reason"] == {
        "conflicting_labels": 2,
        "duplicate": 1,
        "empty": 1,
        "not_an_image": 1,
        "not_in_class_folder": 1,
        "truncated": 1,
    }
    reasons = {entry["path"]: entry["reason"] for entry in report["skipped_files"]}
    assert reasons["README.txt"] == "not_in_class_folder"
    assert "skipped 7" in result.stdout
    assert reasons["n02085620-Chihuahua/copy_of_first.jpg"] == "duplicate"
    conflicting = [e for e in report["skipped_files"] if e["reason"] == "conflicting_labels"]
    assert any(e["path"].endswith("mislabelled_copy.jpg") for e in conflicting)
    assert all("filed under" in e["message"] for e in conflicting)


def test_a_class_missing_from_a_split_is_reported(processed):
    result, paths = processed
    report = read_json(paths["report"] / "dataset_report.json")
    tiny = report["classes"]["tiny_breed"]
    assert tiny["train"] + tiny["validation"] + tiny["test"] == 1
    missing = {(e["class"], e["split"]) for e in report["classes_missing_from_splits"]}
    assert {("tiny_breed", s) for s in ("train", "validation", "test") if tiny[s] == 0} <= missing
    assert "class 'tiny_breed' has no" in result.stdout


def test_folders_naming_one_breed_are_merged_and_reported(processed):
    _, paths = processed
    report = read_json(paths["report"] / "dataset_report.json")
    assert report["merged_class_folders"] == {
        "golden_retriever": ["Golden Retriever", "golden_retriever"]
    }
    counts = report["classes"]["golden_retriever"]
    assert counts["train"] + counts["validation"] + counts["test"] == 6


def test_split_follows_the_fractions_and_every_valid_image_lands_once(processed):
    _, paths = processed
    report = read_json(paths["report"] / "dataset_report.json")
    manifest = read_json(paths["cache"] / "manifest.json")
    totals = report["totals"]
    assert manifest["counts"] == {s: totals[s] for s in ("train", "validation", "test")}
    # 4 x 14 generated + 6 golden retriever + the tiny class's one, less the picture filed under
    # two breeds; broken files and copies come on top
    assert sum(manifest["counts"].values()) == 4 * 14 + 6 + 1 - 1
    assert manifest["counts"]["train"] > 0.6 * sum(manifest["counts"].values())
    assert manifest["counts"]["validation"] >= 1 and manifest["counts"]["test"] >= 1


def test_the_split_of_a_file_depends_on_its_path_and_the_seed_only():
    from pipeline_code.container.dogbreeds_jobs.data.preprocess import split_of

    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    paths = [f"breed_{i % 7}/img_{i:05d}.jpg" for i in range(20000)]
    splits = [split_of(0, p, fractions) for p in paths]
    share = {s: splits.count(s) / len(splits) for s in fractions}
    assert all(abs(share[s] - fractions[s]) < 0.01 for s in fractions), share
    assert [split_of(0, p, fractions) for p in reversed(paths)] == splits[::-1]
    assert [split_of(1, p, fractions) for p in paths] != splits


def test_shards_hold_uint8_squares_with_labels_matching_the_manifest(processed):
    _, paths = processed
    manifest = read_json(paths["cache"] / "manifest.json")
    classes = read_json(paths["cache"] / "classes.json")
    assert classes == sorted(classes) == manifest["classes"]
    per_split = {"train": 0, "validation": 0}
    assert len([s for s in manifest["shards"] if s["split"] == "train"]) >= 2  # shard-size 20
    for shard in manifest["shards"]:
        with np.load(paths["cache"] / shard["file"]) as data:
            images, labels = data["images"], data["labels"]
        assert images.dtype == np.uint8 and images.shape[1:] == (40, 40, 3)
        assert len(images) == len(labels) == shard["count"]
        assert labels.min() >= 0 and labels.max() < len(classes)
        assert images.std() > 5  # real pictures, not zeros
        per_split[shard["split"]] += shard["count"]
    assert per_split == {k: manifest["counts"][k] for k in per_split}


def test_test_split_originals_are_copied_byte_for_byte(processed, corpus):
    _, paths = processed
    manifest = read_json(paths["cache"] / "manifest.json")
    copied = [p for p in paths["test"].rglob("*") if p.is_file()]
    assert len(copied) == manifest["counts"]["test"]
    originals = {p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    assert all(p.read_bytes() in originals for p in copied)
    assert {p.parent.name for p in copied} <= set(manifest["classes"])


def test_baseline_covers_the_training_split(processed):
    _, paths = processed
    manifest = read_json(paths["cache"] / "manifest.json")
    with open(paths["baseline"] / "features.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == manifest["counts"]["train"]
    statistics = read_json(paths["baseline"] / "statistics.json")
    assert statistics["dataset"]["item_count"] == len(rows)
    modes = {f["name"]: f for f in statistics["features"]}["original_mode"]
    seen = {
        b["value"] for b in modes["string_statistics"]["distribution"]["categorical"]["buckets"]
    }
    assert "RGB" in seen
    constraints = read_json(paths["baseline"] / "constraints.json")
    assert {f["name"] for f in constraints["features"]} >= {"brightness", "sharpness", "format"}


def test_same_seed_same_split_and_another_seed_another(corpus, processed, tmp_path):
    _, paths = processed
    again, again_paths = run_preprocess(corpus, tmp_path / "again", "--shard-size", "20")
    other, other_paths = run_preprocess(corpus, tmp_path / "other", "--seed", "1")
    assert again.returncode == 0 and other.returncode == 0

    def fingerprint(p):
        return read_json(p["cache"] / "manifest.json")["fingerprint"]

    def test_files(p):
        return sorted(x.relative_to(p["test"]).as_posix() for x in p["test"].rglob("*.*"))

    assert fingerprint(again_paths) == fingerprint(paths)
    assert test_files(again_paths) == test_files(paths)
    assert fingerprint(other_paths) != fingerprint(paths)
    assert test_files(other_paths) != test_files(paths)


def test_parallel_decoding_gives_the_same_result_as_one_process(corpus, processed, tmp_path):
    _, paths = processed
    result, parallel = run_preprocess(corpus, tmp_path, "--shard-size", "20", "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    one, two = (read_json(p["cache"] / "manifest.json") for p in (paths, parallel))
    assert two["fingerprint"] == one["fingerprint"]
    for shard in one["shards"]:
        with (
            np.load(paths["cache"] / shard["file"]) as a,
            np.load(parallel["cache"] / shard["file"]) as b,
        ):
            assert np.array_equal(a["images"], b["images"])
            assert np.array_equal(a["labels"], b["labels"])


def test_sharded_hosts_write_host_named_outputs_that_train_combines(corpus, tmp_path):
    """ShardedByS3Key: each host gets part of the keys; here each host gets half the classes'
    files, written into one shared output folder as SageMaker's upload would merge them."""
    folders = sorted(p for p in corpus.iterdir() if p.is_dir() and "Tiny" not in p.name)
    shared = tmp_path / "shared"
    for number, host in enumerate(("algo-1", "algo-2")):
        share = tmp_path / f"input-{host}"
        for folder in folders:
            files = sorted(folder.iterdir())[number::2]
            (share / folder.name).mkdir(parents=True)
            for file in files:
                (share / folder.name / file.name).write_bytes(file.read_bytes())
        config = tmp_path / f"resourceconfig-{host}.json"
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        result, paths = run_preprocess(share, shared, resource_config=config)
        assert result.returncode == 0, result.stdout + result.stderr

    cache = paths["cache"]
    assert {p.name for p in cache.glob("manifest*.json")} == {
        "manifest-algo-1.json",
        "manifest-algo-2.json",
    }
    assert not (cache / "manifest.json").exists()
    assert (paths["report"] / "dataset_report-algo-1.json").is_file()
    data = load_cache(cache)
    counts = [read_json(p)["counts"] for p in sorted(cache.glob("manifest*.json"))]
    assert len(data.train_labels) == sum(c["train"] for c in counts)
    assert len(data.classes) == 5
    # Labels were remapped from each host's class list to the union's order.
    assert set(data.train_labels.tolist()) == set(range(5))
    # Several hosts leave partial statistics for the merge, and no statistics.json.
    assert (paths["baseline"] / "statistics-partial-algo-2.json").is_file()
    assert not (paths["baseline"] / "statistics.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-fraction", "0.5"], "must sum to 1"),
        (["--test-fraction", "1.2"], "must be in [0, 1)"),
        (["--cache-size", "4"], "--cache-size must be at least 16"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_allowed(corpus, tmp_path, args, message):
    result, _ = run_preprocess(corpus, tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_input_dir_is_named(tmp_path):
    result, _ = run_preprocess(tmp_path / "nowhere", tmp_path)
    assert result.returncode == 2
    assert "nowhere is not a directory" in result.stderr


PEAK_RSS = (
    "import runpy, sys; sys.argv = sys.argv[1:]; sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0]); "
    "code = 0\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as e:\n    code = e.code or 0\n"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('PEAK_RSS_KB', hwm); sys.exit(code)"
)


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """4x the images must not cost more memory: pictures go straight to shards on disk, rows to
    features.csv and the streaming statistics. At a 256 px cache a picture is 192 KiB, so holding
    (or memory-mapping) 480 more of them would show as ~90 MiB; the bound is 20 MiB."""
    from ml_jobs import CONTAINER_DIR, job_env, run_job

    from dogbreeds.sample_data import generate

    peaks = {}
    for per_breed in (40, 160):
        images = tmp_path / f"images-{per_breed}"
        generate(images, breeds=4, per_breed=per_breed, size=(32, 32), seed=0, odd=False,
                 progress=False)  # fmt: skip
        out = tmp_path / f"out-{per_breed}"
        result = run_job(
            ["-c", PEAK_RSS, str(CONTAINER_DIR / "preprocess.py"), "--input-dir", str(images),
             *[a for n in ("cache", "test", "baseline", "report")
               for a in (f"--{n}-dir", str(out / n))],
             "--resource-config", str(out / "none.json"), "--cache-size", "256",
             "--workers", "1"],
            job_env(),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        peaks[per_breed] = int(result.stdout.split("PEAK_RSS_KB")[-1].split()[0]) / 1024
    assert peaks[160] - peaks[40] < 20, peaks


def _run_hosts(images, root, hosts: int):
    """Preprocess as `hosts` instances with ShardedByS3Key (the local executor's assignment: every
    hosts-th object in key order), sharing output folders as the uploads would, then the merge."""
    from ml_jobs import CONTAINER_DIR, job_env, run_job

    from dogbreeds.local_executor.s3_mapping import LocalS3

    names = [f"algo-{n}" for n in range(1, hosts + 1)]
    local_s3 = LocalS3(images.parent)
    for index, host in enumerate(names):
        share = root / f"input-{host}"
        local_s3.download(f"s3://{images.name}/", share, shard=(index, hosts))
        config = root / f"resourceconfig-{host}.json"
        config.write_text(json.dumps({"current_host": host, "hosts": names}))
        result, paths = run_preprocess(share, root / "shared", resource_config=config)
        assert result.returncode == 0, result.stdout + result.stderr
    merged = root / "merged"
    result = run_job(
        [str(CONTAINER_DIR / "merge_baseline.py"), "--baseline-dir", str(paths["baseline"]),
         "--report-dir", str(paths["report"]), "--out-baseline-dir", str(merged / "baseline"),
         "--out-report-dir", str(merged / "report")],
        job_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return paths, merged


def test_one_host_or_three_give_the_same_baseline_split_and_counts(tmp_path):
    """The merge is exact: counts and buckets added, moments merged (Chan, in rationals), the
    sketch chosen by image-key hash; and each file's split does not depend on the host count."""
    from dogbreeds.sample_data import generate

    images = tmp_path / "bucket"
    # More values than the sketch keeps would need 2048+ images; 3 x 70 still tests the merge of
    # moments, buckets, counts and the split, and a small sketch limit is tested in image_features.
    generate(images, breeds=3, per_breed=70, size=(24, 24), seed=3, progress=False)
    one, merged_one = _run_hosts(images, tmp_path / "one", 1)
    three, merged_three = _run_hosts(images, tmp_path / "three", 3)
    for name in ("statistics.json", "constraints.json"):
        assert (merged_one / "baseline" / name).read_text() == (
            merged_three / "baseline" / name
        ).read_text(), name
    # One host: preprocess's own statistics.json is the merge's, byte for byte.
    assert (one["baseline"] / "statistics.json").read_text() == (
        merged_one / "baseline" / "statistics.json"
    ).read_text()
    reports = [read_json(m / "report" / "dataset_report.json") for m in (merged_one, merged_three)]
    assert reports[0]["classes"] == reports[1]["classes"]
    assert reports[1]["hosts"] == ["algo-1", "algo-2", "algo-3"]

    def test_files(p):
        return sorted(x.relative_to(p["test"]).as_posix() for x in p["test"].rglob("*.*"))

    assert test_files(one) == test_files(three)
    train_one, train_three = load_cache(one["cache"]), load_cache(three["cache"])
    assert len(train_one.train_labels) == len(train_three.train_labels)
    assert sorted(train_one.train_labels.tolist()) == sorted(train_three.train_labels.tolist())


def test_partial_statistics_merge_exactly_and_keep_a_hash_chosen_sketch(monkeypatch):
    from pipeline_code.container.dogbreeds_jobs.data import image_features as features

    monkeypatch.setattr(features, "SKETCH_MAX_VALUES", 16)
    rng = np.random.default_rng(0)
    rows = [{"path": f"img_{i}", "brightness": float(rng.random()) * 1e3 + 1e6,
             "format": "PNG" if i % 7 else "JPEG"} for i in range(300)]  # fmt: skip
    specs = [features.FEATURES_BY_NAME["brightness"], features.FEATURES_BY_NAME["format"]]

    def partial(part):
        accumulator = features.StatisticsAccumulator(specs)
        for row in part:
            accumulator.add(row["path"], row)
        return accumulator.partial()

    whole = features.merge_partials([partial(rows)])
    split = features.merge_partials([partial(rows[2::3]), partial(rows[::3]), partial(rows[1::3])])
    assert split == whole
    column = lambda name: [row[name] for row in rows]  # noqa: E731
    stats = features.finalize_statistics(whole, column, specs)
    numeric = stats["features"][0]["numerical_statistics"]
    values = np.array(column("brightness"))
    assert numeric["mean"] == pytest.approx(values.mean(), rel=1e-15)
    assert numeric["std_dev"] == pytest.approx(values.std(), rel=1e-12)
    assert [b["count"] for b in numeric["distribution"]["kll"]["buckets"]] == list(
        np.histogram(values, bins=10)[0].astype(float)
    )
    sketch = numeric["distribution"]["kll"]["sketch"]["data"][0]
    chosen = sorted(rows, key=lambda r: features.sketch_priority(r["path"]))[:16]
    assert sketch == sorted(r["brightness"] for r in chosen)


def test_the_plan_reports_each_steps_needs_first_and_refuses_what_cannot_fit(corpus, tmp_path):
    ok, _ = run_preprocess(corpus, tmp_path / "ok", "--processing-instance-type", "ml.m5.xlarge",
                           "--training-instance-type", "ml.g4dn.xlarge")  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    plan = [line for line in ok.stdout.splitlines() if line.startswith("preprocess: plan:")]
    assert plan and ok.stdout.index("plan: dataset:") < ok.stdout.index("preprocess: train ")
    assert any("resident on the GPU (16 GiB)" in line for line in plan)
    # An EBS-only training type with a tiny volume: the cache and checkpoints cannot fit.
    refused, paths = run_preprocess(
        corpus, tmp_path / "refused", "--training-instance-type", "ml.p3.2xlarge",
        "--volume-size-gb", "0.5",
    )  # fmt: skip
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "does not fit" in refused.stdout and "set training.instance_type" in refused.stdout
    assert not list(paths["cache"].glob("*.npz")), "refused before anything was written"


def test_plan_figures_pick_the_training_path_and_name_the_setting_to_change():
    from pipeline_code.container.dogbreeds_jobs.data import capacity

    def plan(files, **extra):
        return capacity.plan(files=files, input_bytes=files * 150_000, hosts=1, cache_size=256,
                             test_fraction=0.1, workers=4, free_disk_bytes=None, **extra)  # fmt: skip

    # 0.19 MiB an image cached: 20k images fit a T4's 40%, 50k do not and stream from disk.
    assert plan(20_000, training_type="ml.g4dn.xlarge").figures["training_cache_path"] == (
        "resident on the GPU")
    assert plan(50_000, training_type="ml.g4dn.xlarge").figures["training_cache_path"] == (
        "streamed from local disk")
    too_big = plan(800_000, training_type="ml.g4dn.xlarge")
    assert any("set training.instance_type" in p for p in too_big.problems), too_big.problems
    host_disk = capacity.plan(files=50_000, input_bytes=50_000 * 150_000, hosts=1, cache_size=256,
                              test_fraction=0.1, workers=4, free_disk_bytes=5 * 2**30)  # fmt: skip
    assert any("PreprocessInstanceCount" in p for p in host_disk.problems)
