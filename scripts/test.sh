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
mypy --strict agentgraph
echo "== lint-imports (layers of the data flow)" >&2
lint-imports
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # the viewer's real-browser test drives Debian's headless Chromium through its chromedriver
  echo "== installing chromium and chromium-driver (the viewer's browser test)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "== pytest" >&2
python -m pytest -q -rs "$@"
