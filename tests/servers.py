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

from agentgraph.core.models import provision

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_processes() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,comm"], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines()[1:] if "VLLM" in line}


def start_server(
    port: int,
    log: Path,
    *,
    max_model_len: int = 2048,
    block_size: int = 32,
    lora_rank: int | None = None,
    model: str | None = None,
    name: str = "smollm2",
) -> subprocess.Popen[bytes]:
    """The embedded model (or ``model``) behind the OpenAI-compatible server, served as ``name``. Its
    output goes to ``log`` (a pipe nobody reads would fill up and stall the server). With
    ``lora_rank`` it serves adapters loaded at run time and reports processed log-probs, as a
    training fleet is started."""
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model or provision(),
        "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
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


def start_serve(
    tmp: Path, *args: str, env: dict[str, str] | None = None, backend: str = "scripted", timeout: float = 60
) -> tuple[subprocess.Popen[str], str]:
    """`agentgraph serve` as a subprocess on a free loopback port, its log in ``tmp``; (process, URL)
    once it answers ``/v1/models``."""
    port = free_port()
    cmd = [sys.executable, "-m", "agentgraph", "serve", "--backend", backend, "--port", str(port)]
    log = (tmp / f"serve-{port}.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp / f"run-{port}"), *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code in (200, 401):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError((tmp / f"serve-{port}.log").read_text())
