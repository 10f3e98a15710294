//! Frame codec: round trips under arbitrary read splits, the size cap
//! (checked before any allocation), truncation and garbage.

use bytes::BytesMut;
use distant_protocol::frame::*;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn encode_all(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for b in bodies {
        encode_frame(b, &mut out).unwrap();
    }
    out.to_vec()
}

proptest! {
    #[test]
    fn round_trip_with_random_splits(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..8),
        chunk in 1usize..600,
    ) {
        let wire = encode_all(&bodies);
        let mut codec = FrameCodec::new(4096);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(b) = codec.decode(&mut buf).unwrap() {
                got.push(b.to_vec());
            }
        }
        prop_assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        prop_assert_eq!(got, bodies);
    }

    #[test]
    fn round_trip_byte_by_byte(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..5)) {
        let wire = encode_all(&bodies);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.extend_from_slice(&[byte]);
            if let Some(b) = codec.decode(&mut buf).unwrap() {
                got.push(b.to_vec());
            }
        }
        prop_assert_eq!(got, bodies);
    }

    #[test]
    fn garbage_never_panics_and_never_overallocates(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let cap = 1024;
        let mut codec = FrameCodec::new(cap);
        let mut buf = BytesMut::from(&data[..]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(b)) => prop_assert!(b.len() <= cap),
                Ok(None) => {
                    let _ = codec.decode_eof(&mut buf);
                    break;
                }
                Err(FrameError::TooLarge { len, max }) => {
                    prop_assert!(len > max);
                    break;
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
        prop_assert!(buf.capacity() <= 2 * (cap + LENGTH_PREFIX).max(data.len()));
    }
}

#[test]
fn oversize_length_rejected_without_allocation() {
    let mut codec = FrameCodec::new(MAX_FRAME_PREAUTH);
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&u32::MAX.to_be_bytes());
    let cap_before = buf.capacity();
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(
        matches!(err, FrameError::TooLarge { len, max } if len == u32::MAX as usize && max == MAX_FRAME_PREAUTH)
    );
    assert_eq!(
        buf.capacity(),
        cap_before,
        "nothing reserved for a hostile length"
    );
    assert!(buf.capacity() <= MAX_FRAME_PREAUTH);
    assert_eq!(
        err.to_string(),
        "frame too large: 4294967295 bytes announced, at most 65536 allowed"
    );

    // Exactly the cap is fine; one more is not.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(MAX_FRAME_PREAUTH as u32).to_be_bytes());
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() <= 2 * (MAX_FRAME_PREAUTH + LENGTH_PREFIX));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(MAX_FRAME_PREAUTH as u32 + 1).to_be_bytes());
    assert!(codec.decode(&mut buf).is_err());
}

#[test]
fn cap_can_be_raised_after_auth() {
    let mut codec = FrameCodec::new(MAX_FRAME_PREAUTH);
    let body = vec![7u8; MAX_FRAME_PREAUTH + 1];
    let mut buf = BytesMut::new();
    encode_frame(&body, &mut buf).unwrap();
    assert!(codec.decode(&mut buf.clone()).is_err());
    codec.set_max_len(MAX_FRAME);
    assert_eq!(codec.max_len(), MAX_FRAME);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), body.len());
}

#[test]
fn truncated_frame_reported_at_eof() {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0aabc"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(matches!(err, FrameError::Truncated { have: 7, need: 14 }));
    assert_eq!(
        err.to_string(),
        "truncated frame: the stream ended with 7 of 14 bytes"
    );
    // A partial length prefix too.
    let mut buf = BytesMut::from(&b"\x00\x00"[..]);
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(FrameError::Truncated { have: 2, need: 4 })
    ));
    // A clean end is not an error.
    assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);
}

#[test]
fn encode_rejects_oversize() {
    let body = vec![0u8; MAX_FRAME + 1];
    assert!(matches!(
        encode_frame(&body, &mut BytesMut::new()),
        Err(FrameError::TooLarge { .. })
    ));
}
