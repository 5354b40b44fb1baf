#!/bin/bash
# Entry point of every processing step: unpack the container code bundle and run one script of it.
# Usage: run_step.sh BUNDLE.tar.gz SCRIPT.py [ARGS...]. The bundle is a processing input; SageMaker
# names the downloaded object after its S3 key (a CDK asset's content hash), so the pipeline
# definition passes its path rather than this script guessing a name.
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: run_step.sh BUNDLE.tar.gz SCRIPT.py [ARGS...]" >&2
  exit 2
fi
bundle="$1"
script="$2"
shift 2
if [ ! -f "$bundle" ]; then
  echo "run_step.sh: code bundle not found at $bundle" >&2
  exit 2
fi
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
tar -xzf "$bundle" -C "$workdir"
if [ ! -f "$workdir/$script" ]; then
  echo "run_step.sh: the code bundle has no $script" >&2
  exit 2
fi
cd "$workdir"
# Not exec: the trap removes the unpacked code when the script ends (local runs reuse one /tmp).
python3 "$workdir/$script" "$@"
