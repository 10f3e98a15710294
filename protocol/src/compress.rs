//! Optional compression of record contents, with bounded inflation
//! (PROTOCOL.md §2.3).
//!
//! Contents are compressed *before* sealing (encrypted bytes do not
//! compress), only when at least [`COMPRESS_THRESHOLD`] bytes long and only
//! when the result is smaller. Inflation is bounded twice: by the phase's
//! maximum record content and by [`MAX_RATIO`] × the compressed size, so a
//! decompression bomb is an error, never an allocation.

use std::io::{Read, Write};

use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use serde::{Deserialize, Serialize};

/// Contents shorter than this are never compressed.
pub const COMPRESS_THRESHOLD: usize = 512;

/// Largest accepted inflation ratio (output / compressed input). DEFLATE
/// cannot exceed about 1 032:1, so only a hostile stream hits this.
pub const MAX_RATIO: usize = 1100;

/// A compression algorithm, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// No compression.
    #[default]
    None,
    /// Raw DEFLATE (RFC 1951).
    Deflate,
    /// gzip (RFC 1952).
    Gzip,
    /// zlib (RFC 1950).
    Zlib,
}

impl CompressionAlgorithm {
    /// Every algorithm, in the order a server offers them by default.
    pub const ALL: [CompressionAlgorithm; 4] = [Self::None, Self::Deflate, Self::Gzip, Self::Zlib];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Deflate => "deflate",
            Self::Gzip => "gzip",
            Self::Zlib => "zlib",
        }
    }
}

impl std::fmt::Display for CompressionAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The compression a client chooses: algorithm and level (0 = store,
/// 1 = fast … 9 = best). Default: none, level 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: CompressionAlgorithm,
    pub level: u8,
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            algorithm: CompressionAlgorithm::None,
            level: 1,
        }
    }
}

impl Compression {
    /// The fast level of `algorithm`.
    pub fn fast(algorithm: CompressionAlgorithm) -> Self {
        Self {
            algorithm,
            level: 1,
        }
    }
}

/// Inflation failed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The output would exceed `limit` bytes.
    #[error("decompression limit exceeded (more than {limit} bytes)")]
    Limit { limit: usize },
    /// The compressed stream is corrupt.
    #[error("corrupt compressed content: {0}")]
    Corrupt(std::io::Error),
}

/// Compresses the concatenation of `parts` into `out` (appending).
///
/// With [`CompressionAlgorithm::None`] this copies. Levels above 9 are
/// treated as 9.
pub fn compress_into(compression: Compression, parts: &[&[u8]], out: &mut Vec<u8>) {
    let level = flate2::Compression::new(u32::from(compression.level.min(9)));
    // Writing into a Vec cannot fail.
    fn write_all<W: Write>(mut w: W, parts: &[&[u8]]) -> W {
        for part in parts {
            let _ = w.write_all(part);
        }
        w
    }
    match compression.algorithm {
        CompressionAlgorithm::None => parts.iter().for_each(|p| out.extend_from_slice(p)),
        CompressionAlgorithm::Deflate => {
            let _ = write_all(DeflateEncoder::new(out, level), parts).finish();
        }
        CompressionAlgorithm::Gzip => {
            let _ = write_all(GzEncoder::new(out, level), parts).finish();
        }
        CompressionAlgorithm::Zlib => {
            let _ = write_all(ZlibEncoder::new(out, level), parts).finish();
        }
    }
}

/// Compresses a single buffer (convenience for tests and tools).
pub fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress_into(compression, &[data], &mut out);
    out
}

/// The output bound for `input_len` compressed bytes under a content cap.
pub fn inflate_limit(input_len: usize, max_content: usize) -> usize {
    max_content.min(input_len.saturating_mul(MAX_RATIO))
}

/// Inflates `input`, failing with [`DecompressError::Limit`] as soon as the
/// output would exceed [`inflate_limit`]`(input.len(), max_content)`.
/// Never allocates more than about twice that bound.
pub fn decompress(
    algorithm: CompressionAlgorithm,
    input: &[u8],
    max_content: usize,
) -> Result<Vec<u8>, DecompressError> {
    let limit = inflate_limit(input.len(), max_content);
    match algorithm {
        CompressionAlgorithm::None => {
            if input.len() > limit {
                return Err(DecompressError::Limit { limit });
            }
            Ok(input.to_vec())
        }
        CompressionAlgorithm::Deflate => read_bounded(DeflateDecoder::new(input), limit),
        CompressionAlgorithm::Gzip => read_bounded(GzDecoder::new(input), limit),
        CompressionAlgorithm::Zlib => read_bounded(ZlibDecoder::new(input), limit),
    }
}

fn read_bounded<R: Read>(reader: R, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly limit" from "more".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(DecompressError::Corrupt)?;
    if out.len() > limit {
        return Err(DecompressError::Limit { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        let v = rmp_serde::to_vec_named(&Compression::fast(CompressionAlgorithm::Gzip)).unwrap();
        let back: Compression = rmp_serde::from_slice(&v).unwrap();
        assert_eq!(back, Compression::fast(CompressionAlgorithm::Gzip));
        assert_eq!(CompressionAlgorithm::Zlib.to_string(), "zlib");
    }
}
