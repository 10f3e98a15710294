//! Authentication and resumption: the secret and id types, the phase-2
//! messages, and the proofs of the `static_key` method and of resumption
//! (PROTOCOL.md §3).
//!
//! Nothing secret ever crosses the wire: a side proves it knows the static
//! key `K` (or the session's one-time password) with an HMAC over the
//! connection's transcript hash `th`, which is fresh on every connection,
//! so a proof is worthless anywhere else. Secrets zeroize on drop, print as
//! `<redacted>` and are compared in constant time.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::TranscriptHash;

/// Length of a proof (HMAC-SHA-256 output).
pub const PROOF_LEN: usize = 32;

/// A proof: an HMAC-SHA-256 tag sent on the wire.
pub type Proof = [u8; PROOF_LEN];

const LABEL_STATIC_CLIENT: &[u8] = b"distant/1 static_key client";
const LABEL_STATIC_SERVER: &[u8] = b"distant/1 static_key server";
const LABEL_RESUME_CLIENT: &[u8] = b"distant/1 resume client";
const LABEL_RESUME_SERVER: &[u8] = b"distant/1 resume server";
const LABEL_OTP_NEXT: &[u8] = b"distant/1 otp next";

fn hmac(key: &[u8; 32], label: &[u8], th: &TranscriptHash) -> Proof {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(label);
    mac.update(th.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of a received proof with the expected one.
/// A proof of the wrong length is simply unequal.
pub fn proof_eq(received: &[u8], expected: &Proof) -> bool {
    received.len() == PROOF_LEN && bool::from(received.ct_eq(expected.as_slice()))
}

/// Why a static key could not be parsed. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a static key is 64 hexadecimal digits; got {0} characters")]
    Length(usize),
    #[error("a static key is 64 hexadecimal digits; found a character that is not 0-9 or a-f")]
    NotHex,
}

/// The shared static key `K` of the `static_key` method: 32 random bytes,
/// shown to users as 64 hex digits.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StaticKey([u8; 32]);

impl StaticKey {
    /// A fresh random key.
    pub fn generate(rng: &mut (impl CryptoRng + RngCore)) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits (surrounding whitespace ignored). The error
    /// never echoes the input.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if s.len() != 64 {
            return Err(KeyError::Length(s.chars().count()));
        }
        let mut k = [0u8; 32];
        if hex::decode_to_slice(s, &mut k).is_err() {
            k.zeroize();
            return Err(KeyError::NotHex);
        }
        Ok(Self(k))
    }

    /// The 64 lowercase hex digits, in a string that zeroizes on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `HMAC(K, "distant/1 static_key client" || th)`: the client's answer.
    pub fn client_proof(&self, th: &TranscriptHash) -> Proof {
        hmac(&self.0, LABEL_STATIC_CLIENT, th)
    }

    /// `HMAC(K, "distant/1 static_key server" || th)`: the server's proof in
    /// `Success`.
    pub fn server_proof(&self, th: &TranscriptHash) -> Proof {
        hmac(&self.0, LABEL_STATIC_SERVER, th)
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticKey(<redacted>)")
    }
}

impl PartialEq for StaticKey {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for StaticKey {}

/// A session's one-time password, used once to resume it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Otp([u8; 32]);

impl Otp {
    /// Wraps raw bytes (e.g. `otp_0` from the key schedule, or a stored OTP).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A random OTP (tests, placeholders).
    pub fn random(rng: &mut (impl CryptoRng + RngCore)) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    /// The raw bytes (for persisting in a keychain).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `HMAC(otp, "distant/1 resume client" || th)`.
    pub fn resume_client_proof(&self, th: &TranscriptHash) -> Proof {
        hmac(&self.0, LABEL_RESUME_CLIENT, th)
    }

    /// `HMAC(otp, "distant/1 resume server" || th)`.
    pub fn resume_server_proof(&self, th: &TranscriptHash) -> Proof {
        hmac(&self.0, LABEL_RESUME_SERVER, th)
    }

    /// The rotated OTP: `HMAC(otp, "distant/1 otp next" || th)`.
    pub fn next(&self, th: &TranscriptHash) -> Otp {
        Otp(hmac(&self.0, LABEL_OTP_NEXT, th))
    }
}

impl fmt::Debug for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Otp(<redacted>)")
    }
}

impl PartialEq for Otp {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Otp {}

/// A session's identifier, chosen by the server. Displays as 32 lowercase
/// hex digits. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct SessionId(#[serde(with = "serde_bytes")] pub [u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random(rng: &mut (impl CryptoRng + RngCore)) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut id).ok()?;
        Some(Self(id))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Mutual proof of a shared 32-byte key (§3.1).
    StaticKey,
    /// No authentication (only the manager's private Unix socket).
    None,
}

impl AuthMethod {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::StaticKey => "static_key",
            Self::None => "none",
        }
    }

    /// Parses a wire name; unknown names (a newer peer's methods) are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "static_key" => Some(Self::StaticKey),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One question of a `Challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub label: String,
    pub text: String,
}

/// The phase-2 messages (PROTOCOL.md §3), carried as `msgpack` in sealed
/// records. Method names are strings so that a peer's unknown methods
/// decode (and are skipped) instead of failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMessage {
    /// S→C: the methods the server supports.
    Methods { methods: Vec<String> },
    /// C→S: the subset to try, in order.
    Select { methods: Vec<String> },
    /// S→C: the server starts a method.
    Start { method: String },
    /// S→C: questions for the client.
    Challenge {
        method: String,
        questions: Vec<Question>,
    },
    /// C→S: one answer per question.
    Answers { answers: Vec<ByteBuf> },
    /// S→C: asks the client to confirm something.
    Verify { kind: String, text: String },
    /// C→S: the client's confirmation.
    Verified { valid: bool },
    /// S→C: informational text for a person.
    Info { text: String },
    /// S→C: a method failed; `fatal` = no method left, the server closes.
    Error { fatal: bool, text: String },
    /// S→C: authenticated.
    Success {
        session_id: SessionId,
        proof: Option<ByteBuf>,
    },
    /// C→S: resume proofs, most recent OTP first.
    Resume { proofs: Vec<ByteBuf>, received: u64 },
    /// S→C: resumed.
    Resumed {
        proof: ByteBuf,
        matched: u8,
        received: u64,
    },
}

impl AuthMessage {
    /// The variant name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Methods { .. } => "Methods",
            Self::Select { .. } => "Select",
            Self::Start { .. } => "Start",
            Self::Challenge { .. } => "Challenge",
            Self::Answers { .. } => "Answers",
            Self::Verify { .. } => "Verify",
            Self::Verified { .. } => "Verified",
            Self::Info { .. } => "Info",
            Self::Error { .. } => "Error",
            Self::Success { .. } => "Success",
            Self::Resume { .. } => "Resume",
            Self::Resumed { .. } => "Resumed",
        }
    }

    /// `msgpack` encoding (named fields).
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising these plain types into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes `msgpack`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

/// The single question of the `static_key` challenge.
pub fn static_key_question() -> Question {
    Question {
        label: "proof".into(),
        text: "static key proof".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hex_round_trip_and_redaction() {
        let k = StaticKey::from_bytes([0xab; 32]);
        let hex = k.to_hex();
        assert_eq!(hex.as_str(), "ab".repeat(32));
        assert_eq!(StaticKey::from_hex(&hex).unwrap(), k);
        assert_eq!(format!("{k:?}"), "StaticKey(<redacted>)");
        assert_eq!(format!("{:?}", Otp::from_bytes([1; 32])), "Otp(<redacted>)");
        let bad = "zz".repeat(32);
        let e = StaticKey::from_hex(&bad).unwrap_err().to_string();
        assert!(!e.contains("zz"), "{e}");
        assert_eq!(StaticKey::from_hex("abc"), Err(KeyError::Length(3)));
    }

    #[test]
    fn session_id_display() {
        let id = SessionId([0x0f; 16]);
        assert_eq!(id.to_string(), "0f".repeat(16));
        assert_eq!(SessionId::from_hex(&id.to_string()), Some(id));
    }

    #[test]
    fn message_wire_shape() {
        let m = AuthMessage::Error {
            fatal: true,
            text: "no".into(),
        };
        let v = m.to_vec();
        // {"Error": {"fatal": true, "text": "no"}}
        assert_eq!(v[0], 0x81);
        assert_eq!(AuthMessage::from_slice(&v).unwrap(), m);
        let s = AuthMessage::Success {
            session_id: SessionId([7; 16]),
            proof: None,
        };
        assert_eq!(AuthMessage::from_slice(&s.to_vec()).unwrap(), s);
    }
}
