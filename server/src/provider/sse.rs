//! Incremental Server-Sent Events decoder: bytes in arbitrary chunks to events, size-capped.
//!
//! Follows the WHATWG event-stream rules (CRLF, LF and CR line endings, `:` comments, one
//! optional space after the colon, multi-line `data`), with three differences that matter for
//! model streams: comments are reported (they are the provider's keep-alives), an unterminated
//! last event is dispatched rather than dropped, and the end of input without `data: [DONE]`
//! is an error the caller decides about.

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A dispatched event: its `event:` name when one was given, and its joined `data` lines.
    Data { event: Option<String>, data: String },
    /// A comment line (`: keep-alive`), without the colon and one leading space.
    Comment(String),
    /// `data: [DONE]`, the OpenAI end-of-stream marker. Input after it is ignored.
    Done,
}

/// Why a stream could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE line is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("an SSE event is larger than {limit} bytes")]
    EventTooLarge { limit: usize },
    #[error("the event stream is not valid UTF-8")]
    InvalidUtf8,
    #[error("the event stream ended without `data: [DONE]`")]
    EndedWithoutDone,
}

/// Size caps that keep a misbehaving server from filling memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_line: usize,
    pub max_event: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 1 << 20,
            max_event: 4 << 20,
        }
    }
}

/// The decoder state between chunks.
#[derive(Debug, Default)]
pub struct Parser {
    limits: Limits,
    line: Vec<u8>,
    /// The previous chunk ended in CR, so a leading LF in the next one belongs to it.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    started: bool,
    done: bool,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            ..Parser::default()
        }
    }

    /// Whether `data: [DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes one chunk, appending complete events to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        while !chunk.is_empty() && !self.done {
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.extend_line(&chunk[..end])?;
                    self.after_cr = chunk[end] == b'\r';
                    chunk = &chunk[end + 1..];
                    self.end_line(out)?;
                }
                None => {
                    self.extend_line(chunk)?;
                    chunk = &[];
                }
            }
        }
        Ok(())
    }

    /// Ends the input: decodes an unterminated last line and event, then reports whether
    /// the stream was complete.
    pub fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), SseError> {
        if !self.done && !self.line.is_empty() {
            self.end_line(out)?;
        }
        if !self.done {
            self.dispatch(out);
        }
        if self.done {
            Ok(())
        } else {
            Err(SseError::EndedWithoutDone)
        }
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.limits.max_line {
            return Err(SseError::LineTooLong {
                limit: self.limits.max_line,
            });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<Event>) -> Result<(), SseError> {
        let bytes = std::mem::take(&mut self.line);
        let mut line = std::str::from_utf8(&bytes).map_err(|_| SseError::InvalidUtf8)?;
        if !self.started {
            self.started = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Event::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                // The joined data is capped; a newline joins a line to the ones before it.
                let joiner = usize::from(self.has_data);
                if self.data.len() + joiner + value.len() > self.limits.max_event {
                    return Err(SseError::EventTooLarge {
                        limit: self.limits.max_event,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` only matter to reconnecting browsers; unknown fields are ignored.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let data = std::mem::take(&mut self.data);
        if data.trim() == "[DONE]" {
            self.done = true;
            out.push(Event::Done);
        } else {
            out.push(Event::Data { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the events and the end of a decode as one line each, for table-driven tests.
    fn render(chunks: &[&[u8]], limits: Limits) -> String {
        let mut parser = Parser::new(limits);
        let mut events = Vec::new();
        let mut result = Ok(());
        for chunk in chunks {
            result = parser.push(chunk, &mut events);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = parser.finish(&mut events);
        }
        let mut lines: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Data {
                    event: Some(name),
                    data,
                } => format!("{name}: {data:?}"),
                Event::Data { event: None, data } => format!("data {data:?}"),
                Event::Comment(c) => format!("comment {c:?}"),
                Event::Done => "done".to_owned(),
            })
            .collect();
        lines.push(match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        });
        lines.join("\n")
    }

    /// Decodes `input` whole, split at every byte, and one byte at a time: all must agree.
    fn check_with(input: &str, limits: Limits, expect: &str) {
        let bytes = input.as_bytes();
        let whole = render(&[bytes], limits);
        assert_eq!(whole, expect.trim(), "input {input:?}");
        for split in 1..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(
                render(&[a, b], limits),
                whole,
                "input {input:?} split at {split}"
            );
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            render(&singles, limits),
            whole,
            "input {input:?} byte by byte"
        );
    }

    fn check(input: &str, expect: &str) {
        check_with(input, Limits::default(), expect);
    }

    #[test]
    fn decodes() {
        check("data: a\n\ndata: [DONE]\n\n", "data \"a\"\ndone\nok");
        check(
            "data: a\r\n\r\ndata: [DONE]\r\n\r\n",
            "data \"a\"\ndone\nok",
        );
        check("data: a\r\rdata: [DONE]\r\r", "data \"a\"\ndone\nok");
        check(
            "data:a\n\ndata:  b\n\ndata: [DONE]\n\n",
            "data \"a\"\ndata \" b\"\ndone\nok",
        );
        check(
            "data: one\ndata: two\n\ndata: [DONE]\n\n",
            "data \"one\\ntwo\"\ndone\nok",
        );
        check(
            ": keep-alive\n\n:\ndata: x\n\ndata: [DONE]\n\n",
            "comment \"keep-alive\"\ncomment \"\"\ndata \"x\"\ndone\nok",
        );
        check(
            "event: error\ndata: {}\n\ndata: [DONE]\n\n",
            "error: \"{}\"\ndone\nok",
        );
        check(
            "id: 1\nretry: 5\nfoo: bar\ndata\n\ndata: [DONE]\n\n",
            "data \"\"\ndone\nok",
        );
        check(
            "\u{feff}data: bom\n\ndata: [DONE]\n\n",
            "data \"bom\"\ndone\nok",
        );
        check("data: é€😀\n\ndata: [DONE]\n\n", "data \"é€😀\"\ndone\nok");
        check("event: x\n\ndata: [DONE]\n\n", "done\nok");
        check("data: [DONE]\n\ndata: ignored\n\n", "done\nok");
    }

    #[test]
    fn unterminated_ends() {
        // The last event is dispatched even without its blank line or final newline.
        check(
            "data: a\n\ndata: b",
            "data \"a\"\ndata \"b\"\nerror: the event stream ended without `data: [DONE]`",
        );
        check("data: a\n\ndata: [DONE]", "data \"a\"\ndone\nok");
        check("data: [DONE]\n", "done\nok");
        check("", "error: the event stream ended without `data: [DONE]`");
        check(
            ": keep-alive\n",
            "comment \"keep-alive\"\nerror: the event stream ended without `data: [DONE]`",
        );
    }

    #[test]
    fn caps_and_bad_bytes() {
        let small = Limits {
            max_line: 16,
            max_event: 20,
        };
        check_with(
            "data: 0123456789\n\ndata: [DONE]\n\n",
            small,
            "data \"0123456789\"\ndone\nok",
        );
        check_with(
            "data: 0123456789abc\n",
            small,
            "error: an SSE line is longer than 16 bytes",
        );
        check_with(
            "data: 0123456789\ndata: 0123456789\n\n",
            small,
            "error: an SSE event is larger than 20 bytes",
        );
        // Exactly at the caps is allowed: one data line of `max_event` bytes (the first line
        // used to be charged for a joining newline it does not have), and two lines whose data
        // and joining newline add up to it.
        let exact = Limits {
            max_line: 27,
            max_event: 20,
        };
        check_with(
            "data: 01234567890123456789\n\ndata: [DONE]\n\n",
            exact,
            "data \"01234567890123456789\"\ndone\nok",
        );
        check_with(
            "data: 012345678\ndata: 012345678\n\ndata: [DONE]\n\n",
            exact,
            "data \"012345678\\n012345678\"\ndone\nok",
        );
        check_with(
            "data: 012345678901234567890\n\n",
            exact,
            "error: an SSE event is larger than 20 bytes",
        );
        let mut parser = Parser::new(Limits::default());
        let mut out = Vec::new();
        assert_eq!(
            parser.push(b"data: \xff\xfe\n\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }
}
