//! The phase-3 record codec (PROTOCOL.md §4): one type byte, then fields.
//!
//! Decoding never panics and never copies a Data payload: the payload is a
//! [`Bytes`] slice of the record content it came from.

use bytes::Bytes;

/// Type byte of a Data record: `0x01 || u64 seq || payload`.
pub const TYPE_DATA: u8 = 0x01;
/// Type byte of an Ack record: `0x02 || u64 received`.
pub const TYPE_ACK: u8 = 0x02;
/// Type byte of a Heartbeat record: `0x03 || u64 received`.
pub const TYPE_HEARTBEAT: u8 = 0x03;
/// Type byte of a Close record: `0x04 || UTF-8 reason`.
pub const TYPE_CLOSE: u8 = 0x04;

/// Length of a Data record's header (type byte and `u64 seq`), and of a
/// whole Ack or Heartbeat record.
pub const HEADER_LEN: usize = 9;

/// Largest record content after authentication (PROTOCOL.md §1: the frame
/// maximum is this plus sealing overhead). Mirrors
/// `frame::MAX_RECORD_CONTENT`, which the frame module owns; switch to it
/// once that module lands.
pub(crate) const MAX_RECORD_CONTENT: usize = 16 * 1024 * 1024;

/// Largest payload one Data record carries: the record content maximum
/// minus the 9-byte Data header. Larger application messages are chunked
/// by the layer above.
pub const MAX_DATA_PAYLOAD: usize = MAX_RECORD_CONTENT - HEADER_LEN;

/// One decoded session record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Application payload number `seq` of this direction.
    Data { seq: u64, payload: Bytes },
    /// Cumulative acknowledgement: the sender has received `received` data
    /// records (seq `0..received`).
    Ack { received: u64 },
    /// "Still here" after an idle second; carries `received` like an Ack.
    Heartbeat { received: u64 },
    /// The session ends for good.
    Close { reason: String },
}

/// Why a record content is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty session record")]
    Empty,
    #[error("unknown session record type 0x{0:02x}")]
    UnknownType(u8),
    #[error("{kind} record too short: {len} bytes, need {need}")]
    Short {
        kind: &'static str,
        len: usize,
        need: usize,
    },
    #[error("{kind} record too long: {len} bytes, expected exactly {expected}")]
    Trailing {
        kind: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("data payload of {0} bytes exceeds the maximum of {MAX_DATA_PAYLOAD}")]
    PayloadTooLarge(usize),
    #[error("close reason is not valid UTF-8")]
    BadUtf8,
}

fn read_u64(content: &[u8], kind: &'static str) -> Result<u64, DecodeError> {
    let field = content.get(1..HEADER_LEN).ok_or(DecodeError::Short {
        kind,
        len: content.len(),
        need: HEADER_LEN,
    })?;
    let mut be = [0u8; 8];
    be.copy_from_slice(field);
    Ok(u64::from_be_bytes(be))
}

fn counter(content: &[u8], kind: &'static str) -> Result<u64, DecodeError> {
    let value = read_u64(content, kind)?;
    if content.len() != HEADER_LEN {
        return Err(DecodeError::Trailing {
            kind,
            len: content.len(),
            expected: HEADER_LEN,
        });
    }
    Ok(value)
}

impl Record {
    /// Parses one record content (already opened and inflated).
    pub fn decode(content: Bytes) -> Result<Self, DecodeError> {
        let ty = *content.first().ok_or(DecodeError::Empty)?;
        match ty {
            TYPE_DATA => {
                let seq = read_u64(&content, "data")?;
                let payload = content.slice(HEADER_LEN..);
                if payload.len() > MAX_DATA_PAYLOAD {
                    return Err(DecodeError::PayloadTooLarge(payload.len()));
                }
                Ok(Record::Data { seq, payload })
            }
            TYPE_ACK => Ok(Record::Ack {
                received: counter(&content, "ack")?,
            }),
            TYPE_HEARTBEAT => Ok(Record::Heartbeat {
                received: counter(&content, "heartbeat")?,
            }),
            TYPE_CLOSE => {
                let reason = std::str::from_utf8(content.get(1..).unwrap_or_default())
                    .map_err(|_| DecodeError::BadUtf8)?;
                Ok(Record::Close {
                    reason: reason.to_owned(),
                })
            }
            other => Err(DecodeError::UnknownType(other)),
        }
    }

    /// Serialises the record content (copies a Data payload; the session
    /// itself sends through [`Transmit`](super::Transmit), which does not).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        match self {
            Record::Data { seq, payload } => {
                out.push(TYPE_DATA);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Record::Ack { received } => {
                out.push(TYPE_ACK);
                out.extend_from_slice(&received.to_be_bytes());
            }
            Record::Heartbeat { received } => {
                out.push(TYPE_HEARTBEAT);
                out.extend_from_slice(&received.to_be_bytes());
            }
            Record::Close { reason } => {
                out.push(TYPE_CLOSE);
                out.extend_from_slice(reason.as_bytes());
            }
        }
        out
    }

    /// Length of [`Record::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Data { payload, .. } => HEADER_LEN + payload.len(),
            Record::Ack { .. } | Record::Heartbeat { .. } => HEADER_LEN,
            Record::Close { reason } => 1 + reason.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_example_bytes() {
        // The example in PROTOCOL.md §4.
        let rec = Record::Data {
            seq: 5,
            payload: Bytes::from_static(b"hi"),
        };
        let bytes = rec.encode();
        assert_eq!(
            bytes,
            [0x01, 0, 0, 0, 0, 0, 0, 0, 0x05, b'h', b'i'].to_vec()
        );
        assert_eq!(Record::decode(Bytes::from(bytes)), Ok(rec));
        assert_eq!(
            Record::Ack { received: 300 }.encode(),
            [0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x2c].to_vec()
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(Record::decode(Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            Record::decode(Bytes::from_static(&[0x09])),
            Err(DecodeError::UnknownType(9))
        );
        assert!(matches!(
            Record::decode(Bytes::from_static(&[0x01, 0, 0])),
            Err(DecodeError::Short { kind: "data", .. })
        ));
        assert!(matches!(
            Record::decode(Bytes::from_static(&[0x02, 0, 0, 0, 0, 0, 0, 0])),
            Err(DecodeError::Short { kind: "ack", .. })
        ));
        assert!(matches!(
            Record::decode(Bytes::from_static(&[0x03, 0, 0, 0, 0, 0, 0, 0, 1, 2])),
            Err(DecodeError::Trailing {
                kind: "heartbeat",
                ..
            })
        ));
        assert_eq!(
            Record::decode(Bytes::from_static(&[0x04, 0xff])),
            Err(DecodeError::BadUtf8)
        );
        // Empty Data payload and empty Close reason are fine.
        assert_eq!(
            Record::decode(Bytes::from_static(&[0x01, 0, 0, 0, 0, 0, 0, 0, 7])),
            Ok(Record::Data {
                seq: 7,
                payload: Bytes::new()
            })
        );
        assert_eq!(
            Record::decode(Bytes::from_static(&[0x04])),
            Ok(Record::Close {
                reason: String::new()
            })
        );
    }
}
