"""Peak memory of the trainer's log-prob + backward pass against completion length and vocabulary size:
ours (chunked head, :mod:`agentgraph.train.logprobs`) against full logits (``model(...).logits`` then
``selective_log_softmax``, what the trainer did before and what a plain implementation does).

Each measurement runs in a fresh process on a random-weight 2-layer Qwen2 model (hidden 128) built
from a config with the given vocabulary, so the head dominates as it does for a 1.5B model with a
151,936-token vocabulary. CPU: peak resident memory of the pass (``/proc/self/clear_refs`` resets the
high-water mark, then ``VmHWM − VmRSS`` before); CUDA: ``torch.cuda.max_memory_allocated`` above what
was allocated before the pass.

    python bench/train_memory.py --json

With ``--json`` the last line is one JSON object: ``rows`` (``length``, ``vocab``, ``batch``,
``peak_mb``, ``full_logits_peak_mb``), and ``peak_mb`` / ``full_logits_peak_mb`` of the largest row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentgraph.testing.tiny import tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(model: str, length: int, batch: int, mode: str) -> float:
    """MB of the pass above what was in use before it (run in its own process)."""
    import torch
    from trl.trainer.utils import selective_log_softmax

    from agentgraph.train import RoleGRPOConfig
    from agentgraph.train.policies.lora import LoRAPolicy, Sample

    policy = LoRAPolicy(model, RoleGRPOConfig(train_roles=("solver",), lora_r=8, logprob_chunk=512))
    policy.model.train()
    g = torch.Generator().manual_seed(length)
    prompt = list(range(1, 17))
    comps = [torch.randint(0, 30_000, (length,), generator=g).tolist() for _ in range(batch)]
    samples = [Sample("solver", prompt, c, None, 1.0) for c in comps]
    cuda = policy.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")
        before = rss_kb("VmRSS") * 1024
    if mode == "ours":
        lp, _ = policy.logps(samples)
    else:
        ids = torch.tensor([prompt + c for c in comps], device=policy.device)
        with policy.accelerator.autocast():
            logits = policy.model(input_ids=ids).logits[:, len(prompt) - 1 : -1]
        lp = selective_log_softmax(logits.float(), torch.tensor(comps, device=policy.device))
    lp.sum().backward()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = rss_kb("VmHWM") * 1024
    return (peak - before) / 2**20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="256,512,1024,2048", help="completion lengths")
    ap.add_argument("--vocabs", default="32000,151936", help="vocabulary sizes")
    ap.add_argument("--batch", type=int, default=2, help="completions per pass")
    ap.add_argument("--json", action="store_true", help="end with one JSON object")
    ap.add_argument("--one", nargs=4, metavar=("MODEL", "LENGTH", "BATCH", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        model, length, batch, mode = args.one
        print(json.dumps({"mb": measure(model, int(length), int(batch), mode)}))
        return {}
    import torch

    root = Path(tempfile.gettempdir()) / "agentgraph-bench-models"
    rows = []
    for vocab in (int(v) for v in args.vocabs.split(",")):
        model = tiny_model(root, vocab)
        for length in (int(n) for n in args.lengths.split(",")):
            row: dict[str, Any] = {"length": length, "vocab": vocab, "batch": args.batch}
            for mode, key in (("ours", "peak_mb"), ("full", "full_logits_peak_mb")):
                cmd = [sys.executable, __file__, "--one", model, str(length), str(args.batch), mode]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                row[key] = round(json.loads(out.strip().splitlines()[-1])["mb"], 1)
            rows.append(row)
            print(
                f"vocab {vocab:>7}  length {length:>5}  ours {row['peak_mb']:>8.1f} MB  "
                f"full logits {row['full_logits_peak_mb']:>8.1f} MB",
                file=sys.stderr,
            )
    last = rows[-1]
    summary = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "rows": rows,
        "peak_mb": last["peak_mb"],
        "full_logits_peak_mb": last["full_logits_peak_mb"],
    }
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
