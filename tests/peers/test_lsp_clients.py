"""pytest-lsp driving the real codetier binary with the capability profiles it ships for VS Code
and Neovim, and a bare client: initialize, open, code actions, each command, cancel, a
configuration change, shutdown. pytest-lsp checks every result and server request against the
declared capabilities; pytest.ini turns each of its spec warnings into a failure."""

from __future__ import annotations

import asyncio
import json

import pytest
from lsprotocol import types

from conftest import FINDINGS
from lsp_helpers import PROFILES, capabilities, open_document, raw_request, start_client

LIB_RS = "fn main() {\n    let unused = 1;\n}\n\nfn largest(values: &[i32]) -> i32 {\n    todo!()\n}\n"
CODE = "```rust\nfn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n```"


def rng(sl: int, sc: int, el: int, ec: int) -> dict:
    return {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}


def literal_support(profile) -> bool:
    caps = capabilities(profile)
    ca = caps.text_document and caps.text_document.code_action
    return bool(ca and ca.code_action_literal_support)


async def command(client, name: str, uri: str, r: dict, **extra):
    args = {"uri": uri, "range": r, **extra}
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command=f"codetier.{name}", arguments=[args]))


@pytest.fixture(params=PROFILES, ids=lambda p: p or "bare")
async def session(request, fake, tmp_path):
    fake.script({"default": {"answer": {"text": FINDINGS}}})
    client = await start_client(tmp_path, fake.base_url, request.param)
    yield client, request.param, tmp_path
    await client.shutdown_session()
    assert client._server.returncode == 0, "shutdown then exit must exit 0"
    await client.stop()


@pytest.mark.asyncio
async def test_initialize_open_and_code_actions(session):
    client, profile, root = session
    uri = await open_document(client, root, "src/lib.rs", LIB_RS)
    cursor = types.Position(line=1, character=4)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=cursor, end=cursor),
        context=types.CodeActionContext(diagnostics=[]),
    )
    actions = await raw_request(client, "textDocument/codeAction", params, "code-actions-1")
    titles = [a["title"] for a in actions]
    assert {"Explain bug (Flash)", "Review selection (Flash)", "Generate function (Flash)"} <= set(titles), titles
    if literal_support(profile):
        # CodeAction literals: a kind and a nested command.
        assert all(a["kind"].startswith("refactor.codetier") and isinstance(a["command"], dict) for a in actions), actions
    else:
        # Bare Commands: the command is the identifier string.
        assert all(isinstance(a["command"], str) and "kind" not in a for a in actions), actions
    assert all("isPreferred" not in a for a in actions), actions


@pytest.mark.asyncio
async def test_each_command_answers_where_the_client_can_see_it(session, fake):
    client, profile, root = session
    uri = await open_document(client, root, "src/lib.rs", LIB_RS)

    review = await command(client, "review", uri, rng(0, 0, 3, 0))
    assert review["action"] == "review" and len(review["findings"]) == 1, review
    await asyncio.wait_for(_until(lambda: client.diagnostics.get(uri)), 10)
    assert [d.source for d in client.diagnostics[uri]] == ["codetier"], client.diagnostics[uri]

    fake.script({"default": {"answer": {"text": "The value is never read.\n\nFix: remove it."}}})
    explain = await command(client, "explain", uri, rng(1, 0, 2, 0))
    assert explain["action"] == "explain" and "never read" in explain["text"], explain

    fake.script({"default": {"answer": {"text": CODE}}})
    generate = await command(client, "generate", uri, rng(4, 0, 7, 0))
    assert generate["action"] == "generate", generate
    caps = capabilities(profile)
    if caps.workspace and caps.workspace.apply_edit:
        await asyncio.wait_for(_until(lambda: client.applied_edits), 10)
        edit = client.applied_edits[0]
        texts = json.dumps(client.protocol._converter.unstructure(edit))
        assert "max()" in texts, texts
    else:
        assert client.applied_edits == [], "applyEdit sent to a client that did not declare it"

    usage = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codetier.usage", arguments=[]))
    assert usage, usage


@pytest.mark.asyncio
async def test_cancel_stops_a_slow_command(session, fake):
    client, _profile, root = session
    uri = await open_document(client, root, "src/lib.rs", LIB_RS)
    fake.script({"default": {"ttft": {"kind": "fixed", "ms": 15000}, "answer": {"text": FINDINGS}}})
    params = types.ExecuteCommandParams(command="codetier.review", arguments=[{"uri": uri, "range": rng(0, 0, 3, 0)}])
    pending = asyncio.wrap_future(client.protocol.send_request("workspace/executeCommand", params, msg_id="slow-review"))
    await asyncio.sleep(0.3)
    client.protocol.notify("$/cancelRequest", types.CancelParams(id="slow-review"))
    with pytest.raises(Exception) as err:
        await asyncio.wait_for(pending, 5)
    assert "-32800" in str(err.value) or "cancel" in str(err.value).lower(), err.value
    fake.script({"default": {"answer": {"text": FINDINGS}}})


@pytest.mark.asyncio
async def test_a_configuration_change_applies_to_the_next_command(session, fake):
    client, _profile, root = session
    uri = await open_document(client, root, "src/lib.rs", LIB_RS)
    fake.script({"default": {"answer": {"text": "It reads past the end."}}})
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codetier": {"actions": {"explain": {"tier": "pro"}}}})
    )
    explain = await command(client, "explain", uri, rng(1, 0, 2, 0))
    assert explain["tier"] == "pro" and explain["model"] == "deepseek-v4-pro", explain
    # A bad value is refused with a message and the previous configuration stays.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codetier": {"max_tokens": "lots"}}))
    await asyncio.wait_for(_until(lambda: any("max_tokens" in m.message for m in client.messages)), 10)
    again = await command(client, "explain", uri, rng(1, 0, 2, 0), fresh=True)
    assert again["tier"] == "pro", again


async def _until(ready, step: float = 0.05):
    while not ready():
        await asyncio.sleep(step)
    return ready()
