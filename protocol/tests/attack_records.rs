//! Attacks on sealed records: replay, reorder, drop, reflection and bit
//! flips all fail to open; malformed bodies are errors, never panics.

use bytes::BytesMut;
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::crypto::*;
use proptest::prelude::*;

fn schedule() -> KeySchedule {
    KeySchedule::derive(
        &[9; 32],
        &[1; 32],
        &[2; 32],
        TranscriptHash::compute(b"o", b"c"),
    )
}

fn client_sealer(ks: &KeySchedule) -> Sealer {
    ks.sealer(
        Side::Client,
        Encryption::XChaCha20Poly1305,
        Compression::fast(CompressionAlgorithm::Deflate),
    )
}

fn server_opener(ks: &KeySchedule) -> Opener {
    ks.opener(
        Side::Server,
        Encryption::XChaCha20Poly1305,
        CompressionAlgorithm::Deflate,
    )
}

fn seal(s: &mut Sealer, data: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    s.seal_into(&[data], &mut out).unwrap();
    out.split_off(4)
}

fn records(n: usize) -> (KeySchedule, Vec<BytesMut>) {
    let ks = schedule();
    let mut s = client_sealer(&ks);
    let v = (0..n)
        .map(|i| seal(&mut s, format!("record {i}").as_bytes()))
        .collect();
    (ks, v)
}

fn auth_fail(r: Result<bytes::Bytes, CryptoError>) {
    assert!(matches!(r, Err(CryptoError::RecordAuthentication)), "{r:?}");
}

#[test]
fn replayed_record_fails() {
    let (ks, recs) = records(2);
    let mut o = server_opener(&ks);
    o.open(recs[0].clone()).unwrap();
    auth_fail(o.open(recs[0].clone()));
}

#[test]
fn reordered_records_fail() {
    let (ks, recs) = records(2);
    let mut o = server_opener(&ks);
    auth_fail(o.open(recs[1].clone()));
    // The failed attempt did not move the counter: in order still works.
    o.open(recs[0].clone()).unwrap();
    o.open(recs[1].clone()).unwrap();
}

#[test]
fn dropped_record_makes_the_next_fail() {
    let (ks, recs) = records(3);
    let mut o = server_opener(&ks);
    o.open(recs[0].clone()).unwrap();
    auth_fail(o.open(recs[2].clone()));
}

#[test]
fn reflected_record_fails() {
    // The client's own record fed back to the client's opener (the other
    // direction has another key and IV).
    let ks = schedule();
    let mut cs = client_sealer(&ks);
    let mut client_opener = ks.opener(
        Side::Client,
        Encryption::XChaCha20Poly1305,
        CompressionAlgorithm::Deflate,
    );
    auth_fail(client_opener.open(seal(&mut cs, b"hello")));
}

#[test]
fn record_from_another_connection_fails() {
    let (_, recs) = records(1);
    let other = KeySchedule::derive(
        &[9; 32],
        &[1; 32],
        &[2; 32],
        TranscriptHash::compute(b"o", b"c2"),
    );
    auth_fail(server_opener(&other).open(recs[0].clone()));
}

#[test]
fn truncated_and_empty_bodies_are_malformed() {
    let (ks, recs) = records(1);
    let mut o = server_opener(&ks);
    for n in 0..17 {
        let r = o.open(BytesMut::from(&recs[0][..n.min(recs[0].len())]));
        assert!(
            matches!(
                r,
                Err(CryptoError::Malformed(_)) | Err(CryptoError::RecordAuthentication)
            ),
            "{n}: {r:?}"
        );
    }
    auth_fail(o.open(BytesMut::from(&recs[0][..recs[0].len() - 1])));
    o.open(recs[0].clone()).unwrap();
}

#[test]
fn unknown_flags_and_unnegotiated_compression_are_malformed() {
    // With "none" encryption the plaintext is visible, so flags can be set.
    let ks = schedule();
    let mut o = ks.opener(Side::Server, Encryption::None, CompressionAlgorithm::None);
    assert!(matches!(
        o.open(BytesMut::from(&b"\x02abc"[..])),
        Err(CryptoError::Malformed(_))
    ));
    assert!(matches!(
        o.open(BytesMut::from(&b"\x01abc"[..])),
        Err(CryptoError::Malformed(_))
    ));
    assert_eq!(
        &o.open(BytesMut::from(&b"\x00abc"[..])).unwrap()[..],
        b"abc"
    );
}

proptest! {
    #[test]
    fn any_bit_flip_fails(data in proptest::collection::vec(any::<u8>(), 0..2000), bit in any::<usize>()) {
        let ks = schedule();
        let mut s = client_sealer(&ks);
        let body = seal(&mut s, &data);
        let bit = bit % (body.len() * 8);
        let mut bad = body.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut o = server_opener(&ks);
        prop_assert!(matches!(o.open(bad), Err(CryptoError::RecordAuthentication)));
        prop_assert_eq!(&o.open(body).unwrap()[..], &data[..]);
    }

    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let ks = schedule();
        let _ = server_opener(&ks).open(BytesMut::from(&body[..]));
        let mut plain = ks.opener(Side::Server, Encryption::None, CompressionAlgorithm::Gzip);
        let _ = plain.open(BytesMut::from(&body[..]));
    }
}
