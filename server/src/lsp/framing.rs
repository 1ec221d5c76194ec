//! Guards the framework's transport from bad input.
//!
//! tower-lsp-server reads stdin through a `tokio_util` `FramedRead`, and that stream ends for
//! good after the first decode error: one message with a broken body or header would stop the
//! server from reading anything else. So stdin is read here first. Well-formed JSON-RPC
//! messages are passed through unchanged; anything else becomes an internal
//! [`INVALID_MESSAGE`] notification, which [`super::dispatch`] answers with the JSON-RPC error
//! the sender deserves (`-32700` for bytes that are not JSON, `-32600` for JSON that is not a
//! JSON-RPC message). The server keeps reading after either.

use bytes::{Buf, BytesMut};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tower_lsp_server::jsonrpc::{Request, Response};

/// Method of the notification that carries a rejected message to the dispatcher.
pub const INVALID_MESSAGE: &str = "$/codetier/invalidMessage";

/// Largest body accepted; larger ones are skipped and answered with an error.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Headers longer than this (before their blank line) are not headers, however the input
/// was split into reads.
pub(crate) const MAX_HEADER_BYTES: usize = 8 << 10;

/// An oversized body is skipped only up to this length. A larger `Content-Length` is not
/// believed (no editor sends a gigabyte): it is a broken header, so the decoder resyncs on the
/// next `Content-Length` rather than throwing the rest of the input away.
const MAX_SKIPPED_BYTES: usize = 1 << 30;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// Reads `input` on a task of its own and returns the stream the framework should read.
pub fn guard<R>(input: R) -> DuplexStream
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::duplex(1 << 16);
    tokio::spawn(pump(input, writer));
    reader
}

async fn pump<R, W>(mut input: R, mut output: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut decoder = Decoder::default();
    let mut framed = Vec::new();
    loop {
        match input.read_buf(&mut decoder.buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!("cannot read from the editor: {e}");
                break;
            }
        }
        while let Some(frame) = decoder.next_frame() {
            framed.clear();
            frame.write_to(&mut framed);
            if output.write_all(&framed).await.is_err() {
                return; // The server stopped reading (it got `exit`).
            }
        }
    }
    // Dropping `output` gives the framework its end of input.
}

/// What the decoder found in the input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Frame {
    /// A well-formed JSON-RPC message, byte for byte.
    Message(Vec<u8>),
    /// Input that cannot be handled, with the error to send back.
    Invalid {
        code: i64,
        message: String,
        id: Value,
    },
}

impl Frame {
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let note;
        let body: &[u8] = match self {
            Frame::Message(body) => body,
            Frame::Invalid { code, message, id } => {
                tracing::warn!(code, "rejected a message from the editor: {message}");
                note = serde_json::to_vec(&json!({
                    "jsonrpc": "2.0",
                    "method": INVALID_MESSAGE,
                    "params": { "code": code, "message": message, "id": id },
                }))
                .unwrap_or_default();
                &note
            }
        };
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }
}

#[derive(Default)]
pub(crate) struct Decoder {
    pub(crate) buf: BytesMut,
    /// Length of the body whose headers were read.
    body_len: Option<usize>,
    /// Bytes of an oversized body still to throw away.
    skip: usize,
    /// After bad headers: input is dropped up to the next `Content-Length`.
    hunting: bool,
    /// The last frame was a body refused as broken: what follows may be its cut-off tail.
    after_refused_body: bool,
}

impl Decoder {
    /// The next frame, or `None` when more input is needed.
    ///
    /// Long on purpose: the decoder's one state machine (skipping, hunting, headers, body);
    /// its states hand over to each other through `continue`, which a split would scatter.
    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return None;
                }
            }
            if self.hunting {
                match find_ignore_case(&self.buf, b"content-length") {
                    Some(at) => {
                        self.buf.advance(at);
                        self.hunting = false;
                    }
                    None => {
                        // Keep a tail that may be the start of a split `Content-Length`.
                        let keep = self.buf.len().min(b"Content-Length".len() - 1);
                        self.buf.advance(self.buf.len() - keep);
                        return None;
                    }
                }
            }
            if let Some(len) = self.body_len {
                if self.buf.len() < len {
                    return None;
                }
                let body = self.buf.split_to(len);
                self.body_len = None;
                let frame = check_body(&body);
                self.after_refused_body = matches!(frame, Frame::Invalid { .. });
                return Some(frame);
            }
            // Stray line breaks between messages are not part of the next one's headers.
            let breaks = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.buf.advance(breaks);
            // Only the first `MAX_HEADER_BYTES` may be headers, so the verdict is the same
            // whether the blank line arrived in the same read or a later one.
            let window = &self.buf[..self.buf.len().min(MAX_HEADER_BYTES + 4)];
            let Some(end) = find(window, b"\r\n\r\n") else {
                if window.len() < MAX_HEADER_BYTES + 4 {
                    return None;
                }
                // Drop the whole window (but a tail that may start a `Content-Length`): a
                // `Content-Length` inside it belongs to these headers and would only be
                // refused again.
                self.resync(MAX_HEADER_BYTES + 4 - (b"content-length".len() - 1));
                return Some(invalid(PARSE_ERROR, "message header too long".into()));
            };
            let headers = &self.buf[..end];
            let glued = std::mem::take(&mut self.after_refused_body);
            if headers.iter().all(u8::is_ascii_whitespace) {
                self.buf.advance(end + 4); // Stray blank lines between messages.
                continue;
            }
            match content_length(headers) {
                Ok(len) if len > MAX_SKIPPED_BYTES => {
                    self.resync(end + 4);
                    return Some(invalid(
                        PARSE_ERROR,
                        format!(
                            "Content-Length {len} is not believable; skipped to the next message"
                        ),
                    ));
                }
                Ok(len) if len > MAX_MESSAGE_BYTES => {
                    self.buf.advance(end + 4);
                    self.skip = len;
                    return Some(invalid(
                        INVALID_REQUEST,
                        format!("message of {len} bytes is over the limit of {MAX_MESSAGE_BYTES}"),
                    ));
                }
                Ok(len) => {
                    self.buf.advance(end + 4);
                    self.body_len = Some(len);
                }
                Err(why) => {
                    // A body shorter than its `Content-Length` said leaves its tail glued to
                    // the next message's headers (`…}}Content-Length: 52`): resume at that
                    // header instead of dropping the message behind it. The tail is part of
                    // the message already refused, so it earns no second error. Only a
                    // header that reads well from there is such a resumption point: the bad
                    // `Content-Length` of these very headers is not.
                    let resume = find_ignore_case(&headers[1..], b"content-length")
                        .map(|at| at + 1)
                        .filter(|&at| content_length(&headers[at..]).is_ok());
                    if let Some(at) = resume {
                        self.buf.advance(at);
                        if glued {
                            continue;
                        }
                        return Some(invalid(PARSE_ERROR, why));
                    }
                    self.resync(end + 4);
                    return Some(invalid(PARSE_ERROR, why));
                }
            }
        }
    }

    /// Drops `at_least` bytes, then everything up to the next `Content-Length`.
    fn resync(&mut self, at_least: usize) {
        self.buf.advance(at_least.min(self.buf.len()));
        self.hunting = true;
    }
}

fn content_length(headers: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(headers).map_err(|_| "message header is not UTF-8")?;
    let mut length = None;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed message header line `{}`", clip(line)));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length `{}` is not a number", clip(value)))?,
            );
        }
    }
    length.ok_or_else(|| "message header has no Content-Length".into())
}

/// What the framework's codec decodes a body into (its `Message` is private): a body passes
/// only if the framework will accept it, since one it rejects ends its input stream.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)] // Only whether it parses matters.
enum Incoming {
    Response(Response),
    Request(Request),
}

fn check_body(body: &[u8]) -> Frame {
    // The framework checks UTF-8 before parsing, and serde_json does not check the bytes of
    // strings it skips (unknown fields), so a JSON parse alone would let such a body through.
    let Ok(text) = std::str::from_utf8(body) else {
        return invalid(PARSE_ERROR, "message body is not valid UTF-8".into());
    };
    if serde_json::from_str::<Incoming>(text).is_ok() {
        return Frame::Message(body.to_vec());
    }
    match serde_json::from_str::<Value>(text) {
        Err(e) => Frame::Invalid {
            code: PARSE_ERROR,
            message: format!("message body is not valid JSON: {e}"),
            // A cut-off request still names its id: the error is then its answer, and the
            // editor does not wait for one forever.
            id: salvage_id(text),
        },
        Ok(value) => {
            let id = match value.get("id") {
                Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
                _ => Value::Null,
            };
            Frame::Invalid {
                code: INVALID_REQUEST,
                message: "message is not a JSON-RPC 2.0 request, notification or response".into(),
                id,
            }
        }
    }
}

/// The top-level `"id"` of a JSON object that may be cut off or broken after it: a number
/// or a string, read only at depth 1 so that an `id` inside `params` is never taken for it.
fn salvage_id(text: &str) -> Value {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let Some(len) = string_len(&bytes[i..]) else {
                    return Value::Null;
                };
                let is_id_key = depth == 1 && &bytes[i..i + len] == b"\"id\"";
                i += len;
                if is_id_key {
                    let rest = text[i..].trim_start();
                    if let Some(value) = rest.strip_prefix(':') {
                        return leading_id(value.trim_start());
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Value::Null
}

/// Length of the JSON string at the start of `bytes`, quotes included; `None` if unterminated.
fn string_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// A JSON-RPC id (an integer or a string) at the start of `text`, if it is complete there:
/// a number counts only when something follows it, since `12` cut off may have been `123`.
fn leading_id(text: &str) -> Value {
    if text.starts_with('"') {
        return string_len(text.as_bytes())
            .and_then(|len| serde_json::from_str::<String>(&text[..len]).ok())
            .map_or(Value::Null, Value::String);
    }
    let digits = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(text.len(), |(i, _)| i);
    let complete = text[digits..].starts_with([',', '}', ' ', '\t', '\r', '\n']);
    match text[..digits].parse::<i64>() {
        Ok(n) if complete => Value::from(n),
        _ => Value::Null,
    }
}

fn invalid(code: i64, message: String) -> Frame {
    Frame::Invalid {
        code,
        message,
        id: Value::Null,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `find` for a lowercase ASCII `needle`, ignoring ASCII case (header names are case-insensitive).
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn decode_all(input: &[u8]) -> Vec<Frame> {
        let mut decoder = Decoder::default();
        let mut frames = Vec::new();
        // Byte by byte: every split point of the input is exercised.
        for byte in input {
            decoder.buf.extend_from_slice(&[*byte]);
            while let Some(frame) = decoder.next_frame() {
                frames.push(frame);
            }
        }
        frames
    }

    const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

    fn code(frame: &Frame) -> i64 {
        match frame {
            Frame::Invalid { code, .. } => *code,
            Frame::Message(_) => 0,
        }
    }

    #[test]
    fn well_formed_messages_pass_unchanged() {
        let mut input = framed(PING);
        input.extend(framed(r#"{"jsonrpc":"2.0","id":7,"result":null}"#));
        input.extend(framed(
            r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#,
        ));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Message(PING.as_bytes().to_vec()));
        assert!(frames.iter().all(|f| matches!(f, Frame::Message(_))));
    }

    #[test]
    fn broken_json_is_a_parse_error_and_the_next_message_still_arrives() {
        let mut input = framed(r#"{"jsonrpc": nope"#);
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 2);
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
    }

    #[test]
    fn json_that_is_not_json_rpc_is_an_invalid_request_with_its_id() {
        let frames = decode_all(&framed(r#"{"id":5,"what":"no method"}"#));
        assert_eq!(
            frames,
            vec![Frame::Invalid {
                code: INVALID_REQUEST,
                message: "message is not a JSON-RPC 2.0 request, notification or response".into(),
                id: json!(5),
            }]
        );
        assert_eq!(code(&decode_all(&framed("[1,2]"))[0]), INVALID_REQUEST);
    }

    #[test]
    fn a_too_short_content_length_is_answered_with_the_request_s_id() {
        let cut = r#"{"jsonrpc":"2.0","id":42,"method":"textDocument/hover","params":{"x":1}}"#;
        let input = format!("Content-Length: 30\r\n\r\n{cut}\r\n\r\n").into_bytes();
        let frames = decode_all(&input);
        match &frames[0] {
            Frame::Invalid { code, id, .. } => {
                assert_eq!(*code, PARSE_ERROR);
                assert_eq!(*id, json!(42));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_too_short_content_length_does_not_swallow_the_next_message() {
        let cut = r#"{"jsonrpc":"2.0","id":42,"method":"textDocument/hover","params":{"x":1}}"#;
        let mut input = format!("Content-Length: 30\r\n\r\n{cut}").into_bytes();
        input.extend(framed(PING));
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
        assert_eq!(frames[2], Frame::Message(PING.as_bytes().to_vec()));
    }

    #[test]
    fn garbage_glued_to_a_header_is_refused_once_and_the_message_kept() {
        let mut input = b"Content-Type: text/plain".to_vec();
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
    }

    #[test]
    fn a_bad_content_length_after_another_header_is_refused_once() {
        // Found by the fuzzer: the bad `Content-Length` line of these very headers is no
        // place to resume at, so it must not earn a second error.
        let mut input = b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\
                          content-length: 99999999999999999999\r\n\r\n"
            .to_vec();
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
    }

    #[test]
    fn only_a_top_level_id_is_salvaged() {
        assert_eq!(salvage_id(r#"{"jsonrpc":"2.0","id":7,"meth"#), json!(7));
        assert_eq!(salvage_id(r#"{"id":"abc","method":"x","par"#), json!("abc"));
        assert_eq!(salvage_id(r#"{"id":-3}"#), json!(-3));
        // Inside params (a cancel notification names another request's id): not ours.
        assert_eq!(
            salvage_id(r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3"#),
            Value::Null
        );
        assert_eq!(
            salvage_id(r#"{"method":"x","params":"\"id\":9"#),
            Value::Null
        );
        // Cut inside the id itself: no guess.
        assert_eq!(salvage_id(r#"{"id":12"#), Value::Null);
        assert_eq!(salvage_id(r#"{"id":"ab"#), Value::Null);
        assert_eq!(salvage_id("not json at all"), Value::Null);
    }

    #[test]
    fn bad_headers_resync_on_the_next_content_length() {
        let mut input = b"Content-Type: text/plain\r\n\r\ngarbage".to_vec();
        input.extend(framed(PING));
        input.extend(b"Content-Length: twelve\r\n\r\n");
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert!(matches!(frames[1], Frame::Message(_)));
        assert_eq!(code(&frames[2]), PARSE_ERROR);
        assert!(matches!(frames[3], Frame::Message(_)));
    }

    #[test]
    fn headers_are_case_insensitive_and_blank_lines_between_messages_are_skipped() {
        let mut input = b"\r\n\r\n".to_vec();
        input.extend(
            format!(
                "content-length: {}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{PING}",
                PING.len()
            )
            .bytes(),
        );
        assert_eq!(
            decode_all(&input),
            vec![Frame::Message(PING.as_bytes().to_vec())]
        );
    }

    #[test]
    fn oversized_bodies_are_skipped_without_buffering_them() {
        let mut decoder = Decoder::default();
        decoder.buf.extend_from_slice(
            format!("Content-Length: {}\r\n\r\n", MAX_MESSAGE_BYTES + 1).as_bytes(),
        );
        assert_eq!(code(&decoder.next_frame().unwrap()), INVALID_REQUEST);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            decoder.buf.extend_from_slice(&chunk);
            assert_eq!(decoder.next_frame(), None);
            assert!(decoder.buf.is_empty());
        }
        decoder.buf.extend_from_slice(b"x");
        decoder.buf.extend_from_slice(&framed(PING));
        assert!(matches!(decoder.next_frame(), Some(Frame::Message(_))));
    }

    #[test]
    fn endless_header_garbage_is_dropped() {
        let mut input = vec![b'a'; MAX_HEADER_BYTES + 10];
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert_eq!(
            frames.last(),
            Some(&Frame::Message(PING.as_bytes().to_vec()))
        );
    }

    fn decode_whole(input: &[u8]) -> Vec<Frame> {
        let mut decoder = Decoder::default();
        decoder.buf.extend_from_slice(input);
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    // serde_json does not check the UTF-8 of strings it skips, so this body used to pass as a
    // request, and the framework's codec, which does check, then ended the server's input.
    #[test]
    fn a_body_that_is_not_utf8_is_a_parse_error() {
        let body = b"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"junk\":\"\xff\"}";
        let mut input = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(body);
        input.extend(framed(PING));
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(code(&frames[0]), PARSE_ERROR);
        assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
    }

    #[test]
    fn the_header_limit_does_not_depend_on_how_reads_are_split() {
        // `len` is the length of the headers before their blank line.
        for (len, accepted) in [(MAX_HEADER_BYTES, true), (MAX_HEADER_BYTES + 1, false)] {
            let mut input = format!("Content-Length: {}\r\nX-Pad: ", PING.len()).into_bytes();
            input.resize(len, b'a');
            input.extend(format!("\r\n\r\n{PING}").bytes());
            input.extend(framed(PING));
            let whole = decode_whole(&input);
            assert_eq!(decode_all(&input), whole, "len {len}");
            let ping = Frame::Message(PING.as_bytes().to_vec());
            if accepted {
                assert_eq!(whole, vec![ping.clone(), ping], "len {len}");
            } else {
                assert_eq!(code(&whole[0]), PARSE_ERROR, "len {len}: {whole:?}");
                assert_eq!(whole.last(), Some(&ping), "len {len}");
            }
        }
    }

    // Found by fuzzing (fuzz/ lsp_framing): stray line breaks counted towards the next
    // headers' size, and a too-long header that did not start with its `Content-Length` was
    // refused twice, the second time after resyncing on its own `Content-Length`.
    #[test]
    fn a_too_long_header_is_refused_once_and_stray_breaks_do_not_count() {
        for prefix in ["\r\n", "\r\n\r\n\r\n", "X-Before: 1\r\n"] {
            let mut input = prefix.as_bytes().to_vec();
            input.extend(format!("Content-Length: {}\r\nX-Pad: ", PING.len()).bytes());
            input.resize(prefix.len() + MAX_HEADER_BYTES + 1, b'a');
            input.extend(format!("\r\n\r\n{PING}").bytes());
            input.extend(framed(PING));
            let frames = decode_all(&input);
            assert_eq!(decode_whole(&input), frames, "{prefix:?}");
            assert_eq!(frames.len(), 2, "{prefix:?}: {frames:?}");
            assert_eq!(code(&frames[0]), PARSE_ERROR);
            assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
        }
        let mut input = b"\r\n\r\n\r\n".to_vec();
        input.extend(format!("Content-Length: {}\r\nX-Pad: ", PING.len()).bytes());
        input.resize(6 + MAX_HEADER_BYTES, b'a');
        input.extend(format!("\r\n\r\n{PING}").bytes());
        assert_eq!(
            decode_all(&input),
            vec![Frame::Message(PING.as_bytes().to_vec())]
        );
    }

    #[test]
    fn an_unbelievable_content_length_does_not_swallow_the_rest_of_the_input() {
        for len in ["18446744073709551615", "99999999999999999999999"] {
            let mut input = format!("Content-Length: {len}\r\n\r\n").into_bytes();
            input.extend(framed(PING));
            let frames = decode_all(&input);
            assert_eq!(frames.len(), 2, "{frames:?}");
            assert_eq!(code(&frames[0]), PARSE_ERROR);
            assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
        }
    }

    #[test]
    fn resync_finds_a_lowercase_content_length() {
        let mut input = b"Bogus\r\n\r\n".to_vec();
        input.extend(format!("content-length: {}\r\n\r\n{PING}", PING.len()).bytes());
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(frames[1], Frame::Message(PING.as_bytes().to_vec()));
    }

    #[tokio::test]
    async fn the_pump_rewrites_invalid_input_and_ends_with_its_input() {
        let mut input = framed("not json");
        input.extend(framed(PING));
        let mut reader = guard(std::io::Cursor::new(input));
        let mut out = String::new();
        reader.read_to_string(&mut out).await.unwrap();
        assert!(out.contains(INVALID_MESSAGE), "{out}");
        assert!(out.ends_with(PING), "{out}");
    }
}
