"""codetier against LiteLLM's proxy, a real OpenAI-compatible server: the CLI and the LSP answer
through it, cost is LiteLLM's reported usage times the price, and its real 401/429/500 answers
reach the user as codetier's messages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lsprotocol import types

from conftest import EXPLAIN, KEY, LITELLM_MODELS, binary, codetier_env
from lsp_helpers import open_document, start_client

LIB_RS = "fn main() {\n    let unused = 1;\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n"
PRICES = {"deepseek-v4-flash": 0.25, "qwen3-coder-30b": 0.35, "deepseek-v4-pro": 0.78, "deepseek-r1": 2.50}

CONFIG = """
[tiers.limited]
model = "rate-limited"
[tiers.broken]
model = "failing"
[tiers.locked]
model = "locked"
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text(LIB_RS)
    (tmp_path / "config.toml").write_text(CONFIG)
    return tmp_path


def run(project: Path, base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [binary("codetier"), *args],
        cwd=project,
        env=codetier_env(project / ".home", base_url),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert KEY not in out.stdout and KEY not in out.stderr, "the key leaked"
    return out


def reported_tokens(litellm, model: str) -> int:
    return litellm.streamed_usage(model, "how many tokens is your answer?")["completion_tokens"]


def test_cli_explain_answers_through_the_proxy(litellm, project):
    out = run(project, litellm.base_url, "explain", "src/lib.rs:2-4")
    assert out.returncode == 0, out
    assert "one past the end" in out.stdout, out


def test_cli_review_cost_is_litellm_usage_times_the_price(litellm, project):
    out = run(project, litellm.base_url, "review", "--tier", "coder", "--format", "json", "src/lib.rs")
    assert out.returncode == 0, out
    doc = json.loads(out.stdout)
    assert doc["files"][0]["model"] == "qwen3-coder-30b", doc
    assert doc["summary"]["findings"] == 1, doc
    tokens = reported_tokens(litellm, "qwen3-coder-30b")
    assert tokens > 0
    assert doc["summary"]["cost_usd"] == pytest.approx(tokens * PRICES["qwen3-coder-30b"] / 1e6, rel=1e-9), (tokens, doc)


@pytest.mark.parametrize(
    ("tier", "words"),
    [
        ("limited", ["rate", "429"]),
        ("broken", ["500"]),
        ("locked", ["401", "GLOBAL_API_KEY"]),
    ],
)
def test_cli_gets_codetier_s_message_for_litellm_s_errors(litellm, project, tier, words):
    out = run(project, litellm.base_url, "--config", str(project / "config.toml"), "explain", "--tier", tier, "src/lib.rs:2-4")
    assert out.returncode != 0, out
    said = out.stderr.lower()
    for word in words:
        assert word.lower() in said, (word, out.stderr)
    assert "traceback" not in said and "panicked" not in said, out.stderr


@pytest.mark.asyncio
async def test_lsp_explain_through_the_proxy_reports_litellm_s_usage_and_cost(litellm, tmp_path):
    client = await start_client(tmp_path, litellm.base_url, "visual-studio-code")
    try:
        uri = await open_document(client, tmp_path, "src/lib.rs", LIB_RS)
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="codetier.explain",
                arguments=[{"uri": uri, "range": {"start": {"line": 1, "character": 0}, "end": {"line": 4, "character": 0}}}],
            )
        )
        assert result["model"] == "deepseek-v4-flash", result
        assert "one past the end" in result["text"], result
        tokens = reported_tokens(litellm, "deepseek-v4-flash")
        assert result["usage"]["output_tokens"] == tokens, (tokens, result)
        assert result["cost_usd"] == pytest.approx(tokens * PRICES["deepseek-v4-flash"] / 1e6, rel=1e-9), result
    finally:
        await client.shutdown_session()
        await client.stop()


def test_every_seed_tier_is_served(litellm):
    # The proxy's own model list holds every model the default tiers ask for.
    for model in LITELLM_MODELS:
        assert litellm.chat(model, "ping")["choices"][0]["message"]["content"], model
    assert EXPLAIN
