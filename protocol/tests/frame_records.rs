//! Sealed records: round trips across encryptions, compressions, part
//! splits and sizes; content caps; counter continuity.

use bytes::BytesMut;
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::crypto::*;
use distant_protocol::frame::{FrameCodec, MAX_FRAME, MAX_RECORD_CONTENT};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn algo() -> impl Strategy<Value = CompressionAlgorithm> {
    prop_oneof![
        Just(CompressionAlgorithm::None),
        Just(CompressionAlgorithm::Deflate),
        Just(CompressionAlgorithm::Gzip),
        Just(CompressionAlgorithm::Zlib),
    ]
}

proptest! {
    #[test]
    fn seal_open_round_trip(
        records in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..3000), 0usize..3000), 1..6),
        algorithm in algo(),
        level in 0u8..=9,
        encrypted in any::<bool>(),
        compressible in any::<bool>(),
    ) {
        let enc = if encrypted { Encryption::XChaCha20Poly1305 } else { Encryption::None };
        let (mut sealer, mut opener) = test_pair([3; 32], enc, Compression { algorithm, level });
        let mut wire = BytesMut::new();
        let mut expect = Vec::new();
        for (mut data, split) in records {
            if compressible {
                data.iter_mut().for_each(|b| *b %= 4);
            }
            let split = split.min(data.len());
            sealer.seal_into(&[&data[..split], &[], &data[split..]], &mut wire).unwrap();
            expect.push(data);
        }
        // Through the frame codec, as a reader would.
        let mut codec = FrameCodec::new(MAX_FRAME);
        for data in expect {
            let body = codec.decode(&mut wire).unwrap().unwrap();
            prop_assert_eq!(&opener.open(body).unwrap()[..], &data[..]);
        }
        prop_assert!(wire.is_empty());
    }
}

#[test]
fn compression_applies_only_above_threshold_and_when_smaller() {
    let (mut s, _) = test_pair(
        [1; 32],
        Encryption::XChaCha20Poly1305,
        Compression::fast(CompressionAlgorithm::Deflate),
    );
    let small = vec![0u8; 511];
    let mut out = BytesMut::new();
    s.seal_into(&[&small], &mut out).unwrap();
    assert_eq!(
        out.len(),
        4 + 1 + 511 + 16,
        "below threshold: not compressed"
    );
    let big = vec![0u8; 512];
    let mut out = BytesMut::new();
    s.seal_into(&[&big], &mut out).unwrap();
    assert!(out.len() < 100, "compressed: {}", out.len());
    // Random data does not shrink: sent as is.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut out = BytesMut::new();
    s.seal_into(&[&noise], &mut out).unwrap();
    assert!(out.len() <= 4 + 1 + noise.len() + 16);
}

#[test]
fn large_record_round_trip_and_caps() {
    let (mut s, mut o) = test_pair(
        [2; 32],
        Encryption::XChaCha20Poly1305,
        Compression::default(),
    );
    let max = vec![0xa5u8; MAX_RECORD_CONTENT];
    let mut out = BytesMut::new();
    s.seal_into(&[&max], &mut out).unwrap();
    assert!(out.len() - 4 <= MAX_FRAME);
    assert_eq!(o.open(out.split_off(4)).unwrap().len(), MAX_RECORD_CONTENT);
    // One byte more is refused by the sealer, and nothing is appended.
    let mut out = BytesMut::new();
    let err = s.seal_into(&[&max, b"x"], &mut out).unwrap_err();
    assert!(matches!(err, CryptoError::ContentTooLarge { .. }), "{err}");
    assert!(out.is_empty());
    // Opener phase limit.
    o.set_max_content(1000);
    let mut out = BytesMut::new();
    s.seal_into(&[&[1u8; 1001]], &mut out).unwrap();
    assert!(matches!(
        o.open(out.split_off(4)),
        Err(CryptoError::ContentTooLarge {
            len: 1001,
            max: 1000
        })
    ));
}

#[test]
fn counters_advance_only_on_success() {
    let (mut s, mut o) = test_pair(
        [4; 32],
        Encryption::XChaCha20Poly1305,
        Compression::default(),
    );
    let mut a = BytesMut::new();
    s.seal_into(&[b"one"], &mut a).unwrap();
    assert_eq!(s.counter(), Some(1));
    let good = a.split_off(4);
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert!(o.open(bad).is_err());
    assert_eq!(o.counter(), Some(0));
    assert_eq!(&o.open(good).unwrap()[..], b"one");
    assert_eq!(o.counter(), Some(1));
}

#[test]
fn counter_exhaustion() {
    let (mut s, mut o) = test_pair(
        [6; 32],
        Encryption::XChaCha20Poly1305,
        Compression::default(),
    );
    s.set_counter_for_test(u64::MAX);
    o.set_counter_for_test(u64::MAX);
    let mut out = BytesMut::new();
    s.seal_into(&[b"last"], &mut out).unwrap();
    assert_eq!(&o.open(out.split_off(4)).unwrap()[..], b"last");
    let err = s.seal_into(&[b"more"], &mut BytesMut::new()).unwrap_err();
    assert!(matches!(err, CryptoError::CounterExhausted));
    assert!(matches!(
        o.open(BytesMut::from(&[0u8; 20][..])),
        Err(CryptoError::CounterExhausted)
    ));
}

#[test]
fn key_schedule_matches_spec_vector() {
    // Fixed inputs → fixed outputs, so a second implementation can check
    // itself (values recorded in PROTOCOL.md §2.2).
    let th = TranscriptHash::compute(b"offer", b"choice");
    let ks = KeySchedule::derive(&[0x11; 32], &[0x22; 32], &[0x33; 32], th);
    let (mut s, _) = (
        ks.sealer(
            Side::Client,
            Encryption::XChaCha20Poly1305,
            Compression::default(),
        ),
        (),
    );
    let mut out = BytesMut::new();
    s.seal_into(&[b"hi"], &mut out).unwrap();
    println!("th = {}", hex::encode(th.0));
    println!("otp_0 = {}", hex::encode(ks.otp_0().as_bytes()));
    println!("first c2s record for \"hi\" = {}", hex::encode(&out));
    assert_eq!(hex::encode(th.0), TH_HEX);
    assert_eq!(
        hex::encode(ks.otp_0().as_bytes()),
        "81331e582776db2e67ea3cd62fa71a4dce39e4089e4be43bc31847e67370277b"
    );
    assert_eq!(hex::encode(&out), RECORD_HEX);
}

const TH_HEX: &str = "89a547eab3c6c333dd228966df1ffd8dad063c6879920acad0631a0d5477f7b1";
const RECORD_HEX: &str = "000000133991707ae932f0af94c33b4d3f321661c795c2";
