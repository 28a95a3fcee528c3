#!/usr/bin/env bash
# The main job: set-up, then a real team on the embedded model, served in-process by vLLM.
# Extra arguments go to examples/debate.py (try --json or --inter-round summarize).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
python examples/debate.py "$@"
