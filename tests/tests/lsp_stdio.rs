//! The server on the kinds of stdin and stdout editors give it: pipes (every other protocol
//! test), a socket pair as libuv makes for VS Code and Neovim, and descriptors it must leave
//! in blocking mode when it exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use codetier_tests::client::codetier_bin;
use serde_json::{json, Value};

/// A server whose stdin and stdout are each one end of a socket pair (libuv's `pipe` stdio),
/// with the other ends here; `keep` is a second descriptor of the server's stdin end, so the
/// test can look at the open file description they share.
struct OnSockets {
    child: Child,
    to_server: UnixStream,
    from_server: BufReader<UnixStream>,
    keep: UnixStream,
    _home: tempfile::TempDir,
}

/// How the server's three standard descriptors are wired to the sockets.
#[derive(Clone, Copy, PartialEq)]
enum Wiring {
    /// A socket pair each for stdin and stdout (libuv).
    TwoPairs,
    /// One socket for stdin and stdout, one open file description (socat, inetd).
    OneSocket,
    /// That socket for stderr as well.
    OneSocketWithStderr,
}

fn spawn_on_sockets(wiring: Wiring) -> OnSockets {
    let (to_server, server_in) = UnixStream::pair().expect("socket pair");
    let (from_server, server_out) = if wiring == Wiring::TwoPairs {
        UnixStream::pair().expect("socket pair")
    } else {
        let reader = to_server.try_clone().expect("dup");
        (reader, server_in.try_clone().expect("dup"))
    };
    let stderr = if wiring == Wiring::OneSocketWithStderr {
        Stdio::from(OwnedFd::from(server_in.try_clone().expect("dup")))
    } else {
        Stdio::null()
    };
    let keep = server_in.try_clone().expect("dup");
    let home = tempfile::tempdir().expect("tempdir");
    let child = Command::new(codetier_bin())
        .stdin(Stdio::from(OwnedFd::from(server_in)))
        .stdout(Stdio::from(OwnedFd::from(server_out)))
        .stderr(stderr)
        .env_remove("GLOBAL_API_KEY")
        .env("CODETIER_LOG", "error")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .spawn()
        .expect("spawn codetier");
    OnSockets {
        child,
        to_server,
        from_server: BufReader::new(from_server),
        keep,
        _home: home,
    }
}

impl OnSockets {
    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(
            self.to_server,
            "Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write to the server");
    }

    /// The reply to request `id`, answering (with null) what the server asks meanwhile.
    fn reply(&mut self, id: u64) -> Value {
        loop {
            let mut length = 0;
            loop {
                let mut line = String::new();
                let n = self.from_server.read_line(&mut line).expect("read");
                assert!(n > 0, "the server closed its stdout before answering {id}");
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("Content-Length: ") {
                    length = v.parse().expect("length");
                }
            }
            let mut body = vec![0; length];
            self.from_server.read_exact(&mut body).expect("body");
            let message: Value = serde_json::from_slice(&body).expect("json");
            if message.get("method").is_some() {
                if let Some(asked) = message.get("id") {
                    let answer = json!({ "jsonrpc": "2.0", "id": asked, "result": null });
                    self.send(answer);
                }
                continue;
            }
            if message["id"] == id {
                return message;
            }
        }
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        self.reply(id)
    }
}

/// Whether the open file description behind `fd` (of this process) is in non-blocking mode.
fn non_blocking(fd: &impl AsRawFd) -> bool {
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("fdinfo");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags line");
    let flags = u32::from_str_radix(flags.trim(), 8).expect("octal flags");
    const O_NONBLOCK: u32 = 0o4000;
    flags & O_NONBLOCK != 0
}

/// Initialize, a listing, shutdown and exit over `wiring`; `polled`: whether the server
/// should serve the socket in non-blocking mode.
fn serves_and_leaves_the_socket_blocking(wiring: Wiring, polled: bool) {
    let mut server = spawn_on_sockets(wiring);
    assert!(!non_blocking(&server.keep), "the socket starts blocking");
    let init = server.request(
        1,
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    assert!(
        init["result"]["capabilities"]["codeActionProvider"].is_object(),
        "{init}"
    );
    server.send(json!({ "jsonrpc": "2.0", "method": "initialized", "params": {} }));
    let uri = "file:///w/lib.rs";
    let text = "fn weigh(items: &[u64]) -> u64 {\n    items.iter().sum()\n}\n";
    server.send(
        json!({ "jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": { "uri": uri, "languageId": "rust", "version": 1, "text": text } } }),
    );
    let at = json!({ "line": 1, "character": 4 });
    let actions = server.request(
        2,
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": { "start": at, "end": at },
                "context": { "diagnostics": [] } }),
    );
    let titles: Vec<&str> = actions["result"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(titles.len(), 3, "{actions}");
    // Served on the reactor (or not): the mode of the description the server reads.
    assert_eq!(
        non_blocking(&server.keep),
        polled,
        "the server's socket is in the wrong mode while it serves"
    );

    let shutdown = server.request(3, "shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null, "{shutdown}");
    server.send(json!({ "jsonrpc": "2.0", "method": "exit" }));
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    assert!(
        !non_blocking(&server.keep),
        "the server left its stdin non-blocking for whoever shares it"
    );
}

#[test]
fn a_server_on_socket_pairs_answers_and_leaves_them_blocking_when_it_exits() {
    serves_and_leaves_the_socket_blocking(Wiring::TwoPairs, true);
}

#[test]
fn a_server_on_one_socket_for_stdin_and_stdout_serves_it_polled() {
    serves_and_leaves_the_socket_blocking(Wiring::OneSocket, true);
}

#[test]
fn a_server_whose_stderr_is_its_stdout_keeps_both_blocking() {
    // Non-blocking, the log's lines could be lost; and stdin is the same description.
    serves_and_leaves_the_socket_blocking(Wiring::OneSocketWithStderr, false);
}

#[test]
fn a_server_on_socket_pairs_stops_when_the_editor_closes_them() {
    let mut server = spawn_on_sockets(Wiring::TwoPairs);
    server.request(
        1,
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    let OnSockets {
        mut child,
        to_server,
        keep,
        ..
    } = server;
    // The editor went away: its end and our spare copy of the server's end are closed.
    drop(to_server);
    drop(keep);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server kept running after its stdin closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
