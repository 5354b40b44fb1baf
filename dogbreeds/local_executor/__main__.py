"""`python -m dogbreeds.local_executor DEFINITION.json`: the command is dogbreeds/cli/local_executor.py."""

import sys

from dogbreeds.cli.local_executor import main

sys.exit(main())
