//! Secret redaction: hand-written matchers for well-known secret shapes, applied before text leaves the machine.

use std::ops::Range;

/// Replaces secrets in `text` with `[REDACTED:<kind>]` markers; returns the text and how many
/// secrets were replaced.
///
/// Recognised: PEM private key blocks, AWS access key ids, GitHub, Slack, OpenAI-style, Google
/// and Stripe keys, JWTs, `user:password@` in URLs, and values assigned to names such as
/// `password`, `secret`, `token` or `api_key` (the name is kept, the value replaced). All
/// patterns are ASCII, so every span boundary is a char boundary.
pub fn redact(text: &str) -> (String, usize) {
    let mut spans = Vec::new();
    private_keys(text, &mut spans);
    tokens(text, &mut spans);
    jwts(text, &mut spans);
    assignments(text, &mut spans);
    url_passwords(text, &mut spans);
    if spans.is_empty() {
        return (text.to_owned(), 0);
    }
    spans.sort_by_key(|s| (s.range.start, std::cmp::Reverse(s.range.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.range.start < last.range.end => {
                last.range.end = last.range.end.max(span.range.end);
            }
            _ => merged.push(span),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in &merged {
        out.push_str(&text[at..span.range.start]);
        out.push_str("[REDACTED:");
        out.push_str(span.kind);
        out.push(']');
        at = span.range.end;
    }
    out.push_str(&text[at..]);
    (out, merged.len())
}

struct Span {
    range: Range<usize>,
    kind: &'static str,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `-----BEGIN ... PRIVATE KEY-----` through the matching `-----END ...-----`; a block cut off
/// before its end (a truncated selection) is redacted to the end of the text.
fn private_keys(text: &str, spans: &mut Vec<Span>) {
    const BEGIN: &str = "-----BEGIN ";
    for (start, _) in text.match_indices(BEGIN) {
        let rest = &text[start + BEGIN.len()..];
        let Some(label_len) = rest.find("-----") else {
            continue;
        };
        let label = &rest[..label_len];
        if label.len() > 60 || label.contains('\n') || !label.contains("PRIVATE KEY") {
            continue;
        }
        let body = start + BEGIN.len() + label_len + 5;
        let end = text[body..]
            .find("-----END ")
            .and_then(|e| {
                let after = body + e + "-----END ".len();
                text[after..].find("-----").map(|d| after + d + 5)
            })
            .unwrap_or(text.len());
        spans.push(Span {
            range: start..end,
            kind: "private-key",
        });
    }
}

struct Shape {
    prefixes: &'static [&'static str],
    body: fn(u8) -> bool,
    min: usize,
    max: usize,
    needs_digit: bool,
    kind: &'static str,
}

const SHAPES: &[Shape] = &[
    Shape {
        prefixes: &[
            "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA",
        ],
        body: |b| b.is_ascii_uppercase() || b.is_ascii_digit(),
        min: 16,
        max: 16,
        needs_digit: false,
        kind: "aws-access-key",
    },
    Shape {
        prefixes: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        body: |b| b.is_ascii_alphanumeric(),
        min: 30,
        max: 255,
        needs_digit: false,
        kind: "github-token",
    },
    Shape {
        prefixes: &["github_pat_"],
        body: is_word,
        min: 22,
        max: 255,
        needs_digit: false,
        kind: "github-token",
    },
    Shape {
        prefixes: &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"],
        body: |b| b.is_ascii_alphanumeric() || b == b'-',
        min: 10,
        max: 255,
        needs_digit: false,
        kind: "slack-token",
    },
    Shape {
        prefixes: &["sk-"],
        body: is_base64url,
        min: 20,
        max: 255,
        needs_digit: true,
        kind: "api-key",
    },
    Shape {
        prefixes: &["AIza"],
        body: is_base64url,
        min: 30,
        max: 60,
        needs_digit: false,
        kind: "google-api-key",
    },
    Shape {
        prefixes: &["sk_live_", "rk_live_", "sk_test_", "rk_test_"],
        body: |b| b.is_ascii_alphanumeric(),
        min: 10,
        max: 255,
        needs_digit: false,
        kind: "stripe-key",
    },
];

/// Well-known token shapes: a fixed prefix at a word start, then a body of a given alphabet.
fn tokens(text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    for shape in SHAPES {
        for prefix in shape.prefixes {
            for (start, _) in text.match_indices(prefix) {
                if start > 0 && (is_word(bytes[start - 1]) || bytes[start - 1] == b'-') {
                    continue;
                }
                let body = start + prefix.len();
                let len = bytes[body..]
                    .iter()
                    .take(shape.max + 1)
                    .take_while(|b| (shape.body)(**b))
                    .count();
                let end = body + len;
                if len < shape.min || len > shape.max || bytes.get(end).is_some_and(|b| is_word(*b))
                {
                    continue;
                }
                if shape.needs_digit && !bytes[body..end].iter().any(u8::is_ascii_digit) {
                    continue;
                }
                spans.push(Span {
                    range: start..end,
                    kind: shape.kind,
                });
            }
        }
    }
}

/// `eyJ<header>.eyJ<payload>.<signature>`: base64url JSON header and payload.
fn jwts(text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    for (start, _) in text.match_indices("eyJ") {
        if start > 0 && is_base64url(bytes[start - 1]) {
            continue;
        }
        let part = |from: usize| {
            from + bytes[from..]
                .iter()
                .take_while(|b| is_base64url(**b))
                .count()
        };
        let header_end = part(start);
        if header_end - start < 10 || bytes.get(header_end) != Some(&b'.') {
            continue;
        }
        let payload = header_end + 1;
        if !text[payload..].starts_with("eyJ") {
            continue;
        }
        let payload_end = part(payload);
        if payload_end - payload < 10 || bytes.get(payload_end) != Some(&b'.') {
            continue;
        }
        spans.push(Span {
            range: start..part(payload_end + 1),
            kind: "jwt",
        });
    }
}

/// Names whose assigned value is a secret.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "auth_key",
    "credential",
];

/// Name parts that say the value is about a secret rather than the secret itself
/// (`max_tokens`, `api_key_env`, `password_field`).
const NOT_SECRET: &[&str] = &[
    "tokens", "tokeniz", "_type", "_url", "_uri", "_endpoint", "_path", "_file", "_env",
    "_name", "_field", "_label", "_len", "_count", "_limit", "_prompt", "_header",
];

fn contains_ignore_case(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `password = "..."`, `"api_key": "..."`, `token: ...`, `--password=...`: keeps the name,
/// replaces the value. Quoted values are always taken; unquoted ones only when they look
/// random (letters, digits and symbols mixed), so `password = form.get(...)` stays.
fn assignments(text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let is_name = |b: u8| is_word(b) || b == b'-' || b == b'.';
    let mut i = 0;
    while i < bytes.len() {
        if !is_name(bytes[i]) || (i > 0 && is_name(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_name(bytes[i]) {
            i += 1;
        }
        let name = &bytes[start..i];
        if !SECRET_NAMES.iter().any(|k| contains_ignore_case(name, k))
            || NOT_SECRET.iter().any(|k| contains_ignore_case(name, k))
        {
            continue;
        }
        if let Some(value) = assigned_value(bytes, start, i) {
            spans.push(Span {
                range: value,
                kind: "secret",
            });
        }
    }
}

/// The value range after a name ending at `end`, if a separator and a secret-looking value follow.
fn assigned_value(bytes: &[u8], name_start: usize, end: usize) -> Option<Range<usize>> {
    let at = |k: usize| bytes.get(k).copied().unwrap_or(0);
    let mut j = end;
    // The closing quote of a quoted key: `"password": "..."`.
    if name_start > 0 && matches!(at(name_start - 1), b'"' | b'\'') && at(j) == at(name_start - 1)
    {
        j += 1;
    }
    while matches!(at(j), b' ' | b'\t') {
        j += 1;
    }
    let sep = [&b":="[..], b"=>", b"===", b"==", b"=", b":"]
        .into_iter()
        .find(|s| bytes[j.min(bytes.len())..].starts_with(s))?;
    j += sep.len();
    if sep == b":" && at(j) == b':' {
        return None;
    }
    while matches!(at(j), b' ' | b'\t') {
        j += 1;
    }
    let quote = at(j);
    if matches!(quote, b'"' | b'\'' | b'`') {
        let from = j + 1;
        let mut k = from;
        while k < bytes.len() && bytes[k] != quote && bytes[k] != b'\n' {
            k += if bytes[k] == b'\\' { 2 } else { 1 };
        }
        if k >= bytes.len() || bytes[k] != quote || k == from || is_placeholder(&bytes[from..k]) {
            return None;
        }
        return Some(from..k);
    }
    let len = bytes[j.min(bytes.len())..]
        .iter()
        .take_while(|b| {
            !b.is_ascii_whitespace()
                && !matches!(b, b',' | b';' | b'"' | b'\'' | b')' | b']' | b'}' | b'[')
        })
        .count();
    let value = &bytes[j..j + len];
    looks_random(value).then_some(j..j + len)
}

fn is_placeholder(value: &[u8]) -> bool {
    value.starts_with(b"${") || value.starts_with(b"{{") || value.starts_with(b"<")
}

/// At least eight characters of a password-like alphabet from three classes of lower, upper,
/// digit and symbol: `wJalrXUtnFEMI/K7MDENG` yes; `next_token2`, `form.get(x)` or
/// `Option<String>` no.
fn looks_random(value: &[u8]) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"/+=_-.~!@#$%^*".contains(b);
    if value.len() < 8 || !value.iter().all(allowed) || is_placeholder(value) {
        return false;
    }
    let has = |f: fn(&u8) -> bool| usize::from(value.iter().any(f));
    has(u8::is_ascii_lowercase)
        + has(u8::is_ascii_uppercase)
        + has(u8::is_ascii_digit)
        + has(|b| b.is_ascii_punctuation() && *b != b'_' && *b != b'.')
        >= 3
}

/// `scheme://user:password@host`: the password part.
fn url_passwords(text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    for (sep, _) in text.match_indices("://") {
        let from = sep + 3;
        let authority = bytes[from..]
            .iter()
            .take_while(|b| {
                !b.is_ascii_whitespace()
                    && !matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\')
            })
            .count();
        let auth = &bytes[from..from + authority];
        let Some(at) = auth.iter().rposition(|b| *b == b'@') else {
            continue;
        };
        let Some(colon) = auth[..at].iter().position(|b| *b == b':') else {
            continue;
        };
        if colon + 1 < at {
            spans.push(Span {
                range: from + colon + 1..from + at,
                kind: "password",
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `input` redacts to `expected` with `count` replacements.
    fn check(input: &str, expected: &str, count: usize) {
        let (out, n) = redact(input);
        assert_eq!(out, expected, "input: {input}");
        assert_eq!(n, count, "count for input: {input}");
    }

    /// `input` contains no secret and comes back unchanged.
    fn check_clean(input: &str) {
        check(input, input, 0);
    }

    #[test]
    fn private_key_blocks() {
        check(
            "key = \"\"\"\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAKCAQ==\n-----END RSA PRIVATE KEY-----\n\"\"\"",
            "key = \"\"\"\n[REDACTED:private-key]\n\"\"\"",
            1,
        );
        check(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
            "[REDACTED:private-key]",
            1,
        );
        check_clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    }

    #[test]
    fn aws_keys() {
        check(
            "id = AKIAIOSFODNN7EXAMPLE;",
            "id = [REDACTED:aws-access-key];",
            1,
        );
        check(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            "aws_secret_access_key = [REDACTED:secret]\n",
            1,
        );
        check_clean("AKIAIOSFODNN7EXAMPLEX is too long, AKIA_SHORT too short");
    }

    #[test]
    fn well_known_tokens() {
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        check(
            &format!("let t = {gh};"),
            "let t = [REDACTED:github-token];",
            1,
        );
        let pat = format!("github_pat_11ABC{}", "x_Y9".repeat(10));
        check(&format!("{pat}\n"), "[REDACTED:github-token]\n", 1);
        check(
            "SLACK xoxb-1234567890-abcdefghij end",
            "SLACK [REDACTED:slack-token] end",
            1,
        );
        check(
            "client(sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t)",
            "client([REDACTED:api-key])",
            1,
        );
        check(
            "k AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW k",
            "k [REDACTED:google-api-key] k",
            1,
        );
        check(
            "stripe(sk_live_4eC39HqLyjWDarjtT1zdp7dc)",
            "stripe([REDACTED:stripe-key])",
            1,
        );
    }

    #[test]
    fn jwt() {
        check(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\n",
            "Authorization: Bearer [REDACTED:jwt]\n",
            1,
        );
        check_clean("eyJustAWord.eyJanother");
    }

    #[test]
    fn assignments_keep_the_name() {
        check(
            r#"db_password = "hunter2""#,
            r#"db_password = "[REDACTED:secret]""#,
            1,
        );
        check(
            r#"{"api_key": "abc123", "user": "bob"}"#,
            r#"{"api_key": "[REDACTED:secret]", "user": "bob"}"#,
            1,
        );
        check(
            "SECRET_TOKEN: 'xyz'\nTOKEN := `q`",
            "SECRET_TOKEN: '[REDACTED:secret]'\nTOKEN := `[REDACTED:secret]`",
            2,
        );
        check(
            "if (password === \"letmein\") {",
            "if (password === \"[REDACTED:secret]\") {",
            1,
        );
        // A token inside an assignment is one secret, not two.
        check(
            r#"OPENAI_API_KEY = "sk-abcdefghij0123456789XYZ""#,
            r#"OPENAI_API_KEY = "[REDACTED:api-key]""#,
            1,
        );
    }

    #[test]
    fn url_credentials() {
        check(
            "DATABASE = postgres://app:s3cr3t@db.internal:5432/app",
            "DATABASE = postgres://app:[REDACTED:password]@db.internal:5432/app",
            1,
        );
        check_clean("see https://user@example.com/path?a=b:c@d");
    }

    #[test]
    fn ordinary_code_is_left_alone() {
        check_clean("password_field = form.get(\"password\")");
        check_clean("let token = lexer.next_token();");
        check_clean("token = next_token2");
        check_clean("max_tokens: \"1000\"");
        check_clean("api_key_env = \"GLOBAL_API_KEY\"");
        check_clean("password: string;");
        check_clean("const task = 'sk-'; let askForHelp = true;");
        check_clean("secret = \"\"");
        check_clean("password = \"${DB_PASSWORD}\"");
        check_clean("fn parse_token(input: &str) -> Token { Token::Ident }");
        check_clean("token: Option<String>, kind: Token::SomeLongVariant2");
        check_clean("héllo wörld, ünïcode stays");
    }
}
