//! The SSE decoder (`server/src/provider/sse.rs`).
//!
//! Bytes 0–1 pick small size caps (or the defaults), byte 2 seeds the chunk sizes, the rest
//! is the stream. Decoding it whole, byte by byte and in random chunks must give the same
//! events and the same ending, equal to a naive whole-input model of the same rules; no
//! dispatched event or comment may exceed the caps.
#![no_main]

use codetier::provider::sse::{Event, Limits, Parser, SseError};
use codetier_fuzz::{chunks, Input};
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<Event>, Result<(), SseError>);

fn decode<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, limits: Limits) -> Outcome {
    let mut parser = Parser::new(limits);
    let mut events = Vec::new();
    for piece in pieces {
        if let Err(e) = parser.push(piece, &mut events) {
            return (events, Err(e));
        }
    }
    let end = parser.finish(&mut events);
    assert_eq!(parser.is_done(), end.is_ok());
    (events, end)
}

/// The same rules over the whole input at once: split into lines at CRLF, LF or CR, then
/// each line in order (cap, UTF-8, BOM on the first, blank line dispatches, `:` comment,
/// `field: value`), stopping at `[DONE]`.
fn naive(input: &[u8], limits: Limits) -> Outcome {
    let mut lines: Vec<&[u8]> = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < input.len() {
        match input[i] {
            b'\n' => {
                lines.push(&input[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&input[start..i]);
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let unterminated = &input[start..];
    let mut events = Vec::new();
    let (mut data, mut has_data, mut name) = (String::new(), false, None::<String>);
    let dispatch = |events: &mut Vec<Event>,
                    data: &mut String,
                    has_data: &mut bool,
                    name: &mut Option<String>|
     -> bool {
        let event = name.take();
        if !std::mem::take(has_data) {
            return false;
        }
        let data = std::mem::take(data);
        if data.trim() == "[DONE]" {
            events.push(Event::Done);
            return true;
        }
        events.push(Event::Data { event, data });
        false
    };
    let last = (!unterminated.is_empty()).then_some(unterminated);
    for (n, raw) in lines.iter().copied().chain(last).enumerate() {
        if raw.len() > limits.max_line {
            return (
                events,
                Err(SseError::LineTooLong {
                    limit: limits.max_line,
                }),
            );
        }
        let Ok(mut line) = std::str::from_utf8(raw) else {
            return (events, Err(SseError::InvalidUtf8));
        };
        if n == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            if dispatch(&mut events, &mut data, &mut has_data, &mut name) {
                return (events, Ok(()));
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            events.push(Event::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
                if data.len() > limits.max_event {
                    return (
                        events,
                        Err(SseError::EventTooLarge {
                            limit: limits.max_event,
                        }),
                    );
                }
            }
            "event" => name = Some(value.to_owned()),
            _ => {}
        }
    }
    if dispatch(&mut events, &mut data, &mut has_data, &mut name) {
        return (events, Ok(()));
    }
    (events, Err(SseError::EndedWithoutDone))
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let (line, event) = (inp.byte(), inp.byte());
    let limits = if line == 0xff {
        Limits::default()
    } else {
        Limits {
            max_line: 1 + usize::from(line % 64),
            max_event: 1 + usize::from(event % 128),
        }
    };
    let seed = u64::from(inp.byte());
    let stream = inp.rest();
    let whole = decode([stream], limits);
    assert_eq!(decode(stream.chunks(1), limits), whole, "byte by byte");
    assert_eq!(decode(chunks(stream, seed), limits), whole, "chunks {seed}");
    assert_eq!(naive(stream, limits), whole, "naive model");
    for event in &whole.0 {
        match event {
            Event::Data { data, .. } => assert!(data.len() <= limits.max_event),
            Event::Comment(text) => assert!(text.len() <= limits.max_line),
            Event::Done => {}
        }
    }
});
