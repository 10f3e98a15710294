//! The key schedule and the sealed-record codec (PROTOCOL.md §2.2–§2.3).
//!
//! [`KeySchedule::derive`] turns the ECDH secret, both salts and the
//! transcript hash into per-direction keys and IVs (plus `otp_0`).
//! A [`Sealer`] (one direction, sending) compresses per §2.3, seals a
//! record with XChaCha20-Poly1305 under the implicit nonce
//! `iv || u64 counter` and appends the whole frame to the caller's buffer;
//! an [`Opener`] (the other direction, receiving) opens a frame body in
//! place. Because the nonce is implicit and the keys differ per direction,
//! a replayed, reordered, dropped or reflected record fails to open.
//!
//! The uncompressed path does one copy on sealing (the caller's parts into
//! the output frame) and none on opening.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::auth::Otp;
use crate::compress::{self, Compression, CompressionAlgorithm, DecompressError};
use crate::frame::{self, LENGTH_PREFIX, MAX_FRAME_PREAUTH, MAX_RECORD_CONTENT};

/// Length of the Poly1305 tag appended to each sealed record.
pub const TAG_LEN: usize = 16;
/// Length of the record flags byte.
pub const FLAGS_LEN: usize = 1;
/// Flags bit 0: the content is compressed.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Largest record content during the handshake and authentication, so that
/// a sealed record fits in [`MAX_FRAME_PREAUTH`].
pub const MAX_PREAUTH_CONTENT: usize = MAX_FRAME_PREAUTH - FLAGS_LEN - TAG_LEN;

const TRANSCRIPT_LABEL: &[u8] = b"distant/1 transcript";

/// The record protection negotiated in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// XChaCha20-Poly1305 with implicit counter nonces.
    XChaCha20Poly1305,
    /// No protection at all (the manager's private Unix socket only).
    None,
}

impl Encryption {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::XChaCha20Poly1305 => "xchacha20poly1305",
            Self::None => "none",
        }
    }

    /// Parses a wire name; unknown names are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "xchacha20poly1305" => Some(Self::XChaCha20Poly1305),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Bytes a sealed record adds to its content (flags + tag).
    pub fn overhead(self) -> usize {
        match self {
            Self::XChaCha20Poly1305 => FLAGS_LEN + TAG_LEN,
            Self::None => FLAGS_LEN,
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a record could not be sealed or opened. Never contains key material.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, wrong counter (replayed, reordered, dropped, reflected)
    /// or a modified byte.
    #[error("record failed authentication")]
    RecordAuthentication,
    /// Inflating the content would exceed the phase's maximum or the ratio
    /// bound.
    #[error("decompression limit exceeded: {0}")]
    DecompressionLimit(String),
    /// The record is structurally invalid (too short, unknown flags,
    /// corrupt compressed data).
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The content exceeds the phase's maximum record content.
    #[error("record content too large: {len} bytes, at most {max} allowed")]
    ContentTooLarge { len: usize, max: usize },
    /// 2^64 records have been sealed or opened in this direction; the
    /// connection must be re-established.
    #[error("record counter exhausted; reconnect to derive fresh keys")]
    CounterExhausted,
    /// The peer's ephemeral public key is not a valid P-256 point.
    #[error("invalid peer public key: not a SEC1 P-256 point")]
    InvalidPublicKey,
}

/// `th`, the SHA-256 of the handshake transcript (§2.2). Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TranscriptHash(pub [u8; 32]);

impl TranscriptHash {
    /// `H("distant/1 transcript" || u32 len(offer) || offer || u32 len(choice) || choice)`
    /// over the complete plaintext frame bodies as sent.
    pub fn compute(offer_body: &[u8], choice_body: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(TRANSCRIPT_LABEL);
        for part in [offer_body, choice_body] {
            // Bodies are bounded by MAX_FRAME_PREAUTH, far below u32::MAX.
            h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TranscriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TranscriptHash({})", hex::encode(self.0))
    }
}

/// Length of a SEC1 uncompressed P-256 point.
pub const PUBLIC_KEY_LEN: usize = 65;

/// An ephemeral P-256 key pair for one handshake. The secret zeroizes on
/// drop and is consumed by [`KeyExchange::agree`].
pub struct KeyExchange(p256::ecdh::EphemeralSecret);

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyExchange(<redacted>)")
    }
}

impl KeyExchange {
    /// A fresh ephemeral key pair.
    pub fn generate(rng: &mut (impl rand::CryptoRng + rand::RngCore)) -> Self {
        Self(p256::ecdh::EphemeralSecret::random(rng))
    }

    /// Our public key, SEC1 uncompressed (65 bytes, starting with 0x04).
    pub fn public_key(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        self.0
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// ECDH with the peer's SEC1 uncompressed public key: the shared
    /// x-coordinate `z`. Rejects anything but a valid, uncompressed,
    /// non-identity point.
    pub fn agree(&self, peer_public: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, CryptoError> {
        if peer_public.len() != PUBLIC_KEY_LEN || peer_public.first() != Some(&0x04) {
            return Err(CryptoError::InvalidPublicKey);
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer_public)
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        let shared = self.0.diffie_hellman(&peer);
        let mut z = zeroize::Zeroizing::new([0u8; 32]);
        z.copy_from_slice(shared.raw_secret_bytes().as_slice());
        Ok(z)
    }
}

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// Key and IV of one direction. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DirectionKeys {
    key: [u8; 32],
    iv: [u8; 16],
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectionKeys(<redacted>)")
    }
}

/// The output of the key schedule (§2.2). Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeySchedule {
    c2s: DirectionKeys,
    s2c: DirectionKeys,
    otp_0: [u8; 32],
    #[zeroize(skip)]
    th: TranscriptHash,
}

impl fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySchedule(<redacted>)")
    }
}

impl KeySchedule {
    /// Derives every connection secret from the ECDH shared secret `z`.
    pub fn derive(z: &[u8], server_salt: &[u8], client_salt: &[u8], th: TranscriptHash) -> Self {
        let mut salt = Vec::with_capacity(server_salt.len() + client_salt.len());
        salt.extend_from_slice(server_salt);
        salt.extend_from_slice(client_salt);
        let hk = Hkdf::<Sha256>::new(Some(&salt), z);
        let expand = |label: &[u8], out: &mut [u8]| {
            let mut info = Vec::with_capacity(label.len() + 32);
            info.extend_from_slice(label);
            info.extend_from_slice(th.as_bytes());
            // Output lengths (16/32) are far below HKDF's 255 × 32 limit.
            let _ = hk.expand(&info, out);
        };
        let mut ks = KeySchedule {
            c2s: DirectionKeys {
                key: [0; 32],
                iv: [0; 16],
            },
            s2c: DirectionKeys {
                key: [0; 32],
                iv: [0; 16],
            },
            otp_0: [0; 32],
            th,
        };
        expand(b"distant/1 c2s key", &mut ks.c2s.key);
        expand(b"distant/1 s2c key", &mut ks.s2c.key);
        expand(b"distant/1 c2s iv", &mut ks.c2s.iv);
        expand(b"distant/1 s2c iv", &mut ks.s2c.iv);
        expand(b"distant/1 otp", &mut ks.otp_0);
        ks
    }

    /// The transcript hash these keys are bound to.
    pub fn transcript_hash(&self) -> &TranscriptHash {
        &self.th
    }

    /// `otp_0`, the session's first one-time password.
    pub fn otp_0(&self) -> Otp {
        Otp::from_bytes(self.otp_0)
    }

    fn sending(&self, side: Side) -> &DirectionKeys {
        match side {
            Side::Client => &self.c2s,
            Side::Server => &self.s2c,
        }
    }

    fn receiving(&self, side: Side) -> &DirectionKeys {
        match side {
            Side::Client => &self.s2c,
            Side::Server => &self.c2s,
        }
    }

    /// The sealer for what `side` sends. Its content cap starts at
    /// [`MAX_PREAUTH_CONTENT`].
    pub fn sealer(&self, side: Side, encryption: Encryption, compression: Compression) -> Sealer {
        Sealer {
            cipher: RecordCipher::new(self.sending(side), encryption),
            compression,
            max_content: MAX_PREAUTH_CONTENT,
            scratch: Vec::new(),
        }
    }

    /// The opener for what `side` receives. `algorithm` is the negotiated
    /// compression (the one flagged records are inflated with). Its content
    /// cap starts at [`MAX_PREAUTH_CONTENT`].
    pub fn opener(
        &self,
        side: Side,
        encryption: Encryption,
        algorithm: CompressionAlgorithm,
    ) -> Opener {
        Opener {
            cipher: RecordCipher::new(self.receiving(side), encryption),
            algorithm,
            max_content: MAX_PREAUTH_CONTENT,
        }
    }
}

/// Cipher + IV + counter for one direction.
struct RecordCipher {
    /// `None` for [`Encryption::None`]. The cipher zeroizes its key on drop.
    aead: Option<XChaCha20Poly1305>,
    iv: [u8; 16],
    /// Counter of the next record; `None` once 2^64 records were processed.
    counter: Option<u64>,
}

impl Drop for RecordCipher {
    fn drop(&mut self) {
        self.iv.zeroize();
    }
}

impl RecordCipher {
    fn new(keys: &DirectionKeys, encryption: Encryption) -> Self {
        let aead = match encryption {
            Encryption::XChaCha20Poly1305 => Some(XChaCha20Poly1305::new(&keys.key.into())),
            Encryption::None => None,
        };
        Self {
            aead,
            iv: keys.iv,
            counter: Some(0),
        }
    }

    fn encryption(&self) -> Encryption {
        if self.aead.is_some() {
            Encryption::XChaCha20Poly1305
        } else {
            Encryption::None
        }
    }

    fn nonce(&self, n: u64) -> XNonce {
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.iv);
        nonce[16..].copy_from_slice(&n.to_be_bytes());
        nonce.into()
    }

    fn current(&self) -> Result<u64, CryptoError> {
        self.counter.ok_or(CryptoError::CounterExhausted)
    }

    fn advance(&mut self, n: u64) {
        self.counter = n.checked_add(1);
    }
}

/// Seals the records of one direction.
pub struct Sealer {
    cipher: RecordCipher,
    compression: Compression,
    max_content: usize,
    /// Reused buffer for compressed contents.
    scratch: Vec<u8>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("encryption", &self.cipher.encryption())
            .field("compression", &self.compression)
            .field("counter", &self.cipher.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Appends one complete frame (u32 length + sealed body) to `dst`;
    /// `parts` are concatenated to form the record content (lets callers
    /// avoid copying a header + payload). Compression per PROTOCOL §2.3
    /// happens here. On error nothing is appended and the counter does not
    /// move.
    pub fn seal_into(&mut self, parts: &[&[u8]], dst: &mut BytesMut) -> Result<(), CryptoError> {
        let n = self.cipher.current()?;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > self.max_content {
            return Err(CryptoError::ContentTooLarge {
                len: total,
                max: self.max_content,
            });
        }

        let mut flags = 0u8;
        let mut compressed = false;
        if self.compression.algorithm != CompressionAlgorithm::None
            && total >= compress::COMPRESS_THRESHOLD
        {
            self.scratch.clear();
            compress::compress_into(self.compression, parts, &mut self.scratch);
            if self.scratch.len() < total {
                flags |= FLAG_COMPRESSED;
                compressed = true;
            }
        }
        let content_len = if compressed {
            self.scratch.len()
        } else {
            total
        };
        let encryption = self.cipher.encryption();
        let body_len = content_len + encryption.overhead();
        let prefix =
            frame::frame_len_prefix(body_len).map_err(|_| CryptoError::ContentTooLarge {
                len: total,
                max: self.max_content,
            })?;

        dst.reserve(LENGTH_PREFIX + body_len);
        dst.put_u32(prefix);
        let start = dst.len();
        dst.put_u8(flags);
        if compressed {
            dst.extend_from_slice(&self.scratch);
        } else {
            for part in parts {
                dst.extend_from_slice(part);
            }
        }
        if let Some(aead) = &self.cipher.aead {
            let nonce = self.cipher.nonce(n);
            let plaintext = dst.get_mut(start..).unwrap_or_default();
            match aead.encrypt_in_place_detached(&nonce, b"", plaintext) {
                Ok(tag) => dst.extend_from_slice(&tag),
                Err(_) => {
                    // Only possible for a plaintext beyond 256 GiB.
                    dst.truncate(start - LENGTH_PREFIX);
                    return Err(CryptoError::ContentTooLarge {
                        len: total,
                        max: self.max_content,
                    });
                }
            }
        }
        self.cipher.advance(n);
        Ok(())
    }

    /// Sets the largest content accepted by [`Sealer::seal_into`]; clamped
    /// to [`MAX_RECORD_CONTENT`].
    pub fn set_max_content(&mut self, n: usize) {
        self.max_content = n.min(MAX_RECORD_CONTENT);
    }

    /// The largest content accepted now.
    pub fn max_content(&self) -> usize {
        self.max_content
    }

    /// Number of records sealed so far.
    pub fn counter(&self) -> Option<u64> {
        self.cipher.counter
    }

    /// Test hook: moves the counter (e.g. next to exhaustion).
    #[doc(hidden)]
    pub fn set_counter_for_test(&mut self, n: u64) {
        self.cipher.counter = Some(n);
    }
}

/// Opens the records of one direction.
pub struct Opener {
    cipher: RecordCipher,
    algorithm: CompressionAlgorithm,
    max_content: usize,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("encryption", &self.cipher.encryption())
            .field("compression", &self.algorithm)
            .field("counter", &self.cipher.counter)
            .field("max_content", &self.max_content)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// Opens one frame body in place (decrypt + bounded inflate) and returns
    /// the record content. On any error the counter does not move; the
    /// caller must close the connection.
    pub fn open(&mut self, mut body: BytesMut) -> Result<Bytes, CryptoError> {
        let n = self.cipher.current()?;
        let overhead = self.cipher.encryption().overhead();
        if body.len() < overhead {
            return Err(CryptoError::Malformed(format!(
                "a sealed record is at least {overhead} bytes, got {}",
                body.len()
            )));
        }
        if let Some(aead) = &self.cipher.aead {
            let tag_at = body.len() - TAG_LEN;
            let tag = Tag::clone_from_slice(body.get(tag_at..).unwrap_or_default());
            body.truncate(tag_at);
            let nonce = self.cipher.nonce(n);
            aead.decrypt_in_place_detached(&nonce, b"", &mut body, &tag)
                .map_err(|_| CryptoError::RecordAuthentication)?;
        }
        let flags = body.first().copied().unwrap_or(0);
        if flags & !FLAG_COMPRESSED != 0 {
            return Err(CryptoError::Malformed(format!(
                "unknown record flags {flags:#04x}"
            )));
        }
        body.advance(FLAGS_LEN);
        let content = if flags & FLAG_COMPRESSED != 0 {
            if self.algorithm == CompressionAlgorithm::None {
                return Err(CryptoError::Malformed(
                    "compressed record but no compression was negotiated".into(),
                ));
            }
            match compress::decompress(self.algorithm, &body, self.max_content) {
                Ok(v) => Bytes::from(v),
                Err(DecompressError::Limit { limit }) => {
                    return Err(CryptoError::DecompressionLimit(format!(
                        "{} compressed bytes inflate to more than {limit}",
                        body.len()
                    )))
                }
                Err(DecompressError::Corrupt(e)) => {
                    return Err(CryptoError::Malformed(format!(
                        "corrupt {} content: {e}",
                        self.algorithm
                    )))
                }
            }
        } else {
            if body.len() > self.max_content {
                return Err(CryptoError::ContentTooLarge {
                    len: body.len(),
                    max: self.max_content,
                });
            }
            body.freeze()
        };
        self.cipher.advance(n);
        Ok(content)
    }

    /// Phase limits: [`MAX_PREAUTH_CONTENT`] during authentication,
    /// [`MAX_RECORD_CONTENT`] after. Clamped to [`MAX_RECORD_CONTENT`].
    pub fn set_max_content(&mut self, n: usize) {
        self.max_content = n.min(MAX_RECORD_CONTENT);
    }

    /// The largest content accepted now.
    pub fn max_content(&self) -> usize {
        self.max_content
    }

    /// Number of records opened so far.
    pub fn counter(&self) -> Option<u64> {
        self.cipher.counter
    }

    /// Test hook: moves the counter (e.g. next to exhaustion).
    #[doc(hidden)]
    pub fn set_counter_for_test(&mut self, n: u64) {
        self.cipher.counter = Some(n);
    }
}

/// A matched [`Sealer`]/[`Opener`] pair for tests and benches: the client's
/// sealer and the server's opener of one fresh random key schedule.
#[doc(hidden)]
pub fn test_pair(
    seed: [u8; 32],
    encryption: Encryption,
    compression: Compression,
) -> (Sealer, Opener) {
    let ks = KeySchedule::derive(&seed, b"s", b"c", TranscriptHash([0; 32]));
    let mut sealer = ks.sealer(Side::Client, encryption, compression);
    let mut opener = ks.opener(Side::Server, encryption, compression.algorithm);
    sealer.set_max_content(MAX_RECORD_CONTENT);
    opener.set_max_content(MAX_RECORD_CONTENT);
    (sealer, opener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_small() {
        let (mut s, mut o) = test_pair(
            [1; 32],
            Encryption::XChaCha20Poly1305,
            Compression::default(),
        );
        let mut dst = BytesMut::new();
        s.seal_into(&[b"hello ", b"world"], &mut dst).unwrap();
        assert_eq!(dst.len(), 4 + 1 + 11 + 16);
        let body = dst.split_off(4);
        assert_eq!(&o.open(body).unwrap()[..], b"hello world");
    }
}
