//! Sealed-record throughput next to raw XChaCha20-Poly1305 in the same run.
//!
//! `raw/encrypt` is `encrypt_in_place_detached` over a buffer (no framing,
//! no copy); `sealer/seal` is `Sealer::seal_into` (frame header, copy of the
//! content into the output, encrypt in place, tag). `raw/roundtrip` and
//! `sealer/roundtrip` add the matching decryption / `Opener::open`.

use bytes::BytesMut;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::crypto::{test_pair, Encryption};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (16 * 1024, "16KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn nonce(n: u64) -> XNonce {
    let mut b = [7u8; 24];
    b[16..].copy_from_slice(&n.to_be_bytes());
    b.into()
}

fn codec(c: &mut Criterion) {
    for (size, label) in SIZES {
        let mut g = c.benchmark_group(format!("codec/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        let content = vec![0x5au8; size];

        let aead = XChaCha20Poly1305::new(&[1u8; 32].into());
        let mut buf = content.clone();
        let mut n = 0u64;
        g.bench_function("raw/encrypt", |b| {
            b.iter(|| {
                n += 1;
                let tag = aead
                    .encrypt_in_place_detached(&nonce(n), b"", &mut buf)
                    .unwrap();
                black_box(tag);
            })
        });

        let (mut sealer, _) = test_pair(
            [1; 32],
            Encryption::XChaCha20Poly1305,
            Compression::default(),
        );
        let mut dst = BytesMut::with_capacity(size + 64);
        g.bench_function("sealer/seal", |b| {
            b.iter(|| {
                dst.clear();
                sealer.seal_into(&[black_box(&content)], &mut dst).unwrap();
            })
        });

        let mut buf = content.clone();
        g.bench_function("raw/roundtrip", |b| {
            b.iter(|| {
                n += 1;
                let tag = aead
                    .encrypt_in_place_detached(&nonce(n), b"", &mut buf)
                    .unwrap();
                aead.decrypt_in_place_detached(&nonce(n), b"", &mut buf, &tag)
                    .unwrap();
            })
        });

        let (mut sealer, mut opener) = test_pair(
            [1; 32],
            Encryption::XChaCha20Poly1305,
            Compression::default(),
        );
        let mut dst = BytesMut::with_capacity(size + 64);
        g.bench_function("sealer/roundtrip", |b| {
            b.iter(|| {
                dst.clear();
                sealer.seal_into(&[black_box(&content)], &mut dst).unwrap();
                let body = dst.split_off(4);
                let out = opener.open(body).unwrap();
                black_box(&out);
                drop(out);
                // Reclaims the (now unique) allocation.
                dst.reserve(size + 64);
            })
        });
        g.finish();
    }
}

fn compressed(c: &mut Criterion) {
    // Source-code-like content, the common editor payload.
    let text = "    let value = compute(&input, options)?; // comment\n".repeat(16 * 1024 / 52);
    let mut g = c.benchmark_group("codec/16KiB-text");
    g.throughput(Throughput::Bytes(text.len() as u64));
    for algorithm in [CompressionAlgorithm::None, CompressionAlgorithm::Deflate] {
        let (mut sealer, mut opener) = test_pair(
            [1; 32],
            Encryption::XChaCha20Poly1305,
            Compression::fast(algorithm),
        );
        let mut dst = BytesMut::new();
        g.bench_with_input(
            BenchmarkId::new("roundtrip", algorithm),
            &text,
            |b, text| {
                b.iter(|| {
                    dst.clear();
                    sealer.seal_into(&[text.as_bytes()], &mut dst).unwrap();
                    let out = opener.open(dst.split_off(4)).unwrap();
                    black_box(out);
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, codec, compressed);
criterion_main!(benches);
