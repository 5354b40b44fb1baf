"""`python -m dogbreeds.local_executor DEFINITION.json`: run any rendered definition file locally.

`dogbreeds local run` is the everyday command (it renders the project's pipeline first); this
entry point runs a definition someone already has, which helps when debugging one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dogbreeds.cli.execution import add_execution_arguments, parse_param_overrides, report
from dogbreeds.cli.help import Parser
from dogbreeds.local_executor.errors import DefinitionError
from dogbreeds.local_executor.executor import run_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m dogbreeds.local_executor", description=__doc__)
    parser.add_argument("definition", type=Path, help="pipeline definition JSON file")
    parser.add_argument("--pipeline-name", default="local-pipeline", help="value of Execution.PipelineName")
    add_execution_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = run_pipeline(
            args.definition.read_text(),
            workdir=args.workdir,
            parameters=parse_param_overrides(args.param),
            pipeline_name=args.pipeline_name,
            echo_logs=args.verbose,
            use_cache=not args.no_cache,
        )
    except (DefinitionError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report(result)
