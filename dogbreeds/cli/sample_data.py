"""`dogbreeds sample-data OUT`: write a generated, learnable dataset (dogbreeds/sample_data.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dogbreeds.sample_data import BREEDS, NAMINGS, generate, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample-data",
        help="write a generated, learnable dog-breed-like ImageFolder dataset",
        description=(
            "Write OUT/<class>/<image> pictures whose classes a small network can learn; "
            "the same seed writes byte-identical files."
        ),
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write class folders into")
    parser.add_argument("--breeds", type=int, default=10, help=f"number of classes (2-{len(BREEDS)})")
    parser.add_argument("--per-breed", type=int, default=20, help="images per class")
    parser.add_argument("--size", default="64x64", help="nominal WIDTHxHEIGHT; sizes vary ±25%%")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--naming", choices=NAMINGS, default="plain", help="class folder style")
    parser.add_argument("--broken", type=int, default=0, metavar="K", help="add K broken files")
    parser.add_argument("--no-odd", action="store_true", help="only plain RGB JPEGs")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        size = parse_size(args.size)
        summary = generate(
            args.out,
            breeds=args.breeds,
            per_breed=args.per_breed,
            size=size,
            seed=args.seed,
            naming=args.naming,
            broken=args.broken,
            odd=not args.no_odd,
        )
    except ValueError as error:
        print(f"dogbreeds sample-data: error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary.images} images in {len(summary.class_dirs)} classes to {summary.out_dir}"
        f" ({len(summary.odd_files)} odd, {len(summary.broken_files)} broken)"
    )
    return 0
