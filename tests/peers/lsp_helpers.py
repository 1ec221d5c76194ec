"""Starting the real codetier binary under pytest-lsp's client, as a given editor would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from conftest import binary, codetier_env

# `None` is a bare client: it declares no capability at all.
PROFILES = ["visual-studio-code", "neovim", None]


def make_client() -> LanguageClient:
    """pytest-lsp's client, plus an editor's answer to `workspace/applyEdit` (it applies all)."""
    client = make_test_lsp_client()
    client.applied_edits = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        client.applied_edits.append(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    return client


def capabilities(profile: str | None) -> types.ClientCapabilities:
    return client_capabilities(profile) if profile else types.ClientCapabilities()


async def start_client(root: Path, base_url: str, profile: str | None, init_options: dict | None = None) -> LanguageClient:
    """The binary spawned over stdio, initialized with `profile`'s capabilities and `root` as its
    workspace."""
    config = ClientServerConfig(
        server_command=[binary("codetier"), "--stdio"],
        client_factory=make_client,
        server_env=codetier_env(root / ".home", base_url),
    )
    client = await config.start()
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(profile),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="project")],
            initialization_options=init_options or {},
        )
    )
    return client


async def raw_request(client: LanguageClient, method: str, params, msg_id: str):
    """A request whose result is kept as the JSON the server sent. lsprotocol structures a
    `(Command | CodeAction)[]` result by guesswork and turns CodeActions into Commands, so the
    code-action shape is checked on the raw JSON."""
    from pygls.protocol import JsonRPCResponseMessage

    future = client.protocol.send_request(method, params, msg_id=msg_id)
    # Set before the event loop can read the answer: no conversion for this one.
    client.protocol._result_types[msg_id] = JsonRPCResponseMessage
    return await asyncio.wrap_future(future)


async def open_document(client: LanguageClient, root: Path, rel: str, text: str, language: str = "rust") -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text))
    )
    return uri
