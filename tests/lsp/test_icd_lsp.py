"""`icd lsp` driven by a real LSP client (pytest-lsp): initialize, open, diagnostics,
the code action, change and save, close and reopen, shutdown.

Run by tests/it/lsp.rs, which sets ICD_BIN (the icd under test), ICD_LSP_MODEL (the
fixture checkpoint), ICD_LSP_WORKSPACE (an empty directory) and ICD_CACHE_DIR.
"""

import os
import pathlib

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

ICD = os.environ.get("ICD_BIN", "")
MODEL = os.environ.get("ICD_LSP_MODEL", "")
WORKSPACE = pathlib.Path(os.environ.get("ICD_LSP_WORKSPACE", "."))

pytestmark = pytest.mark.skipif(not ICD, reason="run by tests/it/lsp.rs, which sets ICD_BIN")

SOURCE = """#include <string.h>

void copy_name(char *dst, const char *src)
{
    strcpy(dst, src);
}

    int get(const int *a, int i)
    {
        return a[i];
    }
"""

SUPPRESSION = "// icd: ignore <reason: why this function is safe>"


async def started(client: LanguageClient):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=WORKSPACE.as_uri(),
        )
    )


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[ICD, "--model", MODEL, "--backend", "flex", "lsp", "--threshold", "0"]
    ),
)
async def client(lsp_client: LanguageClient):
    await started(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[ICD, "--model", "/nonexistent/model", "lsp"]),
)
async def broken(lsp_client: LanguageClient):
    await started(lsp_client)
    yield
    await lsp_client.shutdown_session()


def cache_notes(client: LanguageClient):
    return [m.message for m in client.log_messages if "prediction cache" in m.message]


async def publish(client: LanguageClient, notify):
    """Sends a notification and waits for the diagnostics it makes."""
    waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    notify()
    await waiting


@pytest.mark.asyncio
async def test_findings_code_action_and_cache(client: LanguageClient):
    path = WORKSPACE / "src" / "a.c"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SOURCE)
    uri = path.as_uri()
    item = types.TextDocumentItem(uri=uri, language_id="c", version=1, text=SOURCE)
    await publish(client, lambda: client.text_document_did_open(types.DidOpenTextDocumentParams(item)))

    # A diagnostic per function (threshold 0), on the function's lines.
    diagnostics = sorted(client.diagnostics[uri], key=lambda d: d.range.start.line)
    assert [(d.range.start.line, d.range.end.line) for d in diagnostics] == [(2, 5), (7, 10)]
    for d in diagnostics:
        assert d.source == "icd"
        assert d.severity == types.DiagnosticSeverity.Warning
        assert "is classified insecure: probability" in d.message
        assert d.related_information, d
        for related in d.related_information:
            assert related.location.uri == uri
            assert d.range.start.line <= related.location.range.start.line <= d.range.end.line
            assert related.message.startswith("the model attended to this line")
    assert cache_notes(client) == [f"icd: 0 of 2 functions of {path} from the prediction cache"]
    assert any(m.message == "icd: the model is loaded" for m in client.log_messages)

    # The code action inserts the comment above the function, indented as it is.
    for d, indent in zip(diagnostics, ["", "    "]):
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=d.range,
                context=types.CodeActionContext(diagnostics=[d]),
            )
        )
        assert len(actions) == 1
        action = actions[0]
        assert action.kind == types.CodeActionKind.QuickFix
        [edit] = action.edit.changes[uri]
        assert edit.range.start == edit.range.end == types.Position(line=d.range.start.line, character=0)
        assert edit.new_text == f"{indent}{SUPPRESSION}\n"

    # Applied to the first function and saved: that function is suppressed, and both
    # answer from the cache (their text did not change, only their lines).
    lines = SOURCE.splitlines(keepends=True)
    lines.insert(2, SUPPRESSION + "\n")
    edited = "".join(lines)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=edited)],
        )
    )
    path.write_text(edited)
    await publish(
        client,
        lambda: client.text_document_did_save(
            types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri=uri), text=edited)
        ),
    )
    assert [(d.range.start.line, d.range.end.line) for d in client.diagnostics[uri]] == [(8, 11)]
    assert cache_notes(client)[-1] == f"icd: 2 of 2 functions of {path} from the prediction cache"

    # Closed: its diagnostics are cleared. Opened again unchanged: no model call.
    await publish(
        client,
        lambda: client.text_document_did_close(
            types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri))
        ),
    )
    assert list(client.diagnostics[uri]) == []
    item = types.TextDocumentItem(uri=uri, language_id="c", version=3, text=edited)
    await publish(client, lambda: client.text_document_did_open(types.DidOpenTextDocumentParams(item)))
    assert len(client.diagnostics[uri]) == 1
    assert cache_notes(client)[-1] == f"icd: 2 of 2 functions of {path} from the prediction cache"


@pytest.mark.asyncio
async def test_a_model_that_cannot_load_is_reported_and_the_server_stays_up(broken: LanguageClient):
    await broken.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
    [message] = broken.messages
    assert message.type == types.MessageType.Error
    assert message.message.startswith("icd: no findings can be reported:")
    assert "/nonexistent/model" in message.message
    # Documents are taken and nothing is published; shutdown is answered.
    item = types.TextDocumentItem(uri=(WORKSPACE / "b.c").as_uri(), language_id="c", version=1, text=SOURCE)
    broken.text_document_did_open(types.DidOpenTextDocumentParams(item))
