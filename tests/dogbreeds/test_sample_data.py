"""The generated dataset: reproducible, awkward where real data is awkward, broken where asked."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from ml_jobs import job_env
from PIL import Image
from repo_paths import REPO_ROOT

from dogbreeds.sample_data import BREEDS, generate, parse_size
from pipeline_code.container.dogbreeds_jobs.data.class_names import normalise_class_name
from pipeline_code.container.dogbreeds_jobs.data.image_decoding import ImageDecodeError, decode_image


def tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path):
    kwargs = dict(breeds=3, per_breed=6, size=(40, 32), broken=2, progress=False)
    generate(tmp_path / "a", seed=7, **kwargs)
    generate(tmp_path / "b", seed=7, **kwargs)
    generate(tmp_path / "c", seed=8, **kwargs)
    a, b, c = (tree_bytes(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) >= len(a) - 2  # empty/text broken files equal by design


def test_naming_styles_normalise_to_the_same_breeds(tmp_path):
    names = {}
    for naming in ("stanford", "udacity", "plain"):
        summary = generate(
            tmp_path / naming, breeds=5, per_breed=1, size=(16, 16), seed=0,
            naming=naming, progress=False,
        )  # fmt: skip
        names[naming] = [normalise_class_name(folder) for folder in summary.class_dirs]
    assert summary.class_dirs[0] == BREEDS[0].lower()
    assert names["stanford"] == names["udacity"] == names["plain"]
    assert (tmp_path / "stanford" / "n02085620-Chihuahua").is_dir()
    assert (tmp_path / "udacity" / "001.Chihuahua").is_dir()


def test_odd_files_are_valid_and_decode_upright_to_rgb(tmp_path):
    summary = generate(tmp_path, breeds=5, per_breed=4, size=(48, 32), seed=1, progress=False)
    assert set(summary.odd_files) == {"grayscale", "png_alpha", "exif_rotated", "cmyk", "png16"}
    expected_modes = {"grayscale": "L", "png_alpha": "RGBA", "cmyk": "CMYK", "png16": "I;16"}
    for kind, relative in summary.odd_files.items():
        data = (tmp_path / relative).read_bytes()
        decoded = decode_image(data)
        assert decoded.image.mode == "RGB"
        if kind in expected_modes:
            assert decoded.original_mode == expected_modes[kind]
    rotated = tmp_path / summary.odd_files["exif_rotated"]
    with Image.open(rotated) as stored:
        assert stored.getexif()[0x0112] == 6
        stored_size = stored.size
    # Stored a quarter turn away; the decoder honours EXIF and gets the landscape picture back.
    assert decode_image(rotated.read_bytes()).image.size == stored_size[::-1]
    assert stored_size[1] > stored_size[0]


def test_broken_files_fail_decoding_with_their_reason(tmp_path):
    summary = generate(tmp_path, breeds=2, per_breed=2, size=(16, 16), seed=0, broken=3,
                       progress=False)  # fmt: skip
    reasons = {}
    for relative, kind in summary.broken_files.items():
        with pytest.raises(ImageDecodeError) as error:
            decode_image((tmp_path / relative).read_bytes())
        reasons[kind] = error.value.reason
    assert reasons == {"truncated_jpeg": "truncated", "empty": "empty",
                       "text_as_jpeg": "not_an_image"}  # fmt: skip


def test_breeds_differ_in_colour_more_than_pictures_of_one_breed(tmp_path):
    generate(tmp_path, breeds=4, per_breed=6, size=(32, 32), seed=0, odd=False, progress=False)
    means = {}
    for folder in sorted(tmp_path.iterdir()):
        pictures = [np.asarray(Image.open(p), dtype=float).mean(axis=(0, 1)) for p in
                    sorted(folder.iterdir())]  # fmt: skip
        means[folder.name] = np.array(pictures)
    spread_within = max(np.linalg.norm(m - m.mean(0), axis=1).mean() for m in means.values())
    centres = [m.mean(0) for m in means.values()]
    closest_between = min(
        np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :]
    )
    assert closest_between > spread_within


def test_ten_breeds_of_twenty_at_64px_take_about_a_second(tmp_path):
    start = time.perf_counter()
    summary = generate(tmp_path, breeds=10, per_breed=20, size=(64, 64), seed=0, progress=False)
    assert summary.images == 200
    assert time.perf_counter() - start < 4.0  # target 1-2 s; slack for a shared 2-core machine


@pytest.mark.parametrize("text", ["64", "64x", "axb", "4x4", "64*64"])
def test_bad_size_is_refused_with_the_expected_form(text):
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size(text)


def test_cli_writes_the_tree_and_rejects_bad_arguments(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "sample-data", str(tmp_path / "out"), "--breeds", "3",
         "--per-breed", "2", "--size", "24x20", "--seed", "5", "--naming", "udacity",
         "--broken", "1"],
        env=job_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "wrote 6 images in 3 classes" in ok.stdout
    assert sum(p.is_file() for p in (tmp_path / "out").rglob("*")) == 7
    bad = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "sample-data", str(tmp_path / "bad"), "--breeds", "134"],
        env=job_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "breeds must be between 2 and 133" in bad.stderr


def test_all_133_breeds_have_distinct_names_and_generate(tmp_path):
    """As many classes as the 133-breed dataset the project started from, each its own breed."""
    from pipeline_code.container.dogbreeds_jobs.data.class_names import normalise_class_name

    assert len(BREEDS) == 133
    assert len({normalise_class_name(name) for name in BREEDS}) == 133
    summary = generate(tmp_path, breeds=133, per_breed=1, size=(16, 16), seed=0, odd=False,
                       progress=False)  # fmt: skip
    assert summary.images == 133 and len(summary.class_dirs) == 133
    generate(tmp_path / "again", breeds=133, per_breed=1, size=(16, 16), seed=0,
                     odd=False, progress=False)  # fmt: skip
    for folder in summary.class_dirs[-3:]:
        first = sorted((tmp_path / folder).iterdir())[0]
        assert first.read_bytes() == (tmp_path / "again" / folder / first.name).read_bytes()
