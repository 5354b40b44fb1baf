#!/bin/bash
# Entry point of every processing step: unpack the container code bundle and run one script of it.
# Usage: run_step.sh SCRIPT.py [ARGS...]. The bundle arrives as a processing input in ../bundle/
# relative to this file, so the same script works under /opt/ml and under the local executor's folders.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bundle="$here/../bundle/sourcedir.tar.gz"
if [ ! -f "$bundle" ]; then
  echo "run_step.sh: code bundle not found at $bundle" >&2
  exit 2
fi
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
tar -xzf "$bundle" -C "$workdir"
script="$1"
shift
cd "$workdir"
# Not exec: the trap removes the unpacked code when the script ends (local runs reuse one /tmp).
python3 "$workdir/$script" "$@"
