#!/usr/bin/env bash
# The main job: set-up, then `agentgraph demo` — a single agent vs chain:3, full:3 and tree:2x1 on
# generated arithmetic, real teams on the embedded model served in-process by vLLM, ending with the
# comparison table and the path of its report. Extra arguments go to `agentgraph demo` (--json, --limit N).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
agentgraph demo "$@"
