//! Length-prefixed frames with a hard size cap (PROTOCOL.md §1).
//!
//! Everything on a distant byte stream is `u32 length || body[length]`
//! (big-endian length, counting only the body). This module owns that
//! framing and nothing else: [`FrameCodec`] splits a byte stream into frame
//! bodies and [`encode_frame`] writes one. The cap is checked on the length
//! prefix *before* anything is reserved, so a hostile length costs nothing;
//! the cap is raised by the caller once authentication completes
//! ([`MAX_FRAME_PREAUTH`] → [`MAX_FRAME`]).

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::Decoder;

/// Largest frame body accepted before authentication completes (phases 1–2).
pub const MAX_FRAME_PREAUTH: usize = 64 * 1024;

/// Largest frame body accepted after authentication (phase 3): the largest
/// record content plus room for the record flags byte and the AEAD tag.
pub const MAX_FRAME: usize = 16 * 1024 * 1024 + 1024;

/// Largest plaintext content of one sealed record after authentication.
/// Larger payloads are streamed as several records.
pub const MAX_RECORD_CONTENT: usize = 16 * 1024 * 1024;

/// Size of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the current cap. The
    /// connection must be closed: the stream cannot be resynchronised.
    #[error("frame too large: {len} bytes announced, at most {max} allowed")]
    TooLarge { len: usize, max: usize },
    /// The stream ended inside a frame.
    #[error("truncated frame: the stream ended with {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frame bodies (without the length prefix).
///
/// Implements [`tokio_util::codec::Decoder`]; it never reserves more than
/// `LENGTH_PREFIX + max_len` bytes in the read buffer, and it checks the
/// announced length against the cap before reserving anything.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
}

impl FrameCodec {
    /// A codec accepting bodies of at most `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    /// Changes the cap (e.g. to [`MAX_FRAME`] once authenticated). Applies
    /// to the next length prefix read.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// The cap in force.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Reads the announced body length, if the prefix is complete.
    fn peek_len(src: &[u8]) -> Option<usize> {
        let prefix: [u8; LENGTH_PREFIX] = src.get(..LENGTH_PREFIX)?.try_into().ok()?;
        // u32 always fits in usize on the 32/64-bit targets we support.
        Some(u32::from_be_bytes(prefix) as usize)
    }
}

impl Default for FrameCodec {
    /// A codec with the pre-authentication cap.
    fn default() -> Self {
        Self::new(MAX_FRAME_PREAUTH)
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(len) = Self::peek_len(src) else {
            return Ok(None);
        };
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        let need = LENGTH_PREFIX + len;
        if src.len() < need {
            // Bounded by the cap checked above.
            src.reserve(need - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let need = Self::peek_len(src).map_or(LENGTH_PREFIX, |len| LENGTH_PREFIX + len);
                Err(FrameError::Truncated {
                    have: src.len(),
                    need,
                })
            }
        }
    }
}

/// Appends `u32 length || body` to `dst`.
///
/// Fails with [`FrameError::TooLarge`] if `body` exceeds [`MAX_FRAME`]
/// (no peer would accept it).
pub fn encode_frame(body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let len = frame_len_prefix(body.len())?;
    dst.reserve(LENGTH_PREFIX + body.len());
    dst.put_u32(len);
    dst.extend_from_slice(body);
    Ok(())
}

/// Validates a body length against [`MAX_FRAME`] and returns it as the
/// wire's `u32`.
pub(crate) fn frame_len_prefix(len: usize) -> Result<u32, FrameError> {
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    u32::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: MAX_FRAME,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefix() {
        let mut dst = BytesMut::new();
        encode_frame(b"abc", &mut dst).unwrap();
        assert_eq!(&dst[..], b"\x00\x00\x00\x03abc");
    }
}
