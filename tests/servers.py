"""Real `vllm serve` processes on loopback for tests, and a look at engine processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentgraph.models import provision


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_processes() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,comm"], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines()[1:] if "VLLM" in line}


def start_server(
    port: int, log: Path, *, max_model_len: int = 2048, block_size: int = 32, lora_rank: int | None = None
) -> subprocess.Popen[bytes]:
    """The embedded model behind the OpenAI-compatible server, served as ``smollm2``. Its output goes
    to ``log`` (a pipe nobody reads would fill up and stall the server). With ``lora_rank`` it serves
    adapters loaded at run time and reports processed log-probs, as a training fleet is started."""
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", provision(),
        "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
        "--max-model-len", str(max_model_len), "--dtype", "float32", "--seed", "0",
        "--block-size", str(block_size),  # as VLLM() picks on CPU, so both sides cache prefixes alike
        "--gpu-memory-utilization", "0.2",  # on a GPU, room for the fleet beside the tests' engines
    ]  # fmt: skip
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    if lora_rank is not None:
        cmd += ["--enable-lora", "--max-lora-rank", str(lora_rank), "--logprobs-mode", "processed_logprobs"]
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            pytest.fail(f"vllm server {url} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"vllm server {url} did not become healthy in time")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
