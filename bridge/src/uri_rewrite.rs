//! Byte-preserving URI rewriting for proxied LSP messages.
//!
//! This module owns the translation between editor-side URIs
//! (`SCHEME://AUTHORITY/PATH`, e.g. `distant://host/home/me/a.rs`) and
//! remote-side URIs (`file:///PATH`) inside raw JSON bodies.
//!
//! A single pass of a small hand-written JSON tokenizer visits every string
//! token — values *and* object keys — and rewrites a token only when its
//! whole (decoded) content *is* a URI of the source form. Every other byte is
//! copied unchanged: no re-serialisation, no pretty-printing, and never a
//! substring replacement (distant 0.20 turned `profile:` into `prodistant:`
//! that way). A string that merely *contains* a URI — hover markdown, a
//! document's text — is left alone. URIs never contain raw whitespace or
//! control characters (clients percent-encode them), so a string containing
//! any is not a URI; this keeps document text that happens to start with a
//! URI untouched.
//!
//! Rules:
//!
//! - editor → remote ([`UriMap::to_remote`]): `SCHEME://AUTHORITY/PATH`
//!   (scheme matched ASCII-case-insensitively; AUTHORITY anything without
//!   `/`, possibly empty) becomes `file:///PATH`. PATH keeps its
//!   percent-encoding as is.
//! - remote → editor ([`UriMap::to_editor`]): every string the editor could
//!   take for a local `file:` URI becomes `SCHEME://AUTHORITY/PATH` with the
//!   configured scheme and authority, or the whole message is refused (an
//!   error; the caller drops it). The remote side (a language server) is not
//!   trusted: nothing it sends may reach the editor naming a local file.
//!   A string is a `file:` URI when its decoded content starts with `file:`
//!   (ASCII-case-insensitively) and either `/` follows or the rest has no
//!   whitespace or control character (`file: IO`, a type annotation, is
//!   text; `file:a.txt` is a URI, which VS Code resolves to `/a.txt`).
//!   Forms (RFC 8089 and what editors' parsers accept):
//!   `file:///P`, `file://localhost/P` (host matched case-insensitively),
//!   `file:/P` and `file:P` all become `SCHEME://AUTHORITY/P`; a raw space
//!   in the path becomes `%20`; `file://HOST/P` for any other host (a UNC
//!   path on Windows), or a `file:` URI with a control character, is refused.
//!   So is malformed JSON or nesting over [`MAX_DEPTH`]: a message that
//!   cannot be checked is never passed through.
//!
//! A URI written with JSON escapes (`file:\/\/\/a`, `\u0066ile:///a`) is
//! recognised; the replacement is emitted with minimal escaping (only `"`,
//! `\` and control characters). Strings that are not rewritten are copied
//! byte for byte, escapes included. Malformed JSON yields a
//! [`RewriteError`]; the caller forwards an editor message untouched (the
//! editor is trusted) and drops a remote one, logging either.
//! Nesting deeper than [`MAX_DEPTH`] is an error (the scanner uses an
//! explicit stack, so depth never touches the call stack). The input is not
//! validated as UTF-8: the tokenizer only looks at ASCII structure, so
//! invalid bytes outside rewritten URIs pass through untouched.
//!
//! ```
//! use distant_bridge::uri_rewrite::UriMap;
//!
//! let map = UriMap::new("distant", "work");
//! let body = br#"{"uri":"distant://work/src/a.rs","text":"profile: file:///x"}"#;
//! let out = map.to_remote(body).unwrap();
//! assert_eq!(out.count, 1);
//! assert_eq!(
//!     out.bytes.as_deref(),
//!     Some(&br#"{"uri":"file:///src/a.rs","text":"profile: file:///x"}"#[..])
//! );
//! ```

/// Deepest array/object nesting accepted.
pub const MAX_DEPTH: usize = 512;

/// Maps editor-side URIs to remote-side `file://` URIs and back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriMap {
    /// Editor-side scheme, without `://` (default `distant`).
    pub scheme: String,
    /// Editor-side authority used for remote → editor URIs (may be empty;
    /// must not contain `/`).
    pub authority: String,
}

impl Default for UriMap {
    fn default() -> Self {
        Self {
            scheme: "distant".to_owned(),
            authority: String::new(),
        }
    }
}

/// Result of a rewrite pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The rewritten JSON, or `None` when nothing was rewritten (forward the
    /// original bytes; no copy was made).
    pub bytes: Option<Vec<u8>>,
    /// Number of string tokens rewritten.
    pub count: usize,
}

impl Rewritten {
    /// True when nothing was rewritten.
    pub fn is_unchanged(&self) -> bool {
        self.bytes.is_none()
    }

    /// The bytes to forward: the rewritten ones, or `original` itself (no
    /// copy) when nothing changed.
    pub fn into_bytes(self, original: bytes::Bytes) -> bytes::Bytes {
        match self.bytes {
            Some(v) => bytes::Bytes::from(v),
            None => original,
        }
    }

    /// The bytes to forward, copied into a `Vec`.
    pub fn to_vec(&self, original: &[u8]) -> Vec<u8> {
        match &self.bytes {
            Some(v) => v.clone(),
            None => original.to_vec(),
        }
    }
}

/// Malformed JSON (or nesting over [`MAX_DEPTH`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON at byte {offset}: {reason}")]
pub struct RewriteError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

#[derive(Clone, Copy)]
enum Direction {
    ToRemote,
    ToEditor,
}

impl UriMap {
    /// A map for `scheme` (without `://`) and `authority`.
    pub fn new(scheme: impl Into<String>, authority: impl Into<String>) -> Self {
        Self {
            scheme: scheme.into(),
            authority: authority.into(),
        }
    }

    /// Editor → remote: `SCHEME://AUTHORITY/PATH` ⇒ `file:///PATH`.
    pub fn to_remote(&self, json: &[u8]) -> Result<Rewritten, RewriteError> {
        self.rewrite(json, Direction::ToRemote)
    }

    /// Remote → editor: `file:///PATH` ⇒ `SCHEME://AUTHORITY/PATH`.
    pub fn to_editor(&self, json: &[u8]) -> Result<Rewritten, RewriteError> {
        self.rewrite(json, Direction::ToEditor)
    }

    /// Rewrites one URI string (already decoded), if it is of the source
    /// form. Useful for single values such as a `rootUri` in a command line.
    pub fn uri_to_remote(&self, uri: &str) -> Option<String> {
        let path = self.editor_path(uri.as_bytes())?;
        let mut out = b"file://".to_vec();
        out.extend_from_slice(path);
        String::from_utf8(out).ok()
    }

    /// Rewrites one `file:` URI string to the editor form, if it is one
    /// that can be rewritten (see the module docs); `None` otherwise.
    pub fn uri_to_editor(&self, uri: &str) -> Option<String> {
        match classify_remote(uri.as_bytes()) {
            Remote::File { path, spaces } => {
                let mut out = format!("{}://{}", self.scheme, self.authority).into_bytes();
                push_path(path, spaces, &mut out, |b, o| o.extend_from_slice(b));
                String::from_utf8(out).ok()
            }
            Remote::Text | Remote::Refused(_) => None,
        }
    }

    /// If `s` is `SCHEME://AUTHORITY/PATH`, returns `/PATH`.
    fn editor_path<'s>(&self, s: &'s [u8]) -> Option<&'s [u8]> {
        if !is_uri_shaped(s) {
            return None;
        }
        let scheme = self.scheme.as_bytes();
        let head = s.get(..scheme.len())?;
        if !head.eq_ignore_ascii_case(scheme) {
            return None;
        }
        let rest = s.get(scheme.len()..)?.strip_prefix(b"://")?;
        let slash = rest.iter().position(|b| *b == b'/')?;
        rest.get(slash..)
    }

    fn rewrite(&self, json: &[u8], dir: Direction) -> Result<Rewritten, RewriteError> {
        let mut out = Output {
            json,
            buf: None,
            copied: 0,
            count: 0,
        };
        // Cheap pre-filter on the first decoded byte of a string.
        let first = match dir {
            Direction::ToRemote => self.scheme.as_bytes().first().copied(),
            Direction::ToEditor => Some(b'f'),
        };
        let mut scratch = Vec::new();
        let mut refused: Option<RewriteError> = None;
        scan(json, |start, end, escaped| {
            let content = json.get(start + 1..end - 1).unwrap_or_default();
            if refused.is_some() || !could_start(content, first) {
                return;
            }
            let decoded: &[u8] = if escaped {
                scratch.clear();
                if decode_into(content, &mut scratch, matches!(dir, Direction::ToEditor)).is_none()
                {
                    return;
                }
                &scratch
            } else {
                content
            };
            let replacement = match dir {
                Direction::ToRemote => self.editor_path(decoded).map(|path| {
                    let mut r = Vec::with_capacity(path.len() + 9);
                    r.extend_from_slice(b"\"file://");
                    escape_into(path, &mut r);
                    r.push(b'"');
                    r
                }),
                Direction::ToEditor => match classify_remote(decoded) {
                    Remote::Text => None,
                    Remote::Refused(reason) => {
                        refused = Some(err(start, reason));
                        None
                    }
                    Remote::File { path, spaces } => {
                        let mut r = Vec::with_capacity(
                            path.len() + self.scheme.len() + self.authority.len() + 8,
                        );
                        r.push(b'"');
                        escape_into(self.scheme.as_bytes(), &mut r);
                        r.extend_from_slice(b"://");
                        escape_into(self.authority.as_bytes(), &mut r);
                        push_path(path, spaces, &mut r, escape_into);
                        r.push(b'"');
                        Some(r)
                    }
                },
            };
            if let Some(r) = replacement {
                out.replace(start, end, &r);
            }
        })?;
        if let Some(e) = refused {
            return Err(e);
        }
        Ok(out.finish())
    }
}

/// What a decoded string from the remote side is.
#[derive(Debug, PartialEq, Eq)]
enum Remote<'s> {
    /// Not a `file:` URI.
    Text,
    /// A local `file:` URI: the editor form is `SCHEME://AUTHORITY` + `/`
    /// (when `path` does not start with one) + `path`, with raw spaces
    /// percent-encoded when `spaces`.
    File { path: &'s [u8], spaces: bool },
    /// A `file:` URI that cannot be rewritten safely.
    Refused(&'static str),
}

/// Classifies a decoded string from the remote side (module docs, rules).
fn classify_remote(s: &[u8]) -> Remote<'_> {
    let Some(rest) = s
        .get(..5)
        .filter(|h| h.eq_ignore_ascii_case(b"file:"))
        .and_then(|_| s.get(5..))
    else {
        return Remote::Text;
    };
    let control = rest.iter().any(|b| *b < b' ' || *b == 0x7f);
    let spaces = rest.contains(&b' ');
    if !rest.starts_with(b"/") {
        // `file:a.txt` resolves to `/a.txt` in VS Code; `file: IO` is text.
        if control || spaces {
            return Remote::Text;
        }
        return Remote::File { path: rest, spaces };
    }
    if control {
        return Remote::Refused("a file: URI from the remote side contains a control character");
    }
    let Some(after) = rest.strip_prefix(b"//") else {
        return Remote::File { path: rest, spaces };
    };
    let end = after
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(after.len());
    let (host, path) = after.split_at(end);
    if host.is_empty() || host.eq_ignore_ascii_case(b"localhost") {
        Remote::File { path, spaces }
    } else {
        Remote::Refused("a file: URI from the remote side names a host (a network path)")
    }
}

/// Appends a remote URI's path in editor form: a leading `/` when missing,
/// raw spaces as `%20`, each piece through `emit` (escaping or copying).
fn push_path(path: &[u8], spaces: bool, out: &mut Vec<u8>, emit: fn(&[u8], &mut Vec<u8>)) {
    if !path.starts_with(b"/") {
        out.push(b'/');
    }
    if !spaces {
        emit(path, out);
        return;
    }
    for (i, piece) in path.split(|b| *b == b' ').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"%20");
        }
        emit(piece, out);
    }
}

/// A URI never contains raw whitespace or control characters.
fn is_uri_shaped(s: &[u8]) -> bool {
    !s.iter().any(|b| *b <= b' ' || *b == 0x7f)
}

/// Could the decoded string start with `first` (case-insensitively)? An
/// escape at the front could be anything, so it passes.
fn could_start(content: &[u8], first: Option<u8>) -> bool {
    match (content.first(), first) {
        (Some(b'\\'), _) => true,
        (Some(c), Some(f)) => c.eq_ignore_ascii_case(&f),
        _ => false,
    }
}

struct Output<'a> {
    json: &'a [u8],
    buf: Option<Vec<u8>>,
    copied: usize,
    count: usize,
}

impl Output<'_> {
    /// Replaces `json[start..end]` with `with`.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        let buf = self
            .buf
            .get_or_insert_with(|| Vec::with_capacity(self.json.len() + 256));
        buf.extend_from_slice(self.json.get(self.copied..start).unwrap_or_default());
        buf.extend_from_slice(with);
        self.copied = end;
        self.count += 1;
    }

    fn finish(mut self) -> Rewritten {
        if let Some(buf) = self.buf.as_mut() {
            buf.extend_from_slice(self.json.get(self.copied..).unwrap_or_default());
        }
        Rewritten {
            bytes: self.buf,
            count: self.count,
        }
    }
}

/// Escapes decoded string content for a JSON string token (without quotes):
/// only `"`, `\` and control characters.
fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
}

/// Decodes the content of a string token whose escapes the scanner has
/// already validated. Returns `None` for content that cannot be a URI
/// (lone surrogates, control characters, whitespace) — it stops early.
/// With `exact`, control characters and whitespace are decoded too (the
/// remote side's strings are classified on their exact content).
fn decode_into(content: &[u8], out: &mut Vec<u8>, exact: bool) -> Option<()> {
    let mut i = 0;
    while let Some(&b) = content.get(i) {
        if b != b'\\' {
            if b <= b' ' && !exact {
                return None;
            }
            out.push(b);
            i += 1;
            continue;
        }
        let esc = *content.get(i + 1)?;
        i += 2;
        match esc {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'u' => {
                let hi = hex4(content.get(i..i + 4)?)?;
                i += 4;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    // Needs a low surrogate next.
                    let lo = content
                        .get(i..i + 2)
                        .filter(|p| *p == b"\\u")
                        .and_then(|_| content.get(i + 2..i + 6))
                        .and_then(hex4)
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    lo.and_then(|lo| {
                        i += 6;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                    })
                } else {
                    char::from_u32(hi)
                };
                // A lone surrogate: what a lenient editor parser makes of it.
                let c = match c {
                    Some(c) => c,
                    None if exact => '\u{fffd}',
                    None => return None,
                };
                if (c <= ' ' || c == '\u{7f}') && !exact {
                    return None;
                }
                let mut tmp = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
            b'b' if exact => out.push(0x08),
            b'f' if exact => out.push(0x0c),
            b'n' if exact => out.push(b'\n'),
            b'r' if exact => out.push(b'\r'),
            b't' if exact => out.push(b'\t'),
            // \b \f \n \r \t: control characters, never in a URI.
            _ => return None,
        }
    }
    Some(())
}

fn hex4(h: &[u8]) -> Option<u32> {
    if h.len() != 4 {
        return None;
    }
    h.iter().try_fold(0u32, |acc, b| {
        let d = (*b as char).to_digit(16)?;
        Some(acc * 16 + d)
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (top level, after `:` or after `,` in an array).
    Value,
    /// A value or `]` (just after `[`).
    ValueOrClose,
    /// A key (after `,` in an object).
    Key,
    /// A key or `}` (just after `{`).
    KeyOrClose,
    /// `:` after a key.
    Colon,
    /// `,` or the closing bracket of the current container.
    CommaOrClose,
    /// Only trailing whitespace.
    End,
}

fn err(offset: usize, reason: &'static str) -> RewriteError {
    RewriteError { offset, reason }
}

/// Validates `json` and calls `on_string(start, end, has_escapes)` for every
/// string token (keys and values), where `json[start..end]` is the token
/// including its quotes.
fn scan(json: &[u8], mut on_string: impl FnMut(usize, usize, bool)) -> Result<(), RewriteError> {
    // true = object, false = array.
    let mut stack: Vec<bool> = Vec::new();
    let mut expect = Expect::Value;
    let mut i = 0;
    loop {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(i) {
            i += 1;
        }
        let Some(&b) = json.get(i) else {
            return if expect == Expect::End {
                Ok(())
            } else {
                Err(err(i, "unexpected end of input"))
            };
        };
        let after_value = |stack: &Vec<bool>| {
            if stack.is_empty() {
                Expect::End
            } else {
                Expect::CommaOrClose
            }
        };
        match expect {
            Expect::End => return Err(err(i, "trailing data after the JSON value")),
            Expect::Colon => {
                if b != b':' {
                    return Err(err(i, "expected `:`"));
                }
                i += 1;
                expect = Expect::Value;
            }
            Expect::CommaOrClose => {
                let in_object = stack.last().copied().unwrap_or(false);
                match b {
                    b',' => {
                        i += 1;
                        expect = if in_object {
                            Expect::Key
                        } else {
                            Expect::Value
                        };
                    }
                    b'}' if in_object => {
                        i += 1;
                        stack.pop();
                        expect = after_value(&stack);
                    }
                    b']' if !in_object => {
                        i += 1;
                        stack.pop();
                        expect = after_value(&stack);
                    }
                    _ => return Err(err(i, "expected `,` or a closing bracket")),
                }
            }
            Expect::Key | Expect::KeyOrClose => match b {
                b'"' => {
                    let (end, escaped) = scan_string(json, i)?;
                    on_string(i, end, escaped);
                    i = end;
                    expect = Expect::Colon;
                }
                b'}' if expect == Expect::KeyOrClose => {
                    i += 1;
                    stack.pop();
                    expect = after_value(&stack);
                }
                _ => return Err(err(i, "expected an object key")),
            },
            Expect::Value | Expect::ValueOrClose => {
                match b {
                    b'{' | b'[' => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(err(i, "nesting too deep"));
                        }
                        stack.push(b == b'{');
                        i += 1;
                        expect = if b == b'{' {
                            Expect::KeyOrClose
                        } else {
                            Expect::ValueOrClose
                        };
                        continue;
                    }
                    b']' if expect == Expect::ValueOrClose => {
                        i += 1;
                        stack.pop();
                    }
                    b'"' => {
                        let (end, escaped) = scan_string(json, i)?;
                        on_string(i, end, escaped);
                        i = end;
                    }
                    b't' => i = literal(json, i, b"true")?,
                    b'f' => i = literal(json, i, b"false")?,
                    b'n' => i = literal(json, i, b"null")?,
                    b'-' | b'0'..=b'9' => i = scan_number(json, i)?,
                    _ => return Err(err(i, "expected a value")),
                }
                expect = after_value(&stack);
            }
        }
    }
}

fn literal(json: &[u8], i: usize, word: &[u8]) -> Result<usize, RewriteError> {
    if json.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(err(i, "invalid literal"))
    }
}

/// Scans a number starting at `i`; returns the offset just past it.
fn scan_number(json: &[u8], mut i: usize) -> Result<usize, RewriteError> {
    let start = i;
    let digits = |json: &[u8], mut i: usize| {
        let s = i;
        while json.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - s)
    };
    if json.get(i) == Some(&b'-') {
        i += 1;
    }
    match json.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(json, i).0,
        _ => return Err(err(start, "invalid number")),
    }
    if json.get(i) == Some(&b'.') {
        let (j, n) = digits(json, i + 1);
        if n == 0 {
            return Err(err(start, "invalid number"));
        }
        i = j;
    }
    if let Some(b'e' | b'E') = json.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = json.get(i) {
            i += 1;
        }
        let (j, n) = digits(json, i);
        if n == 0 {
            return Err(err(start, "invalid number"));
        }
        i = j;
    }
    Ok(i)
}

/// Scans a string token whose opening quote is at `start`; returns the
/// offset just past the closing quote and whether it contains escapes.
fn scan_string(json: &[u8], start: usize) -> Result<(usize, bool), RewriteError> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        // Fast path over ordinary bytes.
        let rest = json.get(i..).unwrap_or_default();
        let skip = rest
            .iter()
            .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)
            .ok_or_else(|| err(start, "unterminated string"))?;
        i += skip;
        match json.get(i) {
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                match json.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let ok = json
                            .get(i + 2..i + 6)
                            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                        if !ok {
                            return Err(err(i, "invalid \\u escape"));
                        }
                        i += 6;
                    }
                    _ => return Err(err(i, "invalid escape")),
                }
            }
            _ => return Err(err(i, "control character in string")),
        }
    }
}

#[cfg(test)]
mod tests;
