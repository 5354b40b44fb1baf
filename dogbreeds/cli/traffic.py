"""`dogbreeds traffic`: the command line of dogbreeds/traffic.py, which sends and records the requests."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dogbreeds import traffic
from dogbreeds.environment import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "traffic",
        help="send images to an endpoint (name or local URL), optionally drifted, and record the ids",
        description=traffic.__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--endpoint",
        required=True,
        help="SageMaker endpoint name, or a URL (http(s)://host:port; host:port means http://)",
    )
    parser.add_argument("--images", required=True, type=Path, help="ImageFolder tree to send from")
    parser.add_argument(
        "--env",
        default="dev",
        help="environment in cdk.json whose region an endpoint name is called in (default: %(default)s)",
    )
    parser.add_argument(
        "--cdk-json", type=Path, default=None,
        help="cdk.json to read the region from (./cdk.json, else the project's)",
    )  # fmt: skip
    parser.add_argument("--count", type=int, default=100, help="requests to send")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests per second (0: as fast as possible)"
    )
    parser.add_argument("--drift", choices=traffic.DRIFTS, default=None, help="distort every image this way")
    parser.add_argument("--record", type=Path, default=None, help="append one JSON line per request here")
    parser.add_argument("--seed", type=int, default=0, help="random seed for image choice and drift")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        images = traffic.find_images(args.images)
        send = traffic.sender_for(args.endpoint, args.env, args.cdk_json)
        summary = traffic.send_traffic(
            send,
            images,
            count=args.count,
            rate=args.rate,
            drift=args.drift,
            record=args.record,
            seed=args.seed,
        )
    except (ValueError, CommandError) as error:  # ImageDecodeError is a ValueError
        print(f"dogbreeds traffic: error: {error}", file=sys.stderr)
        return 2
    # botocore setup errors (credentials, region, access) go up to aws_errors, via cli.main.
    print(json.dumps(summary, sort_keys=True))
    return 0 if set(summary["statuses"]) == {"200"} else 1
