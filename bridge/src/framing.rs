//! The LSP base protocol ("`Content-Length: N\r\n\r\n` + body") as a
//! tokio-util [`Decoder`]/[`Encoder`] ([`LspCodec`]), plus a tiny sync
//! helper ([`frame`]).
//!
//! This module owns message *boundaries* only: it never looks inside a body.
//!
//! # Modes
//!
//! - [`Mode::Strict`] (editor side). A malformed header section is reported
//!   as a [`Frame::Invalid`] item — the caller answers it with a JSON-RPC
//!   error — and the codec then resynchronises at the next `Content-Length:`
//!   (or `Content-Type:`) so the session goes on. Unknown headers are
//!   ignored, as the LSP specification says.
//! - [`Mode::Lenient`] (language-server side). Bytes that are not part of a
//!   valid header section (a banner, a stray `print`, a header-like log line)
//!   are skipped and handed out as [`Frame::Junk`] items so the caller can
//!   log a warning; the counters [`LspCodec::junk_events`] and
//!   [`LspCodec::junk_bytes`] keep the totals. Only `Content-Length` and
//!   `Content-Type` are accepted as header names in this mode; anything else
//!   is junk. The stream never wedges.
//!
//! # Limits
//!
//! The header section is capped at [`MAX_HEADER_BYTES`]; the body at a
//! configurable maximum ([`DEFAULT_MAX_BODY`] by default). A `Content-Length`
//! above the cap is reported as [`FramingError::BodyTooLarge`] (naming the
//! size and the cap) inside a [`Frame::Invalid`] item; the codec then
//! discards exactly that many bytes *without buffering them*, so the stream
//! stays in step with an honest peer and nothing is allocated for the body.
//!
//! Recoverable problems are items, not `Err`s, because a tokio-util
//! `FramedRead` ends the stream after the first decode error. `Err` is kept
//! for I/O errors and for a stream that ends in the middle of a message
//! ([`FramingError::TruncatedHeader`], [`FramingError::TruncatedBody`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest header section accepted (all header lines plus the blank line).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Default cap on a message body.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Header names a lenient-mode (and resynchronising strict-mode) header
/// section may start with, lower-case, including the colon.
const CANDIDATES: [&[u8]; 2] = [b"content-length:", b"content-type:"];

/// How the decoder treats bytes that are not a well-formed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Editor side: malformed headers are errors (then resync).
    Strict,
    /// Language-server side: junk is skipped and reported.
    Lenient,
}

/// One decoded item.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message body (the raw bytes the peer sent).
    Message(Bytes),
    /// Lenient mode: bytes skipped because they were not part of a valid
    /// header section. Log them as a warning.
    Junk(Bytes),
    /// A recoverable framing error (malformed header, oversize body). The
    /// codec has already resynchronised or is discarding; keep reading.
    Invalid(FramingError),
}

/// Framing errors. Inside [`Frame::Invalid`] they are recoverable; as the
/// decoder's `Err` they end the stream.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The header section did not end within [`MAX_HEADER_BYTES`].
    #[error("message header section exceeds the {limit}-byte limit")]
    HeaderTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `Content-Length` above the configured cap.
    #[error("message body of {size} bytes exceeds the {max}-byte limit")]
    BodyTooLarge {
        /// The announced body size.
        size: u64,
        /// The configured cap.
        max: usize,
    },
    /// A header line that is not `Name: value` (or, in lenient mode, a
    /// header other than `Content-Length`/`Content-Type`).
    #[error("malformed message header: {0}")]
    MalformedHeader(String),
    /// The header section ended without a `Content-Length`.
    #[error("message header has no Content-Length")]
    MissingContentLength,
    /// `Content-Length` is not a decimal number (or appears twice with
    /// different values).
    #[error("invalid Content-Length {0:?}")]
    InvalidContentLength(String),
    /// The stream ended inside a header section.
    #[error("stream ended inside a message header ({got} header bytes received)")]
    TruncatedHeader {
        /// Bytes of header received.
        got: usize,
    },
    /// The stream ended inside a body.
    #[error("stream ended inside a message body ({got} of {expected} bytes received)")]
    TruncatedBody {
        /// The announced body size.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// Transport error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl PartialEq for FramingError {
    fn eq(&self, other: &Self) -> bool {
        use FramingError::*;
        match (self, other) {
            (HeaderTooLarge { limit: a }, HeaderTooLarge { limit: b }) => a == b,
            (BodyTooLarge { size: a, max: m }, BodyTooLarge { size: b, max: n }) => {
                a == b && m == n
            }
            (MalformedHeader(a), MalformedHeader(b)) => a == b,
            (MissingContentLength, MissingContentLength) => true,
            (InvalidContentLength(a), InvalidContentLength(b)) => a == b,
            (TruncatedHeader { got: a }, TruncatedHeader { got: b }) => a == b,
            (
                TruncatedBody {
                    expected: a,
                    got: x,
                },
                TruncatedBody {
                    expected: b,
                    got: y,
                },
            ) => a == b && x == y,
            (Io(a), Io(b)) => a.kind() == b.kind(),
            _ => false,
        }
    }
}

impl Eq for FramingError {}

#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    Body { len: usize },
    Discard { remaining: u64 },
}

/// The LSP base-protocol codec.
#[derive(Clone, Debug)]
pub struct LspCodec {
    mode: Mode,
    max_body: usize,
    state: State,
    /// Strict mode, after an error: drop bytes until a header candidate.
    resyncing: bool,
    junk_events: u64,
    junk_bytes: u64,
    skipped_bytes: u64,
}

impl LspCodec {
    /// A codec in the given mode with the default body cap.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            max_body: DEFAULT_MAX_BODY,
            state: State::Head,
            resyncing: false,
            junk_events: 0,
            junk_bytes: 0,
            skipped_bytes: 0,
        }
    }

    /// Editor side: [`Mode::Strict`].
    pub fn strict() -> Self {
        Self::new(Mode::Strict)
    }

    /// Language-server side: [`Mode::Lenient`].
    pub fn lenient() -> Self {
        Self::new(Mode::Lenient)
    }

    /// Sets the body cap.
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The body cap.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Number of [`Frame::Junk`] items produced so far.
    pub fn junk_events(&self) -> u64 {
        self.junk_events
    }

    /// Total bytes handed out as [`Frame::Junk`].
    pub fn junk_bytes(&self) -> u64 {
        self.junk_bytes
    }

    /// Strict mode: bytes dropped while resynchronising after an error, plus
    /// bodies discarded for being over the cap (both modes).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    fn junk(&mut self, bytes: Bytes) -> Frame {
        self.junk_events += 1;
        self.junk_bytes += bytes.len() as u64;
        Frame::Junk(bytes)
    }

    fn skip(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.skipped_bytes += n as u64;
    }

    /// Header state: find and parse a header section at the front of `buf`.
    /// Returns `Ok(None)` when more data is needed *or* when the state has
    /// moved on and the caller should loop.
    fn decode_head(&mut self, buf: &mut BytesMut) -> Step {
        // Stray line breaks between messages are harmless; drop them.
        let crlf = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        buf.advance(crlf);
        if buf.is_empty() {
            return Step::NeedMore;
        }

        let must_start_at_candidate = self.mode == Mode::Lenient || self.resyncing;
        let mut skip_from = 0;
        if !must_start_at_candidate || starts_with_candidate(buf) {
            match parse_head(buf, self.mode) {
                Head::Incomplete => return Step::NeedMore,
                Head::Complete {
                    header_len,
                    content_length,
                } => {
                    buf.advance(header_len);
                    self.resyncing = false;
                    return match usize::try_from(content_length) {
                        Ok(len) if len <= self.max_body => {
                            self.state = State::Body { len };
                            Step::Continue
                        }
                        _ => {
                            self.state = State::Discard {
                                remaining: content_length,
                            };
                            Step::Item(Frame::Invalid(FramingError::BodyTooLarge {
                                size: content_length,
                                max: self.max_body,
                            }))
                        }
                    };
                }
                Head::Invalid(err) => match self.mode {
                    Mode::Strict => {
                        // Report once, then drop bytes until the next header.
                        self.skip(buf, 1);
                        self.resyncing = true;
                        return Step::Item(Frame::Invalid(err));
                    }
                    Mode::Lenient => skip_from = 1,
                },
            }
        }

        // Skip bytes up to the next header candidate.
        let (end, found) = match find_candidate(buf, skip_from) {
            Some(pos) => (pos, true),
            None => {
                let keep = partial_candidate_suffix(buf);
                (buf.len().saturating_sub(keep).max(skip_from), false)
            }
        };
        match self.mode {
            Mode::Strict => {
                self.skip(buf, end);
                if found {
                    Step::Continue
                } else {
                    Step::NeedMore
                }
            }
            Mode::Lenient => {
                // Group junk into lines so a banner is one warning, not one
                // per read: emit when we know where it ends, at a newline,
                // or when it gets large.
                let region = buf.get(..end).unwrap_or_default();
                let emit = if found || skip_from > 0 || end >= MAX_HEADER_BYTES {
                    end
                } else {
                    region
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |p| p + 1)
                };
                if emit == 0 {
                    return Step::NeedMore;
                }
                let bytes = buf.split_to(emit).freeze();
                Step::Item(self.junk(bytes))
            }
        }
    }
}

impl Default for LspCodec {
    fn default() -> Self {
        Self::strict()
    }
}

enum Step {
    NeedMore,
    Continue,
    Item(Frame),
}

impl Decoder for LspCodec {
    type Item = Frame;
    type Error = FramingError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        loop {
            match self.state {
                State::Head => match self.decode_head(buf) {
                    Step::NeedMore => return Ok(None),
                    Step::Continue => continue,
                    Step::Item(frame) => return Ok(Some(frame)),
                },
                State::Body { len } => {
                    if buf.len() < len {
                        buf.reserve(len - buf.len());
                        return Ok(None);
                    }
                    let body = buf.split_to(len).freeze();
                    self.state = State::Head;
                    return Ok(Some(Frame::Message(body)));
                }
                State::Discard { remaining } => {
                    let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    self.skip(buf, n);
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        self.state = State::Head;
                    } else {
                        self.state = State::Discard { remaining };
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match self.state {
            State::Body { len } => {
                let got = buf.len();
                buf.clear();
                self.state = State::Head;
                Err(FramingError::TruncatedBody { expected: len, got })
            }
            State::Discard { .. } => {
                // Already reported as BodyTooLarge.
                let n = buf.len();
                self.skip(buf, n);
                self.state = State::Head;
                Ok(None)
            }
            State::Head => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let got = buf.len();
                if self.mode == Mode::Lenient && !starts_with_candidate(buf) {
                    let bytes = buf.split_to(got).freeze();
                    return Ok(Some(self.junk(bytes)));
                }
                if self.resyncing && !starts_with_candidate(buf) {
                    self.skip(buf, got);
                    return Ok(None);
                }
                buf.clear();
                Err(FramingError::TruncatedHeader { got })
            }
        }
    }
}

fn write_frame(body: &[u8], dst: &mut BytesMut) {
    let header = format!("Content-Length: {}\r\n\r\n", body.len());
    dst.reserve(header.len() + body.len());
    dst.put_slice(header.as_bytes());
    dst.put_slice(body);
}

impl Encoder<Bytes> for LspCodec {
    type Error = FramingError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        write_frame(&body, dst);
        Ok(())
    }
}

impl Encoder<&[u8]> for LspCodec {
    type Error = FramingError;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), FramingError> {
        write_frame(body, dst);
        Ok(())
    }
}

impl Encoder<Vec<u8>> for LspCodec {
    type Error = FramingError;

    fn encode(&mut self, body: Vec<u8>, dst: &mut BytesMut) -> Result<(), FramingError> {
        write_frame(&body, dst);
        Ok(())
    }
}

/// Frames one body: `Content-Length: N\r\n\r\n` followed by the body.
///
/// ```
/// assert_eq!(distant_bridge::framing::frame(b"{}"), b"Content-Length: 2\r\n\r\n{}");
/// ```
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

enum Head {
    Incomplete,
    Complete {
        header_len: usize,
        content_length: u64,
    },
    Invalid(FramingError),
}

/// Parses a header section at the start of `buf`, line by line, so a bad
/// line is rejected as soon as it is complete.
fn parse_head(buf: &[u8], mode: Mode) -> Head {
    let mut pos = 0;
    let mut content_length: Option<u64> = None;
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            if buf.len() > MAX_HEADER_BYTES {
                return Head::Invalid(FramingError::HeaderTooLarge {
                    limit: MAX_HEADER_BYTES,
                });
            }
            return Head::Incomplete;
        };
        let next = pos + nl + 1;
        if next > MAX_HEADER_BYTES {
            return Head::Invalid(FramingError::HeaderTooLarge {
                limit: MAX_HEADER_BYTES,
            });
        }
        let raw = rest.get(..nl).unwrap_or_default();
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            return match content_length {
                Some(n) => Head::Complete {
                    header_len: next,
                    content_length: n,
                },
                None => Head::Invalid(FramingError::MissingContentLength),
            };
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Head::Invalid(FramingError::MalformedHeader(format!(
                "not a `Name: value` line: {:?}",
                String::from_utf8_lossy(truncate(line))
            )));
        };
        let (name, value) = line.split_at(colon);
        let value = trim(value.get(1..).unwrap_or_default());
        if name.is_empty() || !name.iter().all(|b| is_token_byte(*b)) {
            return Head::Invalid(FramingError::MalformedHeader(format!(
                "bad header name {:?}",
                String::from_utf8_lossy(truncate(name))
            )));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_decimal(value) else {
                return Head::Invalid(FramingError::InvalidContentLength(
                    String::from_utf8_lossy(truncate(value)).into_owned(),
                ));
            };
            if content_length.is_some_and(|old| old != n) {
                return Head::Invalid(FramingError::InvalidContentLength(format!(
                    "conflicting values {} and {n}",
                    content_length.unwrap_or_default()
                )));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            // Accepted and ignored; bodies are always UTF-8 JSON.
        } else if mode == Mode::Lenient {
            return Head::Invalid(FramingError::MalformedHeader(format!(
                "unexpected header {:?}",
                String::from_utf8_lossy(truncate(name))
            )));
        }
        pos = next;
    }
}

fn truncate(s: &[u8]) -> &[u8] {
    s.get(..80).unwrap_or(s)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, b| {
        let d = u64::from(b.checked_sub(b'0').filter(|d| *d <= 9)?);
        acc.checked_mul(10)?.checked_add(d)
    })
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn starts_with_candidate(buf: &[u8]) -> bool {
    CANDIDATES.iter().any(|c| {
        buf.get(..c.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(c))
    })
}

/// Position of the first header candidate at or after `from`.
fn find_candidate(buf: &[u8], from: usize) -> Option<usize> {
    let hay = buf.get(from..)?;
    hay.iter()
        .enumerate()
        .filter(|(_, b)| b.eq_ignore_ascii_case(&b'c'))
        .find(|(i, _)| hay.get(*i..).is_some_and(starts_with_candidate))
        .map(|(i, _)| from + i)
}

/// Length of the longest proper suffix of `buf` that could grow into a
/// header candidate (so it must be kept until more data arrives).
fn partial_candidate_suffix(buf: &[u8]) -> usize {
    let longest = CANDIDATES.iter().map(|c| c.len()).max().unwrap_or(0);
    (1..longest.min(buf.len() + 1))
        .rev()
        .find(|k| {
            let tail = buf.get(buf.len() - k..).unwrap_or_default();
            CANDIDATES.iter().any(|c| {
                c.get(..*k)
                    .is_some_and(|prefix| prefix.eq_ignore_ascii_case(tail))
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
