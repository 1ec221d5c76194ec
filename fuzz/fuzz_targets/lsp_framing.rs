//! The stdin guard in front of tower-lsp-server (`server/src/lsp/framing.rs`).
//!
//! First byte: bit 7 picks the mode, the rest seeds the chunk sizes.
//! - Raw mode: the remaining bytes are the stream. Decoding it whole, byte by byte and in
//!   random chunks must give the same frames; each frame must be one the framework's codec
//!   accepts; each is either an invalid-message note or a body found verbatim in the input.
//! - Structured mode: the remaining bytes describe a sequence of items (well-formed
//!   messages, arbitrary bodies with a correct length, broken headers, blank lines,
//!   unbelievable lengths, headers padded to around the size limit, a too-short length with
//!   the next message right behind it), and the frames must be
//!   exactly the ones each item deserves.
#![no_main]

use codetier::fuzzing::{LspDecoder, INVALID_MESSAGE, MAX_HEADER_BYTES};
use codetier_fuzz::{chunks, Input};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Request, Response};

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// The shape the framework's codec decodes a body into (its own `Message` is private).
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Message {
    Response(Response),
    Request(Request),
}

/// What the framework's codec does with a body: UTF-8 first, then the JSON-RPC message.
fn framework_accepts(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|t| serde_json::from_str::<Message>(t).is_ok())
}

#[derive(Debug, PartialEq)]
enum Out {
    Message(Vec<u8>),
    Invalid(i64),
}

/// Checks one frame as written for the framework and says what it carries.
fn read_frame(frame: &[u8]) -> Out {
    let end = frame
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a frame has a header");
    let body = &frame[end + 4..];
    assert_eq!(
        &frame[..end],
        format!("Content-Length: {}", body.len()).as_bytes(),
        "frame header"
    );
    assert!(
        framework_accepts(body),
        "the framework would reject {:?}",
        String::from_utf8_lossy(body)
    );
    let value: Value = serde_json::from_slice(body).expect("accepted bodies are JSON");
    // An editor could send the note's method itself; it then passes through as it came.
    let code = value["params"]["code"].as_i64();
    match code {
        Some(code @ (PARSE_ERROR | INVALID_REQUEST))
            if value["method"] == INVALID_MESSAGE && value["params"]["message"].is_string() =>
        {
            Out::Invalid(code)
        }
        _ => Out::Message(body.to_vec()),
    }
}

fn decode<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut decoder = LspDecoder::default();
    pieces
        .into_iter()
        .flat_map(|piece| decoder.push(piece))
        .collect()
}

/// Decodes `stream` whole, byte by byte and in random chunks; all must agree.
fn decode_every_way(stream: &[u8], seed: u64) -> Vec<Vec<u8>> {
    let whole = decode([stream]);
    // Byte by byte is quadratic while headers are incomplete (each read rescans them); the
    // random chunks include single bytes, so long inputs skip it to keep the fuzzer fast.
    if stream.len() <= 512 {
        assert_eq!(decode(stream.chunks(1)), whole, "byte by byte");
    }
    assert_eq!(decode(chunks(stream, seed)), whole, "chunks {seed}");
    whole
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn raw(stream: &[u8], seed: u64) {
    for frame in decode_every_way(stream, seed) {
        if let Out::Message(body) = read_frame(&frame) {
            assert!(contains(stream, &body), "a message not in the input");
        }
    }
}

/// A well-formed message built from fuzz bytes.
fn message(inp: &mut Input) -> Vec<u8> {
    let kind = inp.byte();
    let text = String::from_utf8_lossy(inp.run()).into_owned();
    let id = if kind & 8 == 0 {
        json!(inp.u32())
    } else {
        json!(text.clone())
    };
    let value = match kind % 4 {
        0 => {
            json!({"jsonrpc": "2.0", "id": id, "method": format!("m/{text}"), "params": {"text": text}})
        }
        1 => json!({"jsonrpc": "2.0", "method": format!("m/{text}")}),
        2 => json!({"jsonrpc": "2.0", "id": id, "result": text}),
        _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -1, "message": text}}),
    };
    if kind & 16 == 0 {
        serde_json::to_vec(&value).unwrap()
    } else {
        serde_json::to_vec_pretty(&value).unwrap()
    }
}

/// Headers for a body of `len` bytes, in one of a few accepted spellings.
fn header(style: u8, len: &str) -> Vec<u8> {
    let name = if style & 1 == 0 {
        "Content-Length"
    } else {
        "content-length"
    };
    let value = if style & 2 == 0 {
        len.to_owned()
    } else {
        format!("  {len} ")
    };
    let kind = "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n";
    match (style >> 2) % 3 {
        0 => format!("{name}: {value}\r\n\r\n"),
        1 => format!("{kind}{name}: {value}\r\n\r\n"),
        _ => format!("{name}: {value}\r\n{kind}\r\n"),
    }
    .into_bytes()
}

fn structured(inp: &mut Input, seed: u64) {
    let mut stream = Vec::new();
    let mut expect = Vec::new();
    // After a broken header the guard drops input up to the next `Content-Length`.
    let mut hunting = false;
    // Padded headers are 8 KiB each and every read rescans the headers it has so far, so a
    // few of them per input keep the fuzzer fast.
    let mut padded = 0;
    while !inp.is_empty() {
        let tag = inp.byte();
        let kind = match tag % 7 {
            5 if padded == 2 => 3,
            5 => {
                padded += 1;
                5
            }
            k => k,
        };
        match kind {
            0 => {
                let body = message(inp);
                stream.extend(header(tag >> 3, &body.len().to_string()));
                stream.extend(&body);
                expect.push(Out::Message(body));
                hunting = false;
            }
            1 => {
                let body = inp.run();
                stream.extend(header(tag >> 3, &body.len().to_string()));
                stream.extend(body);
                expect.push(if framework_accepts(body) {
                    let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                    framed.extend(body);
                    read_frame(&framed)
                } else if serde_json::from_slice::<Value>(body).is_ok() {
                    Out::Invalid(INVALID_REQUEST)
                } else {
                    Out::Invalid(PARSE_ERROR)
                });
                hunting = false;
            }
            2 => {
                // No `content-length` (no c) and no blank line (no CR) inside.
                let garbage: Vec<u8> = inp
                    .run()
                    .iter()
                    .map(|&b| match b {
                        b'c' | b'C' => b'x',
                        b'\r' => b' ',
                        b => b,
                    })
                    .collect();
                stream.extend(&garbage);
                stream.extend(b"\r\n\r\n");
                if !hunting && !garbage.iter().all(u8::is_ascii_whitespace) {
                    expect.push(Out::Invalid(PARSE_ERROR));
                    hunting = true;
                }
            }
            3 => stream.extend(b"\r\n".repeat(1 + usize::from(tag >> 3) % 3)),
            5 => {
                // Headers of about the size limit (before their blank line): accepted up to
                // it, a parse error past it, whatever the reads.
                const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
                let len = MAX_HEADER_BYTES - 32 + usize::from(inp.byte() % 64);
                let mut head = format!("Content-Length: {}\r\nX-Pad: ", PING.len()).into_bytes();
                head.resize(len, b'a');
                stream.extend(head);
                stream.extend(format!("\r\n\r\n{PING}").bytes());
                if len <= MAX_HEADER_BYTES {
                    expect.push(Out::Message(PING.as_bytes().to_vec()));
                    hunting = false;
                } else {
                    expect.push(Out::Invalid(PARSE_ERROR));
                    hunting = true;
                }
            }
            6 => {
                // A `Content-Length` shorter than its body, the next message right behind it:
                // the cut body is refused, and its tail, glued to the next header, must not
                // swallow that message. (A tail that itself spells `content-length` would be
                // resumed at; message() only puts that there through fuzz text, left out.)
                let cut = message(inp);
                let next = message(inp);
                let at = 1 + usize::from(inp.byte()) % (cut.len() - 1);
                if String::from_utf8_lossy(&cut)
                    .to_ascii_lowercase()
                    .contains("content-length")
                {
                    continue;
                }
                stream.extend(header(tag >> 3, &at.to_string()));
                stream.extend(&cut);
                stream.extend(header(tag >> 5, &next.len().to_string()));
                stream.extend(&next);
                expect.push(Out::Invalid(PARSE_ERROR));
                expect.push(Out::Message(next));
                hunting = false;
            }
            _ => {
                let len = [
                    "18446744073709551615",
                    "1099511627776",
                    "99999999999999999999",
                ][usize::from(tag >> 3) % 3];
                stream.extend(header(tag >> 5, len));
                expect.push(Out::Invalid(PARSE_ERROR));
                hunting = true;
            }
        }
    }
    let got: Vec<Out> = decode_every_way(&stream, seed)
        .iter()
        .map(|f| read_frame(f))
        .collect();
    assert_eq!(got, expect, "stream {:?}", String::from_utf8_lossy(&stream));
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let control = inp.byte();
    let seed = u64::from(control & 0x7f) ^ (data.len() as u64) << 8;
    if control & 0x80 == 0 {
        raw(inp.rest(), seed);
    } else {
        structured(&mut inp, seed);
    }
});
