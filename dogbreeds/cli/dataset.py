"""`dogbreeds dataset upload|stage-weights --env NAME`: put training inputs into an environment's bucket.

`dataset upload` prints the DatasetS3Uri to start the training pipeline with; `stage-weights` writes
where the pipeline's weights parameter points by default for that backbone.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from contract.naming import DATASETS_PREFIX, PRETRAINED_WEIGHTS_PREFIX
from dogbreeds.dataset_upload import (
    SHA256_METADATA_KEY,
    UploadInterrupted,
    dataset_fingerprint,
    existing_objects,
    scan_dataset,
    upload_dataset,
)
from dogbreeds.environment import CommandError, resolve_environment
from dogbreeds.last_dataset import record_last_dataset

SHOWN_BAD_FILES = 20


def _print_paths(heading: str, entries: list[tuple[Path, str]], file=None) -> None:
    print(heading, file=file)
    for path, reason in entries[:SHOWN_BAD_FILES]:
        print(f"  {path}: {reason}", file=file)
    if len(entries) > SHOWN_BAD_FILES:
        print(f"  ... and {len(entries) - SHOWN_BAD_FILES} more", file=file)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="upload a dataset or pretrained weights to an environment")
    actions = parser.add_subparsers(dest="dataset_command", metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--env", required=True, help="environment name from cdk.json (dev, staging, prod)")
        sub.add_argument("--bucket", help="bucket name (default: the environment's data bucket)")
        sub.add_argument("--cdk-json", type=Path, default=None, help="cdk.json to read names from")

    upload = actions.add_parser(
        "upload", help="validate images locally, then upload new or changed ones in parallel"
    )
    upload.add_argument("directory", type=Path, help="folder with one sub-folder of images per breed")
    common(upload)
    upload.add_argument(
        "--prefix",
        default=None,
        help=f"key prefix (default: {DATASETS_PREFIX}/<fingerprint of the content>, so a changed dataset "
        "never reuses the pipeline's cached steps)",
    )
    upload.add_argument("--workers", type=int, default=8, help="parallel uploads (default: %(default)s)")
    upload.add_argument("--dry-run", action="store_true", help="validate and report, upload nothing")
    upload.set_defaults(func=_run_upload)

    weights = actions.add_parser(
        "stage-weights", help="upload a pretrained weights file for the pipeline's weights parameter"
    )
    common(weights)
    weights.add_argument("--backbone", required=True, help="backbone the weights belong to")
    weights.add_argument(
        "--file", type=Path,
        help="weights file (.pth state dict); default: the file a package ships, where one does",
    )
    weights.set_defaults(func=_run_stage_weights)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _bucket(args: argparse.Namespace):
    import boto3

    names, settings = resolve_environment(args.env, args.cdk_json)
    session = boto3.session.Session(region_name=settings.region)
    if args.bucket:
        return session.client("s3"), args.bucket
    account = session.client("sts").get_caller_identity()["Account"]
    region = settings.region or session.region_name
    if not region:
        raise CommandError(
            f"no AWS region for environment {args.env!r}: set environments.{args.env}.region in cdk.json, "
            "or AWS_DEFAULT_REGION"
        )
    return session.client("s3"), names.bucket(account, region, "data")


def _run_upload(args: argparse.Namespace) -> int:
    def work() -> int:
        resolve_environment(args.env, args.cdk_json)  # a bad --env fails before a long scan
        report = scan_dataset(args.directory, workers=args.workers)
        print(f"{len(report.files)} valid images in {len(report.breeds)} breeds")
        for breed, folders in report.merged_folders.items():
            print(f"  note: folders {', '.join(folders)} are all breed {breed!r} and are merged")
        if report.bad:
            _print_paths(f"{len(report.bad)} files are not usable images and will not be uploaded:",
                         report.bad)
        if report.skipped:
            _print_paths(f"{len(report.skipped)} entries skipped (not a regular file in a class folder):",
                         report.skipped)
        if not report.files:
            raise CommandError(f"nothing to upload: no valid images under {args.directory}")
        if args.dry_run:
            print("dry run: nothing uploaded")
            return 0
        prefix = (args.prefix or f"{DATASETS_PREFIX}/{dataset_fingerprint(report.files)}").strip("/")
        s3, bucket = _bucket(args)
        existing = existing_objects(s3, bucket, prefix)
        result = upload_dataset(s3, bucket, prefix, report.files, existing, workers=args.workers)
        stale = set(existing) - {f"{prefix}/{item.relative_key}" for item in report.files}
        print(
            f"uploaded {result.uploaded} ({result.bytes_sent / 1e6:.1f} MB), "
            f"skipped {result.skipped_unchanged} unchanged"
        )
        if stale:
            print(f"note: {len(stale)} objects under the prefix are not in {args.directory} (kept)")
        if result.failed:
            _print_paths(f"{len(result.failed)} files changed or vanished after they were validated:",
                         result.failed, file=sys.stderr)
            raise CommandError(
                f"{len(result.failed)} files were not uploaded; run the command again (it validates "
                "them afresh and sends only what is missing)"
            )
        print(f"DatasetS3Uri: s3://{bucket}/{prefix}/")
        record_last_dataset(args.env, f"s3://{bucket}/{prefix}/")
        return 0

    return _guarded(args, work)


def _run_stage_weights(args: argparse.Namespace) -> int:
    def work() -> int:
        from pipeline_code.container.dogbreeds_jobs.serving.backbones import (
            backbone_spec,
            default_weights_path,
        )

        try:
            backbone_spec(args.backbone)
        except (KeyError, ValueError) as error:
            raise CommandError(str(error)) from None
        path = args.file or default_weights_path(args.backbone)
        if path is None:
            raise CommandError(
                f"no package ships weights for {args.backbone!r}: pass --file with an ImageNet state dict "
                "(.pth) for it"
            )
        if not Path(path).is_file():
            raise CommandError(f"weights file {path} does not exist")
        data = Path(path).read_bytes()
        s3, bucket = _bucket(args)
        key = f"{PRETRAINED_WEIGHTS_PREFIX}/{args.backbone}/{Path(path).name}"
        s3.put_object(
            Bucket=bucket, Key=key, Body=data,
            Metadata={SHA256_METADATA_KEY: hashlib.sha256(data).hexdigest()},
        )
        print(f"staged {Path(path).name} ({len(data) / 1e6:.1f} MB)")
        print(f"staged at s3://{bucket}/{key} (the pipeline's PretrainedWeightsS3Prefix/<Backbone>/)")
        return 0

    return _guarded(args, work)


def _guarded(args: argparse.Namespace, work) -> int:
    try:
        return work()
    except UploadInterrupted as interrupt:
        done = interrupt.report
        print(
            f"interrupted: {done.uploaded} files uploaded and {done.skipped_unchanged} already there "
            f"of {interrupt.total}; every object sent is complete, and running the same command again "
            "sends the rest",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("interrupted: an object is stored only once it is sent whole; run the same command "
              "again", file=sys.stderr)
        return 130
    except (CommandError, NotADirectoryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # botocore errors (credentials, region, access, throttling) go up to aws_errors, via cli.main.
