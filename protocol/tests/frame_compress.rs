//! Compression: round trips per algorithm and level, bounded inflation
//! (decompression bombs and the ratio bound).

use distant_protocol::compress::*;
use distant_protocol::crypto::{test_pair, CryptoError, Encryption};
use distant_protocol::frame::MAX_RECORD_CONTENT;
use proptest::prelude::*;

const ALGOS: [CompressionAlgorithm; 4] = CompressionAlgorithm::ALL;

proptest! {
    #[test]
    fn round_trip_every_algorithm(data in proptest::collection::vec(any::<u8>(), 0..5000), level in 0u8..=9) {
        for algorithm in ALGOS {
            let c = compress(Compression { algorithm, level }, &data);
            let back = decompress(algorithm, &c, MAX_RECORD_CONTENT).unwrap();
            prop_assert_eq!(&back, &data);
        }
    }
}

#[test]
fn compressible_text_shrinks() {
    let text = "fn main() { println!(\"hello\"); }\n".repeat(200);
    for algorithm in [
        CompressionAlgorithm::Deflate,
        CompressionAlgorithm::Gzip,
        CompressionAlgorithm::Zlib,
    ] {
        let c = compress(Compression::fast(algorithm), text.as_bytes());
        assert!(c.len() * 10 < text.len(), "{algorithm}: {}", c.len());
        assert_eq!(
            decompress(algorithm, &c, MAX_RECORD_CONTENT).unwrap(),
            text.as_bytes()
        );
    }
}

#[test]
fn bomb_over_content_cap_is_rejected() {
    // 16 MiB + 1 of zeros deflates to ~16 KiB.
    let zeros = vec![0u8; MAX_RECORD_CONTENT + 1];
    for algorithm in [
        CompressionAlgorithm::Deflate,
        CompressionAlgorithm::Gzip,
        CompressionAlgorithm::Zlib,
    ] {
        let bomb = compress(
            Compression {
                algorithm,
                level: 9,
            },
            &zeros,
        );
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let err = decompress(algorithm, &bomb, MAX_RECORD_CONTENT).unwrap_err();
        assert!(
            matches!(err, DecompressError::Limit { .. }),
            "{algorithm}: {err}"
        );
        // Under a small (pre-auth) cap it is rejected as well.
        assert!(matches!(
            decompress(algorithm, &bomb, 64 * 1024),
            Err(DecompressError::Limit { limit: 65536 })
        ));
    }
}

#[test]
fn bomb_inside_a_sealed_record_is_a_decompression_limit() {
    // A peer holding the keys (or a bug) seals a bomb: the opener refuses
    // it without inflating it.
    let zeros = vec![0u8; MAX_RECORD_CONTENT];
    let (mut sealer, mut opener) = test_pair(
        [5; 32],
        Encryption::XChaCha20Poly1305,
        Compression::fast(CompressionAlgorithm::Deflate),
    );
    let mut out = bytes::BytesMut::new();
    sealer.seal_into(&[&zeros], &mut out).unwrap();
    assert!(
        out.len() < 100 * 1024,
        "compressed before sealing: {}",
        out.len()
    );
    opener.set_max_content(1024 * 1024);
    let err = opener.open(out.split_off(4)).unwrap_err();
    assert!(matches!(err, CryptoError::DecompressionLimit(_)), "{err}");
    assert!(err.to_string().starts_with("decompression limit exceeded"));
}

#[test]
fn ratio_bound() {
    assert_eq!(inflate_limit(10, MAX_RECORD_CONTENT), 10 * MAX_RATIO);
    assert_eq!(
        inflate_limit(1 << 30, MAX_RECORD_CONTENT),
        MAX_RECORD_CONTENT
    );
    // The most compressible input DEFLATE can produce (zeros, level 9)
    // stays under the bound: honest data is never refused by it.
    let zeros = vec![0u8; 4 * 1024 * 1024];
    for algorithm in [
        CompressionAlgorithm::Deflate,
        CompressionAlgorithm::Gzip,
        CompressionAlgorithm::Zlib,
    ] {
        let c = compress(
            Compression {
                algorithm,
                level: 9,
            },
            &zeros,
        );
        let ratio = zeros.len() / c.len();
        assert!(
            ratio > 1000 && ratio < MAX_RATIO,
            "{algorithm}: ratio {ratio}"
        );
        assert_eq!(
            decompress(algorithm, &c, MAX_RECORD_CONTENT).unwrap().len(),
            zeros.len()
        );
        // Any prefix of it either fails or yields at most its ratio bound.
        for cut in [1, 7, c.len() / 8, c.len() / 2] {
            match decompress(algorithm, &c[..cut], MAX_RECORD_CONTENT) {
                Ok(v) => assert!(v.len() <= cut * MAX_RATIO),
                Err(DecompressError::Limit { limit }) => assert_eq!(limit, cut * MAX_RATIO),
                Err(DecompressError::Corrupt(_)) => {}
            }
        }
    }
}

#[test]
fn corrupt_stream_is_an_error_not_a_panic() {
    for algorithm in [
        CompressionAlgorithm::Deflate,
        CompressionAlgorithm::Gzip,
        CompressionAlgorithm::Zlib,
    ] {
        let _ = decompress(algorithm, &[0xff; 64], MAX_RECORD_CONTENT);
        let _ = decompress(algorithm, &[], MAX_RECORD_CONTENT);
    }
    assert!(decompress(CompressionAlgorithm::Gzip, b"not gzip at all", 1024).is_err());
}
