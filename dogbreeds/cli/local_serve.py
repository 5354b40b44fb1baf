"""`dogbreeds local serve`: the command line of dogbreeds/local_serve.py, which serves a model behind
SageMaker's HTTP contract on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from dogbreeds.local_registry import DEFAULT_WORKDIR
from dogbreeds.local_serve import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, ServeOptions, serve


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a registered version or a model artifact with SageMaker's /ping and /invocations",
        description=(
            "Serve a model as a SageMaker PyTorch endpoint does: TorchServe's Python worker with "
            "the inference toolkit's handler service and the model's container environment, "
            "optionally writing SageMaker data capture. Give exactly one of --version and --model."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--version", type=int, default=None,
        help="a version of the local model registry: its ModelDataUrl and container Environment",
    )  # fmt: skip
    source.add_argument(
        "--model", default=None,
        help="a model folder or model.tar.gz, with the environment the training pipeline registers",
    )  # fmt: skip
    parser.add_argument(
        "--group", default=None,
        help="model package group (with --version; needed only when there are several)",
    )  # fmt: skip
    parser.add_argument(
        "--workdir", default=DEFAULT_WORKDIR,
        help="local mode's working folder (with --version; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="with --model: set or override a container environment variable (repeatable)",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--capture-dir", type=Path, default=None, help="write data capture here")
    parser.add_argument(
        "--capture-percent", type=float, default=100.0, help="share of requests captured (0-100)"
    )
    parser.add_argument("--endpoint-name", default="dogbreeds-local", help="capture folder name")
    parser.add_argument("--variant-name", default="AllTraffic", help="production variant name")
    parser.add_argument(
        "--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT, metavar="SECONDS",
        help="time a client has to send a whole request head (request line and headers) once the "
        "server waits for it; a slower one gets 408 and is closed (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
        help="connections served at once, a thread each; one more gets 503 and is closed "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return serve(
        ServeOptions(
            version=args.version,
            model=args.model,
            group=args.group,
            workdir=args.workdir,
            env_overrides=tuple(args.env),
            port=args.port,
            host=args.host,
            capture_dir=args.capture_dir,
            capture_percent=args.capture_percent,
            endpoint_name=args.endpoint_name,
            variant_name=args.variant_name,
            header_timeout=args.header_timeout,
            max_connections=args.max_connections,
            verbose=args.verbose,
        )
    )
