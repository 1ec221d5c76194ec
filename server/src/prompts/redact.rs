//! Secret redaction: hand-written matchers for well-known secret shapes, applied before text leaves the machine.

use std::ops::Range;

/// Replaces secrets in `text` with `[REDACTED:<kind>]` markers; returns the text and how many
/// secrets were replaced.
///
/// Recognised: PEM private key blocks, AWS access key ids, GitHub, GitLab, Slack, OpenAI-style,
/// Google, Stripe (keys and webhook secrets) and SendGrid keys, JWTs, `user:password@` in URLs,
/// the credential of an `Authorization` header, secret parameters of URLs and connection
/// strings (JDBC `password=`, Azure `AccountKey=`), and values assigned to names such as
/// `password`, `secret`, `token` or `api_key` (the name is kept, the value replaced). All
/// patterns are ASCII, so every span boundary is a char boundary.
pub fn redact(text: &str) -> (String, usize) {
    let found = find(text);
    let count = found.len();
    (mask(text, &found), count)
}

/// A secret found in a text: its byte range and what it is (the marker names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub range: Range<usize>,
    pub kind: &'static str,
}

/// The secrets in `text`, sorted and merged so that no two overlap.
pub fn find(text: &str) -> Vec<Secret> {
    let mut spans = Vec::new();
    // Where spans coincide, the first pushed names the marker: most specific shapes first.
    private_keys(text, &mut spans);
    jwts(text, &mut spans);
    tokens(text, &mut spans);
    sendgrid_keys(text, &mut spans);
    authorization_headers(text, &mut spans);
    assignments(text, &mut spans);
    url_params(text, &mut spans);
    env_assignments(text, &mut spans);
    url_passwords(text, &mut spans);
    merge(spans)
}

/// Sorts `spans` and merges those that overlap; the earliest (then longest) names the marker.
pub fn merge(mut spans: Vec<Secret>) -> Vec<Secret> {
    spans.sort_by_key(|s| (s.range.start, std::cmp::Reverse(s.range.end)));
    let mut merged: Vec<Secret> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.range.start < last.range.end => {
                last.range.end = last.range.end.max(span.range.end);
            }
            _ => merged.push(span),
        }
    }
    merged
}

/// `text` with each of `secrets` (sorted, disjoint byte ranges on char boundaries) replaced by
/// its `[REDACTED:<kind>]` marker.
pub fn mask(text: &str, secrets: &[Secret]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in secrets {
        let (start, end) = (span.range.start.max(at), span.range.end.min(text.len()));
        if start >= end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(&marker(span.kind));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// What replaces a secret of `kind`.
pub fn marker(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `-----BEGIN ... PRIVATE KEY-----` through the matching `-----END ...-----`; a block cut off
/// before its end (a truncated selection) is redacted to the end of the text.
fn private_keys(text: &str, spans: &mut Vec<Secret>) {
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
        spans.push(Secret {
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
    /// The prefix is a word worth keeping (`Bearer `); only the body is replaced.
    keep_prefix: bool,
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
        keep_prefix: false,
        kind: "aws-access-key",
    },
    Shape {
        prefixes: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        body: |b| b.is_ascii_alphanumeric(),
        min: 30,
        max: 255,
        needs_digit: false,
        keep_prefix: false,
        kind: "github-token",
    },
    Shape {
        prefixes: &["github_pat_"],
        body: is_word,
        min: 22,
        max: 255,
        needs_digit: false,
        keep_prefix: false,
        kind: "github-token",
    },
    Shape {
        prefixes: &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"],
        body: |b| b.is_ascii_alphanumeric() || b == b'-',
        min: 10,
        max: 255,
        needs_digit: false,
        keep_prefix: false,
        kind: "slack-token",
    },
    Shape {
        prefixes: &["sk-"],
        body: is_base64url,
        min: 20,
        max: 255,
        needs_digit: true,
        keep_prefix: false,
        kind: "api-key",
    },
    Shape {
        prefixes: &["AIza"],
        body: is_base64url,
        min: 30,
        max: 60,
        needs_digit: false,
        keep_prefix: false,
        kind: "google-api-key",
    },
    Shape {
        prefixes: &["sk_live_", "rk_live_", "sk_test_", "rk_test_"],
        body: |b| b.is_ascii_alphanumeric(),
        min: 10,
        max: 255,
        needs_digit: false,
        keep_prefix: false,
        kind: "stripe-key",
    },
    Shape {
        prefixes: &["whsec_"],
        body: |b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=',
        min: 20,
        max: 255,
        needs_digit: false,
        keep_prefix: false,
        kind: "stripe-webhook-secret",
    },
    Shape {
        prefixes: &[
            "glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "gloas-",
        ],
        body: is_base64url,
        min: 20,
        max: 255,
        needs_digit: false,
        keep_prefix: false,
        kind: "gitlab-token",
    },
    Shape {
        prefixes: &["Bearer ", "bearer ", "BEARER "],
        body: |b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b),
        min: 16,
        max: 4096,
        needs_digit: true,
        keep_prefix: true,
        kind: "bearer-token",
    },
];

/// The bytes some prefix in [`SHAPES`] starts with, so [`tokens`] looks closer only there.
const FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut s = 0;
    while s < SHAPES.len() {
        let mut p = 0;
        while p < SHAPES[s].prefixes.len() {
            table[SHAPES[s].prefixes[p].as_bytes()[0] as usize] = true;
            p += 1;
        }
        s += 1;
    }
    table
};

/// Well-known token shapes: a fixed prefix at a word start, then a body of a given alphabet.
///
/// One pass over the text, trying the prefixes only at a word start whose byte begins one:
/// searching for each of the prefixes in turn cost a searcher per prefix on every piece of a
/// prompt, most of the prompt's masking time.
fn tokens(text: &str, spans: &mut Vec<Secret>) {
    let bytes = text.as_bytes();
    for (start, &first) in bytes.iter().enumerate() {
        if !FIRST_BYTES[usize::from(first)]
            || (start > 0 && (is_word(bytes[start - 1]) || bytes[start - 1] == b'-'))
        {
            continue;
        }
        for shape in SHAPES {
            for prefix in shape.prefixes {
                if bytes[start..].starts_with(prefix.as_bytes()) {
                    token_at(bytes, start, prefix.len(), shape, spans);
                }
            }
        }
    }
}

/// The token of `shape` whose prefix (`prefix_len` bytes) starts at `start`, if its body has
/// the shape's alphabet and length.
fn token_at(bytes: &[u8], start: usize, prefix_len: usize, shape: &Shape, spans: &mut Vec<Secret>) {
    let body = start + prefix_len;
    let len = bytes[body..]
        .iter()
        .take(shape.max + 1)
        .take_while(|b| (shape.body)(**b))
        .count();
    let end = body + len;
    if len < shape.min || len > shape.max || bytes.get(end).is_some_and(|b| is_word(*b)) {
        return;
    }
    if shape.needs_digit && !bytes[body..end].iter().any(u8::is_ascii_digit) {
        return;
    }
    let start = if shape.keep_prefix { body } else { start };
    spans.push(Secret {
        range: start..end,
        kind: shape.kind,
    });
}

/// SendGrid API keys: `SG.<22 base64url>.<43 base64url>` (lengths vary a little between key
/// generations, so any two parts of at least 16 characters are taken).
fn sendgrid_keys(text: &str, spans: &mut Vec<Secret>) {
    let bytes = text.as_bytes();
    let part = |from: usize| {
        from + bytes[from..]
            .iter()
            .take(256)
            .take_while(|b| is_base64url(**b))
            .count()
    };
    for (start, _) in text.match_indices("SG.") {
        if start > 0 && (is_word(bytes[start - 1]) || bytes[start - 1] == b'.') {
            continue;
        }
        let id = start + 3;
        let id_end = part(id);
        if id_end - id < 16 || bytes.get(id_end) != Some(&b'.') {
            continue;
        }
        let end = part(id_end + 1);
        if end - (id_end + 1) < 16 {
            continue;
        }
        spans.push(Secret {
            range: start..end,
            kind: "sendgrid-key",
        });
    }
}

/// The credential of an `Authorization` (or `Proxy-Authorization`) header written out:
/// `Authorization: Basic dXNlcjpwYXNz`, `"authorization": "Token abc…"`, `-H
/// 'Authorization=Digest …'`. The scheme is kept; a credential built in code (`"Basic " + b64`,
/// `Bearer {token}`) is not a literal and stays.
fn authorization_headers(text: &str, spans: &mut Vec<Secret>) {
    const NAME: &[u8] = b"authorization";
    let bytes = text.as_bytes();
    let at = |k: usize| bytes.get(k).copied().unwrap_or(0);
    let mut i = 0;
    while i + NAME.len() <= bytes.len() {
        if !bytes[i..i + NAME.len()].eq_ignore_ascii_case(NAME) {
            i += 1;
            continue;
        }
        let mut j = i + NAME.len();
        i = j;
        if is_word(at(j)) {
            continue;
        }
        if matches!(at(j), b'"' | b'\'') {
            j += 1;
        }
        while matches!(at(j), b' ' | b'\t') {
            j += 1;
        }
        if !matches!(at(j), b':' | b'=') {
            continue;
        }
        j += 1;
        while matches!(at(j), b' ' | b'\t' | b'"' | b'\'') {
            j += 1;
        }
        let scheme = bytes[j..]
            .iter()
            .take(21)
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if scheme == 0 || scheme > 20 || at(j + scheme) != b' ' {
            continue;
        }
        let from = j + scheme + 1;
        let len = bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || b"+/=._~-".contains(b))
            .count();
        if len >= 6 {
            spans.push(Secret {
                range: from..from + len,
                kind: "authorization",
            });
        }
    }
}

/// Secret parameters of URLs and connection strings, whatever their value looks like:
/// `?user=app&password=hunter2`, `jdbc:sqlserver://db;user=sa;password=Tr0ub4dor&3;`,
/// `…;AccountKey=Eby8…==;…`, `?sig=…` (an Azure SAS signature). After `?` or `&` a value ends
/// at `&`, `;` or `#`; after `;` (connection strings) `&` belongs to the value.
fn url_params(text: &str, spans: &mut Vec<Secret>) {
    let bytes = text.as_bytes();
    let is_name = |b: u8| is_word(b) || b == b'-' || b == b'.';
    for (sep_at, sep) in bytes.iter().enumerate() {
        if !matches!(sep, b'?' | b'&' | b';') {
            continue;
        }
        let name_start = sep_at + 1;
        let name_end = name_start
            + bytes[name_start..]
                .iter()
                .take(64)
                .take_while(|b| is_name(**b))
                .count();
        if name_end == name_start || bytes.get(name_end) != Some(&b'=') {
            continue;
        }
        let name = &bytes[name_start..name_end];
        let secret_name = (SECRET_NAMES.iter().any(|k| contains_ignore_case(name, k))
            && !NOT_SECRET.iter().any(|k| contains_ignore_case(name, k)))
            || PARAM_NAMES
                .iter()
                .any(|k| name.eq_ignore_ascii_case(k.as_bytes()));
        if !secret_name {
            continue;
        }
        let from = name_end + 1;
        let ends = |b: u8| {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b';' | b'"' | b'\'' | b'`' | b'<' | b'>' | b')' | b']' | b'}' | b'('
                )
                || (*sep != b';' && matches!(b, b'&' | b'#'))
        };
        let len = bytes[from..].iter().take_while(|b| !ends(**b)).count();
        let value = &bytes[from..from + len];
        // `;token=next()` is code, not a parameter.
        if value.is_empty() || bytes.get(from + len) == Some(&b'(') || is_placeholder(value) {
            continue;
        }
        spans.push(Secret {
            range: from..from + len,
            kind: "secret",
        });
    }
}

/// Names that are secret as URL parameters only when they are the whole name.
const PARAM_NAMES: &[&str] = &["sig", "key", "accountkey", "sharedaccesskey"];

/// `DB_PASSWORD=hunter2`, `export API_TOKEN=abc`, `spring.datasource.password=hunter2` at the
/// start of a line: the shell, `.env` and `.properties` form, whose values are unquoted and
/// need not look random. Only constant-like (`UPPER_CASE`) or dotted names, with no space
/// around `=` and a one-word value, so `password=ask()` or Python's `password = pw` stay.
fn env_assignments(text: &str, spans: &mut Vec<Secret>) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end();
        let indent = body.len() - body.trim_start().len();
        let rest = &body[indent..];
        let (rest, skipped) = match rest.strip_prefix("export ") {
            Some(r) => (r, indent + "export ".len()),
            None => (rest, indent),
        };
        let Some(eq) = rest.find('=') else {
            continue;
        };
        let (name, value) = (&rest[..eq], &rest[eq + 1..]);
        let constant = name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        let dotted = name.contains('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        let n = name.as_bytes();
        if name.is_empty()
            || !(constant || dotted)
            || !SECRET_NAMES.iter().any(|k| contains_ignore_case(n, k))
            || NOT_SECRET.iter().any(|k| contains_ignore_case(n, k))
        {
            continue;
        }
        let v = value.as_bytes();
        if v.is_empty()
            || v.iter()
                .any(|b| b.is_ascii_whitespace() || b"()\"'`".contains(b))
            || is_placeholder(v)
            || v[0] == b'$'
        {
            continue;
        }
        let from = start + skipped + eq + 1;
        spans.push(Secret {
            range: from..from + value.len(),
            kind: "secret",
        });
    }
}

/// `eyJ<header>.eyJ<payload>.<signature>`: base64url JSON header and payload.
fn jwts(text: &str, spans: &mut Vec<Secret>) {
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
        spans.push(Secret {
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
    "authorization",
    "accountkey",
    "sharedaccesskey",
    "client_secret",
];

/// Name parts that say the value is about a secret rather than the secret itself
/// (`max_tokens`, `api_key_env`, `password_field`).
const NOT_SECRET: &[&str] = &[
    "tokens",
    "tokeniz",
    "_type",
    "_url",
    "_uri",
    "_endpoint",
    "_path",
    "_file",
    "_env",
    "_name",
    "_field",
    "_label",
    "_len",
    "_count",
    "_limit",
    "_prompt",
    "_header",
];

fn contains_ignore_case(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `password = "..."`, `"api_key": "..."`, `token: ...`, `--password=...`: keeps the name,
/// replaces the value. Quoted values are always taken; unquoted ones only when they look
/// random (letters, digits and symbols mixed), so `password = form.get(...)` stays.
fn assignments(text: &str, spans: &mut Vec<Secret>) {
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
            spans.push(Secret {
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
    if name_start > 0 && matches!(at(name_start - 1), b'"' | b'\'') && at(j) == at(name_start - 1) {
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

/// Whether an unquoted value looks like a secret rather than code: at least eight characters
/// of a password-like alphabet from three classes of lower, upper, digit and symbol
/// (`wJalrXUtnFEMI/K7MDENG`), or at least sixteen letters and digits, both present, with the
/// spread of a random string (a hex or base62 token such as `3f9a8c7e6d5b4a3c2b1a`). Not
/// `next_token2`, `form.get(x)`, `Option<String>` or `TOKEN_FROM_ENV_2`.
fn looks_random(value: &[u8]) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"/+=_-.~!@#$%^*".contains(b);
    if value.len() < 8 || !value.iter().all(allowed) || is_placeholder(value) {
        return false;
    }
    let has = |f: fn(&u8) -> bool| usize::from(value.iter().any(f));
    let classes = has(u8::is_ascii_lowercase)
        + has(u8::is_ascii_uppercase)
        + has(u8::is_ascii_digit)
        + has(|b| b.is_ascii_punctuation() && *b != b'_' && *b != b'.');
    classes >= 3
        || (value.len() >= 16
            && value.iter().all(u8::is_ascii_alphanumeric)
            && has(u8::is_ascii_digit) == 1
            && has(u8::is_ascii_alphabetic) == 1
            && entropy_bits(value) >= 3.0)
}

/// Shannon entropy of `value` in bits per byte.
fn entropy_bits(value: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for b in value {
        counts[usize::from(*b)] += 1;
    }
    let n = value.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// `scheme://user:password@host`: the password part.
fn url_passwords(text: &str, spans: &mut Vec<Secret>) {
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
            spans.push(Secret {
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
    fn bearer_and_authorization_headers() {
        check(
            "curl -H 'Authorization: Bearer 4f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a'",
            "curl -H 'Authorization: Bearer [REDACTED:bearer-token]'",
            1,
        );
        check(
            r#"headers = {"Authorization": "Basic dXNlcjpwYXNz"}"#,
            r#"headers = {"Authorization": "[REDACTED:secret]"}"#,
            1,
        );
        check_clean("format!(\"Bearer {token}\"); let auth = \"Bearer ${TOKEN}\";");
        check_clean("authorization_url = \"https://example.com/oauth\"");
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
    fn stripe_webhook_gitlab_and_sendgrid_keys() {
        check(
            "STRIPE_WEBHOOK = whsec_5f1e2d3c4b5a69788796a5b4c3d2e1f0;",
            "STRIPE_WEBHOOK = [REDACTED:stripe-webhook-secret];",
            1,
        );
        check(
            "git clone https://oauth2:glpat-Xy9_aB3cD4eF5gH6iJ7k@gitlab.com/a/b",
            "git clone https://oauth2:[REDACTED:gitlab-token]@gitlab.com/a/b",
            1,
        );
        check(
            "sg.send(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)",
            "sg.send([REDACTED:sendgrid-key])",
            1,
        );
        check_clean("glpat-short; SG.notakey.x; whsec_tooShort");
    }

    #[test]
    fn connection_strings_and_url_parameters() {
        check(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:secret];EndpointSuffix=core.windows.net",
            1,
        );
        check(
            "jdbc:mysql://db:3306/app?user=app&password=hunter22&useSSL=true",
            "jdbc:mysql://db:3306/app?user=app&password=[REDACTED:secret]&useSSL=true",
            1,
        );
        check(
            "jdbc:sqlserver://db:1433;databaseName=app;user=sa;password=Tr0ub4dor&3;encrypt=true",
            "jdbc:sqlserver://db:1433;databaseName=app;user=sa;password=[REDACTED:secret];encrypt=true",
            1,
        );
        check(
            "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=Xb7k%2Fq9Lw3&se=2030",
            "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=[REDACTED:secret]&se=2030",
            1,
        );
        check_clean("https://example.com/search?q=rust&page=2;x=1");
        check_clean("let t = a;token=next_token(); url?password=${DB_PASSWORD}");
    }

    #[test]
    fn authorization_headers_of_any_scheme() {
        check(
            "curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA==' https://api",
            "curl -H 'Authorization: Basic [REDACTED:authorization]' https://api",
            1,
        );
        check(
            "Proxy-Authorization: Digest c2VjcmV0LWRpZ2VzdA\n",
            "Proxy-Authorization: Digest [REDACTED:authorization]\n",
            1,
        );
        check_clean("req.header(\"Authorization\", \"Basic \" + encoded)");
        check_clean("authorization: Basic {creds}; Authorization: Basic short");
    }

    #[test]
    fn generic_token_and_secret_assignments_with_random_values() {
        check(
            "github_token: 3f9a8c7e6d5b4a3c2b1a0f9e8d7c6b5a4f3e2d1c\n",
            "github_token: [REDACTED:secret]\n",
            1,
        );
        check(
            "client_secret = 8a7B6c5D4e3F2a1B0c9D\n",
            "client_secret = [REDACTED:secret]\n",
            1,
        );
        check(
            "settings.api_key = Zk39fQ0pLm82xVb7Tn4w;",
            "settings.api_key = [REDACTED:secret];",
            1,
        );
        check_clean("refresh_token = TOKEN_FROM_ENV_2");
        check_clean("session_token = aaaaaaaaaaaaaaaa1111");
    }

    #[test]
    fn env_and_properties_assignments_need_not_look_random() {
        check(
            "export DB_PASSWORD=hunter22\nAPI_TOKEN=abc\n",
            "export DB_PASSWORD=[REDACTED:secret]\nAPI_TOKEN=[REDACTED:secret]\n",
            2,
        );
        check(
            "spring.datasource.password=changeme\n",
            "spring.datasource.password=[REDACTED:secret]\n",
            1,
        );
        check_clean("password=ask()\nDB_PASSWORD=$FROM_VAULT\nMAX_TOKENS=1000\nAPI_KEY_ENV=GLOBAL_API_KEY\n");
        check_clean("password = pw\n    TOKEN_TYPE=bearer\n");
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
