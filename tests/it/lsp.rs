//! `icd lsp`, driven by a real LSP client: `tests/lsp/test_icd_lsp.py` (pytest-lsp)
//! against the test build's icd and the fixture model.

use std::process::Command;

use crate::common::*;

#[test]
fn the_language_server_passes_its_client_tests() {
    let workspace = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/lsp"))
        .env("ICD_BIN", env!("CARGO_BIN_EXE_icd"))
        .env("ICD_LSP_MODEL", fixture("roberta-2-labels"))
        .env("ICD_LSP_WORKSPACE", workspace.path())
        .env("ICD_CACHE_DIR", cache.path())
        .env_remove("ICD_MODEL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.contains("No module named 'pytest_lsp'")
        || stderr.contains("No module named 'pytest_lsp'")
    {
        panic!("the language server's test needs pytest-lsp: pip install pytest-lsp (./scripts/test does)");
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Both tests ran: none was skipped.
    assert!(stdout.contains("2 passed"), "{stdout}");
}

/// `icd lsp` over raw JSON-RPC: what a client sends is framed and written as it is,
/// and every message the server sends is read back, so that malformed parameters
/// (which a typed client would refuse to send) reach the server.
struct RawClient {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    messages: std::sync::mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl RawClient {
    fn start(workspace: &std::path::Path, cache: &std::path::Path) -> RawClient {
        use std::io::{BufRead, Read};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_icd"))
            .arg("--model")
            .arg(fixture("roberta-2-labels"))
            .args(["--backend", "flex", "lsp", "--threshold", "0"])
            .env("ICD_CACHE_DIR", cache)
            .env_remove("ICD_MODEL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (sender, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let mut length = 0;
            loop {
                let mut line = String::new();
                if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(n) = line.strip_prefix("Content-Length: ") {
                    length = n.parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            stdout.read_exact(&mut body).unwrap();
            if sender.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        });
        let mut client = RawClient {
            child,
            stdin,
            messages,
            seen: Vec::new(),
        };
        let root = url_of(workspace);
        client.send(
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"capabilities": {}, "rootUri": root}}),
        );
        client.wait(|m| m["id"] == 1);
        client.send(serde_json::json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        client
    }

    fn send(&mut self, message: serde_json::Value) {
        use std::io::Write;
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The first message from now on that `wanted` accepts.
    fn wait(&mut self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let message = self
                .messages
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no such message; seen: {:?}", self.seen));
            self.seen.push(message.clone());
            if wanted(&message) {
                return message;
            }
        }
    }

    /// The exit status after `exit`.
    fn exit(mut self) -> Option<i32> {
        self.send(serde_json::json!({"jsonrpc": "2.0", "method": "exit"}));
        drop(self.stdin);
        self.child.wait().unwrap().code()
    }
}

fn url_of(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn malformed_messages_are_answered_or_logged_and_the_server_goes_on() {
    let workspace = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut client = RawClient::start(workspace.path(), cache.path());
    let file = url_of(&workspace.path().join("a.c"));
    let log_of = |method: &'static str| {
        move |m: &serde_json::Value| {
            m["method"] == "window/logMessage"
                && m["params"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("icd: {method}: "))
        }
    };
    // A didOpen without its languageId, a didChange without params: logged.
    client.send(serde_json::json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
        "params": {"textDocument": {"uri": file, "version": 1, "text": "int f(void) { return 0; }\n"}}}));
    let logged = client.wait(log_of("textDocument/didOpen"));
    assert!(
        logged["params"]["message"]
            .as_str()
            .unwrap()
            .contains("languageId"),
        "{logged}"
    );
    client.send(
        serde_json::json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": null}),
    );
    client.wait(log_of("textDocument/didChange"));
    // A code action with no parameters: answered with InvalidParams.
    client.send(serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "textDocument/codeAction", "params": {}}));
    let answer = client.wait(|m| m["id"] == 2);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    // An unknown request: MethodNotFound.
    client.send(serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": {}}));
    assert_eq!(client.wait(|m| m["id"] == 3)["error"]["code"], -32601);
    // The server still works: a well-formed open is analyzed.
    client.send(
        serde_json::json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
        "params": {"textDocument": {"uri": file, "languageId": "c", "version": 1,
        "text": "int f(void)\r\n{\r\n    return 0;\r\n}\r\n"}}}),
    );
    let published = client.wait(|m| m["method"] == "textDocument/publishDiagnostics");
    let diagnostics = published["params"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{published}");
    // CRLF lines: the range ends at the last line's last character, before its CR.
    assert_eq!(
        diagnostics[0]["range"]["end"],
        serde_json::json!({"line": 3, "character": 1})
    );
    // The code action keeps the document's line endings.
    client.send(
        serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "textDocument/codeAction",
        "params": {"textDocument": {"uri": file}, "range": diagnostics[0]["range"],
        "context": {"diagnostics": [diagnostics[0]]}}}),
    );
    let actions = client.wait(|m| m["id"] == 4);
    let edit = &actions["result"][0]["edit"]["changes"][&file][0];
    assert_eq!(
        edit["newText"],
        "// icd: ignore <reason: why this function is safe>\r\n"
    );
    // Shutdown, then exit: status 0.
    client.send(serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}));
    client.wait(|m| m["id"] == 5);
    assert_eq!(client.exit(), Some(0));

    // Exit without shutdown: status 1, as the protocol says.
    let client = RawClient::start(workspace.path(), cache.path());
    assert_eq!(client.exit(), Some(1));
}
