#!/usr/bin/env bash
# The test command: set-up, then ruff, mypy --strict on the packages, import-linter, and pytest (doctests, fast scripted tests
# and the real vLLM tests on the embedded model). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
echo "== ruff" >&2
ruff check .
ruff format --check .
echo "== mypy --strict" >&2
mypy --strict agentgraph topologies roles
echo "== lint-imports (layers of the data flow)" >&2
lint-imports
echo "== pytest" >&2
python -m pytest -q -rs "$@"
