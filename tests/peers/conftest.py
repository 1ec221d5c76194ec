"""Real peers for codetier's suite: LiteLLM's proxy (a real OpenAI-compatible server nobody here
wrote) and pytest-lsp (a real LSP client with real editors' capability profiles).

Everything runs on 127.0.0.1: the fake provider (target/debug/fake-provider) for pytest-lsp's
tests, and LiteLLM's proxy with `mock_response` models (plus one model forwarded to a fake
provider that expects another key, for LiteLLM's real 401 path).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-peers-test-3c9e-SECRET"

# What LiteLLM's mock models answer, by the seed's tier models.
EXPLAIN = "The loop reads one past the end: `0..=values.len()` indexes `values[len]`.\n\nFix: use `0..values.len()`."
FINDINGS = json.dumps(
    [{"line": 2, "severity": "warning", "message": "the value is never used", "replacement": "    let _unused = 1;"}]
)


def binary(name: str) -> str:
    env = {"codetier": "CODETIER_BIN", "fake-provider": "FAKE_PROVIDER_BIN"}[name]
    path = os.environ.get(env) or str(ROOT / "target" / "debug" / name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: run `cargo build --workspace --bins` (or set {env})")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fake:
    """The fake provider binary on a loopback port, scriptable over HTTP."""

    def __init__(self, script: dict):
        self.proc = subprocess.Popen(
            [binary("fake-provider"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        words = [w for w in line.split() if w.startswith("http")]
        if not words:
            self.proc.kill()
            pytest.fail(f"the fake provider printed no URL: {line!r} {self.proc.stderr.read()}")
        self.base_url = words[0].rstrip("/")
        self.script(script)

    def script(self, script: dict) -> None:
        root = self.base_url.removesuffix("/v1")
        req = urllib.request.Request(
            f"{root}/_fake/script",
            data=json.dumps(script).encode(),
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def fake():
    fake = Fake({"default": {"answer": {"text": FINDINGS}}})
    yield fake
    fake.stop()


LITELLM_MODELS = {
    # The seed's tiers, each answering at once with a canned text.
    "deepseek-v4-flash": EXPLAIN,
    "qwen3-coder-30b": FINDINGS,
    "deepseek-v4-pro": "```rust\nfn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n```",
    "deepseek-r1": EXPLAIN,
}


class LiteLLM:
    def __init__(self, locked_upstream: str, workdir: Path):
        exe = shutil.which("litellm", path=str(Path(sys.executable).parent)) or shutil.which("litellm")
        if exe is None:
            pytest.fail("LiteLLM's proxy is not installed: run scripts/deps (it installs tests/peers/requirements.txt)")
        port = free_port()
        lines = ["model_list:"]
        for name, text in LITELLM_MODELS.items():
            lines += [
                f"  - model_name: {name}",
                "    litellm_params:",
                f"      model: openai/{name}",
                "      api_key: unused",
                f"      mock_response: {json.dumps(text)}",
            ]
        lines += [
            "  - model_name: rate-limited",
            "    litellm_params:",
            "      model: openai/rate-limited",
            "      api_key: unused",
            "      mock_response: litellm.RateLimitError",
            "  - model_name: failing",
            "    litellm_params:",
            "      model: openai/failing",
            "      api_key: unused",
            "      mock_response: litellm.InternalServerError",
            # Forwarded to a provider that wants another key: LiteLLM's own 401 path.
            "  - model_name: locked",
            "    litellm_params:",
            "      model: openai/locked",
            f"      api_base: {locked_upstream}",
            "      api_key: sk-not-the-right-key",
            "litellm_settings:",
            "  num_retries: 0",
            "  request_timeout: 20",
        ]
        config = workdir / "litellm.yaml"
        config.write_text("\n".join(lines) + "\n")
        env = dict(os.environ)
        env["LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY"] = "true"
        env["LITELLM_LOG"] = "ERROR"
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        env["DISABLE_ADMIN_UI"] = "True"
        self.log = open(workdir / "litellm.log", "w")
        self.proc = subprocess.Popen(
            [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"LiteLLM's proxy did not start; its log:\n{(workdir / 'litellm.log').read_text()[-4000:]}")
                time.sleep(0.25)

    def streamed_usage(self, model: str, content: str) -> dict:
        """The usage LiteLLM reports at the end of a streamed answer, as codetier asks for it
        (LiteLLM counts a streamed mock answer differently from the same answer unstreamed)."""
        body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True, "stream_options": {"include_usage": True}}
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
        )
        usage = None
        for raw in urllib.request.urlopen(req, timeout=20):
            line = raw.decode().strip()
            if line.startswith("data: {"):
                chunk = json.loads(line[len("data: "):])
                usage = chunk.get("usage") or usage
        assert usage, "LiteLLM sent no usage"
        return usage

    def chat(self, model: str, content: str) -> dict:
        """A direct, non-streamed request: what LiteLLM itself answers for this model."""
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
        )
        return json.loads(urllib.request.urlopen(req, timeout=20).read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def litellm(tmp_path_factory):
    upstream = Fake({"expected_key": "sk-the-upstream-wants-this", "default": {"answer": {"text": "never"}}})
    proxy = LiteLLM(upstream.base_url, tmp_path_factory.mktemp("litellm"))
    yield proxy
    proxy.stop()
    upstream.stop()


def codetier_env(home: Path, base_url: str) -> dict[str, str]:
    """The environment codetier runs in: a clean home, the key, and the endpoint."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLOBAL_API_KEY", "CODETIER_BASE_URL", "CODETIER_LOG", "RUST_LOG")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        GLOBAL_API_KEY=KEY,
        CODETIER_BASE_URL=base_url,
        NO_COLOR="1",
    )
    return env
