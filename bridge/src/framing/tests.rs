//! Tests for the LSP base-protocol codec.

use super::*;
use futures::StreamExt;
use tokio_util::codec::FramedRead;

fn msg(body: &str) -> Frame {
    Frame::Message(Bytes::copy_from_slice(body.as_bytes()))
}

fn junk(s: &str) -> Frame {
    Frame::Junk(Bytes::copy_from_slice(s.as_bytes()))
}

/// Feeds `input` in one piece, then EOF; collects items and the final error.
fn decode_all(codec: &mut LspCodec, input: &[u8]) -> (Vec<Frame>, Option<FramingError>) {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => break,
            Err(e) => return (out, Some(e)),
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Feeds `input` one byte at a time, then EOF.
fn decode_bytewise(codec: &mut LspCodec, input: &[u8]) -> (Vec<Frame>, Option<FramingError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for b in input {
        buf.put_u8(*b);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Joins adjacent junk items (byte-wise feeding may split them).
fn merge_junk(frames: Vec<Frame>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for f in frames {
        if let (Some(Frame::Junk(prev)), Frame::Junk(next)) = (out.last_mut(), &f) {
            let mut joined = BytesMut::from(&prev[..]);
            joined.extend_from_slice(next);
            *prev = joined.freeze();
            continue;
        }
        out.push(f);
    }
    out
}

#[test]
fn frame_helper() {
    assert_eq!(frame(b"{}"), b"Content-Length: 2\r\n\r\n{}".to_vec());
    assert_eq!(frame(b""), b"Content-Length: 0\r\n\r\n".to_vec());
}

#[test]
fn encoder_matches_frame() {
    let mut codec = LspCodec::strict();
    let mut dst = BytesMut::new();
    codec
        .encode(Bytes::from_static(b"{\"a\":1}"), &mut dst)
        .unwrap();
    codec.encode(&b"[]"[..], &mut dst).unwrap();
    codec.encode(b"x".to_vec(), &mut dst).unwrap();
    let mut expected = frame(b"{\"a\":1}");
    expected.extend(frame(b"[]"));
    expected.extend(frame(b"x"));
    assert_eq!(&dst[..], &expected[..]);
}

#[test]
fn single_message() {
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let (items, err) = decode_all(&mut codec, &frame(b"{\"id\":1}"));
        assert_eq!(items, vec![msg("{\"id\":1}")]);
        assert!(err.is_none());
    }
}

#[test]
fn several_messages_in_one_buffer() {
    let mut input = frame(b"{\"a\":1}");
    input.extend(frame(b""));
    input.extend(frame("{\"é\":\"ü\"}".as_bytes()));
    input.extend(frame(b"[1,2,3]"));
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let (items, err) = decode_all(&mut codec, &input);
        assert_eq!(
            items,
            vec![
                msg("{\"a\":1}"),
                msg(""),
                msg("{\"é\":\"ü\"}"),
                msg("[1,2,3]")
            ]
        );
        assert!(err.is_none());
    }
}

#[test]
fn byte_by_byte_feeding() {
    let mut input = frame(b"{\"a\":1}");
    input.extend(
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
    );
    input.extend(frame(b"[true]"));
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let (items, err) = decode_bytewise(&mut codec, &input);
        assert_eq!(items, vec![msg("{\"a\":1}"), msg("{}"), msg("[true]")]);
        assert!(err.is_none(), "{err:?}");
    }
}

#[test]
fn header_names_case_insensitive_and_whitespace() {
    let input = b"content-LENGTH:   3  \r\nCONTENT-TYPE: x\r\n\r\nabcCONTENT-LENGTH:1\r\n\r\nz";
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let (items, err) = decode_all(&mut codec, input);
        assert_eq!(items, vec![msg("abc"), msg("z")]);
        assert!(err.is_none());
    }
}

#[test]
fn strict_ignores_unknown_headers() {
    let input = b"X-Custom: yes\r\nContent-Length: 2\r\nAnother: 1\r\n\r\n{}";
    let (items, err) = decode_all(&mut LspCodec::strict(), input);
    assert_eq!(items, vec![msg("{}")]);
    assert!(err.is_none());
}

#[test]
fn bare_newlines_accepted() {
    let (items, err) = decode_all(&mut LspCodec::strict(), b"Content-Length: 2\n\n{}");
    assert_eq!(items, vec![msg("{}")]);
    assert!(err.is_none());
}

#[test]
fn stray_line_breaks_between_messages_are_dropped() {
    let mut input = frame(b"1");
    input.extend(b"\r\n\r\n\n");
    input.extend(frame(b"2"));
    let mut codec = LspCodec::lenient();
    let (items, err) = decode_all(&mut codec, &input);
    assert_eq!(items, vec![msg("1"), msg("2")]);
    assert!(err.is_none());
    assert_eq!(codec.junk_events(), 0);
}

#[test]
fn lenient_banner_before_first_message() {
    let mut input = b"Starting pylsp 1.2.3...\nlistening on stdio\n".to_vec();
    input.extend(frame(b"{\"id\":0}"));
    let mut codec = LspCodec::lenient();
    let (items, err) = decode_all(&mut codec, &input);
    assert_eq!(
        items,
        vec![
            junk("Starting pylsp 1.2.3...\nlistening on stdio\n"),
            msg("{\"id\":0}")
        ]
    );
    assert!(err.is_none());
    assert_eq!(codec.junk_events(), 1);
    assert_eq!(codec.junk_bytes(), 43);
}

#[test]
fn lenient_junk_between_and_without_newline() {
    let mut input = frame(b"1");
    input.extend(b"debug: x = 3\n");
    input.extend(frame(b"2"));
    input.extend(b"no newline here");
    input.extend(frame(b"3"));
    let expected = vec![
        msg("1"),
        junk("debug: x = 3\n"),
        msg("2"),
        junk("no newline here"),
        msg("3"),
    ];
    let (items, err) = decode_all(&mut LspCodec::lenient(), &input);
    assert_eq!(items, expected);
    assert!(err.is_none());
    let (items, err) = decode_bytewise(&mut LspCodec::lenient(), &input);
    assert_eq!(merge_junk(items), expected);
    assert!(err.is_none());
}

#[test]
fn lenient_header_like_line_that_is_not_content_length() {
    // A header-shaped log line directly before a real header, and one
    // followed by its own blank line.
    let mut input = b"Warning: something odd\r\n".to_vec();
    input.extend(frame(b"1"));
    input.extend(b"Status: ok\r\n\r\n");
    input.extend(frame(b"2"));
    let mut codec = LspCodec::lenient();
    let (items, err) = decode_all(&mut codec, &input);
    assert_eq!(
        items,
        vec![
            junk("Warning: something odd\r\n"),
            msg("1"),
            junk("Status: ok\r\n\r\n"),
            msg("2")
        ]
    );
    assert!(err.is_none());
    assert_eq!(codec.junk_events(), 2);
}

#[test]
fn lenient_bogus_content_length_line_is_junk() {
    let mut input = b"Content-Length: mismatch in log\n".to_vec();
    input.extend(frame(b"ok"));
    let (items, err) = decode_all(&mut LspCodec::lenient(), &input);
    assert_eq!(
        items,
        vec![junk("Content-Length: mismatch in log\n"), msg("ok")]
    );
    assert!(err.is_none());
}

#[test]
fn lenient_junk_glued_to_header() {
    let mut input = b"xx".to_vec();
    input.extend(frame(b"ok"));
    for f in [decode_all, decode_bytewise] {
        let (items, err) = f(&mut LspCodec::lenient(), &input);
        assert_eq!(merge_junk(items), vec![junk("xx"), msg("ok")]);
        assert!(err.is_none());
    }
}

#[test]
fn lenient_trailing_junk_at_eof() {
    let mut input = frame(b"1");
    input.extend(b"bye");
    let (items, err) = decode_all(&mut LspCodec::lenient(), &input);
    assert_eq!(items, vec![msg("1"), junk("bye")]);
    assert!(err.is_none());
}

#[test]
fn lenient_huge_junk_never_wedges() {
    let mut input = vec![b'z'; 3 * MAX_HEADER_BYTES];
    input.extend(frame(b"ok"));
    let mut codec = LspCodec::lenient();
    let (items, err) = decode_all(&mut codec, &input);
    assert!(err.is_none());
    assert_eq!(items.last(), Some(&msg("ok")));
    assert_eq!(codec.junk_bytes(), 3 * MAX_HEADER_BYTES as u64);
}

#[test]
fn oversize_length_is_an_error_not_an_allocation() {
    let input = b"Content-Length: 99999999999999\r\n\r\n";
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let mut buf = BytesMut::from(&input[..]);
        let item = codec.decode(&mut buf).unwrap();
        assert_eq!(
            item,
            Some(Frame::Invalid(FramingError::BodyTooLarge {
                size: 99_999_999_999_999,
                max: DEFAULT_MAX_BODY
            }))
        );
        assert!(buf.capacity() < 1024 * 1024);
        let text = FramingError::BodyTooLarge {
            size: 99_999_999_999_999,
            max: DEFAULT_MAX_BODY,
        }
        .to_string();
        assert!(text.contains("99999999999999") && text.contains("67108864"));
    }
}

#[test]
fn oversize_body_is_discarded_and_stream_continues() {
    let mut codec = LspCodec::strict().with_max_body(4);
    let mut input = frame(b"0123456789");
    input.extend(frame(b"ok"));
    let (items, err) = decode_bytewise(&mut codec, &input);
    assert_eq!(
        items,
        vec![
            Frame::Invalid(FramingError::BodyTooLarge { size: 10, max: 4 }),
            msg("ok")
        ]
    );
    assert!(err.is_none());
    assert_eq!(codec.skipped_bytes(), 10);
}

#[test]
fn content_length_overflow_is_invalid() {
    let mut input = b"Content-Length: 999999999999999999999999\r\n\r\n".to_vec();
    input.extend(frame(b"ok"));
    let (items, _) = decode_all(&mut LspCodec::strict(), &input);
    assert!(matches!(
        items.first(),
        Some(Frame::Invalid(FramingError::InvalidContentLength(_)))
    ));
    assert_eq!(items.last(), Some(&msg("ok")));
}

#[test]
fn header_too_large() {
    let mut input = b"Content-Length: 2\r\nX-Pad: ".to_vec();
    input.extend(vec![b'a'; MAX_HEADER_BYTES]);
    input.extend(b"\r\n\r\n{}");
    input.extend(frame(b"ok"));
    let (items, err) = decode_all(&mut LspCodec::strict(), &input);
    assert_eq!(
        items.first(),
        Some(&Frame::Invalid(FramingError::HeaderTooLarge {
            limit: MAX_HEADER_BYTES
        }))
    );
    assert_eq!(items.last(), Some(&msg("ok")));
    assert!(err.is_none());
}

#[test]
fn strict_resyncs_after_malformed_header() {
    let mut input = b"Content-Length: abc\r\n\r\n{\"x\":1}".to_vec();
    input.extend(frame(b"{\"id\":2}"));
    input.extend(b"garbage without colon\r\n\r\n");
    input.extend(frame(b"{\"id\":3}"));
    input.extend(b"Content-Type: x\r\n\r\n{}");
    input.extend(frame(b"{\"id\":4}"));
    let expected = vec![
        Frame::Invalid(FramingError::InvalidContentLength("abc".into())),
        msg("{\"id\":2}"),
        Frame::Invalid(FramingError::MalformedHeader(
            "not a `Name: value` line: \"garbage without colon\"".into(),
        )),
        msg("{\"id\":3}"),
        Frame::Invalid(FramingError::MissingContentLength),
        msg("{\"id\":4}"),
    ];
    let mut codec = LspCodec::strict();
    let (items, err) = decode_all(&mut codec, &input);
    assert_eq!(items, expected);
    assert!(err.is_none());
    assert_eq!(codec.junk_events(), 0);
    let (items, err) = decode_bytewise(&mut LspCodec::strict(), &input);
    assert_eq!(items, expected);
    assert!(err.is_none());
}

#[test]
fn strict_junk_before_header_is_one_error() {
    let mut input = b"hello there\r\nmore junk\r\n".to_vec();
    input.extend(frame(b"ok"));
    let (items, err) = decode_all(&mut LspCodec::strict(), &input);
    assert_eq!(items.len(), 2);
    assert!(matches!(items.first(), Some(Frame::Invalid(_))));
    assert_eq!(items.last(), Some(&msg("ok")));
    assert!(err.is_none());
}

#[test]
fn truncated_body_at_eof() {
    let input = b"Content-Length: 10\r\n\r\n{\"a\"";
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let (items, err) = decode_all(&mut codec, input);
        assert!(items.is_empty());
        let err = err.unwrap();
        assert_eq!(
            err,
            FramingError::TruncatedBody {
                expected: 10,
                got: 4
            }
        );
        assert!(err.to_string().contains("4 of 10"));
    }
}

#[test]
fn truncated_header_at_eof() {
    let input = b"Content-Length: 10\r\n";
    for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
        let (items, err) = decode_all(&mut codec, input);
        assert!(items.is_empty());
        assert_eq!(err, Some(FramingError::TruncatedHeader { got: 20 }));
    }
}

#[test]
fn clean_eof() {
    let (items, err) = decode_all(&mut LspCodec::strict(), b"");
    assert!(items.is_empty() && err.is_none());
    let (items, err) = decode_all(&mut LspCodec::strict(), b"\r\n");
    assert!(items.is_empty() && err.is_none());
}

#[tokio::test]
async fn framed_read_keeps_going_after_recoverable_errors() {
    let mut input = b"banner\n".to_vec();
    input.extend(frame(b"1"));
    input.extend(b"Content-Length: nope\r\n\r\n");
    input.extend(frame(b"2"));
    let strict: Vec<_> = FramedRead::new(&input[..], LspCodec::strict())
        .collect::<Vec<_>>()
        .await;
    let strict: Vec<Frame> = strict.into_iter().map(Result::unwrap).collect();
    assert_eq!(strict.len(), 4);
    assert_eq!(strict.get(1), Some(&msg("1")));
    assert_eq!(strict.get(3), Some(&msg("2")));

    let lenient: Vec<Frame> = FramedRead::new(&input[..], LspCodec::lenient())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        lenient,
        vec![
            junk("banner\n"),
            msg("1"),
            junk("Content-Length: nope\r\n\r\n"),
            msg("2")
        ]
    );
}

#[test]
fn random_input_never_panics_or_wedges() {
    // Cheap deterministic fuzz; proptest covers the rewriter.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet: &[u8] = b"Content-Length: 0123456789\r\n{}abcCT:";
    for _ in 0..500 {
        let mut input = Vec::new();
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % alphabet.len() as u64) as usize;
            input.push(alphabet[i]);
        }
        for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
            let _ = decode_all(&mut codec, &input);
            let _ = decode_bytewise(&mut codec, &input);
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Junk that cannot contain a header candidate and is not just line
    /// breaks (those are dropped silently between messages).
    fn junk_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            "[a-bd-z0-9 :.!\n]{1,40}"
                .prop_filter("not only line breaks", |s| s.bytes().any(|b| b != b'\n'))
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn lenient_random_chunking_recovers_every_message(
            parts in prop::collection::vec(
                (junk_strategy(), prop::collection::vec(any::<u8>(), 0..200)),
                1..8,
            ),
            chunks in prop::collection::vec(1usize..64, 1..50),
        ) {
            let mut input = Vec::new();
            let mut want_junk: Vec<u8> = Vec::new();
            for (junk, body) in &parts {
                input.extend(junk);
                // Line breaks at a message boundary are dropped silently,
                // so compare junk without them.
                want_junk.extend(junk.iter().filter(|b| **b != b'\n'));
                input.extend(frame(body));
            }
            let mut codec = LspCodec::lenient();
            let mut buf = BytesMut::new();
            let mut items = Vec::new();
            let mut pos = 0;
            let mut sizes = chunks.iter().cycle();
            while pos < input.len() {
                let n = (*sizes.next().unwrap()).min(input.len() - pos);
                buf.extend_from_slice(&input[pos..pos + n]);
                pos += n;
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    items.push(f);
                }
            }
            while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
                items.push(f);
            }
            let mut got_junk: Vec<u8> = Vec::new();
            let mut bodies = Vec::new();
            for item in items {
                match item {
                    Frame::Message(b) => bodies.push(b.to_vec()),
                    Frame::Junk(j) => got_junk.extend(j.iter().filter(|b| **b != b'\n')),
                    Frame::Invalid(e) => prop_assert!(false, "unexpected {e}"),
                }
            }
            let want: Vec<Vec<u8>> = parts.into_iter().map(|(_, b)| b).collect();
            prop_assert_eq!(bodies, want);
            prop_assert_eq!(got_junk, want_junk);
        }

        #[test]
        fn strict_random_chunking_and_garbage_never_panics(
            input in prop::collection::vec(any::<u8>(), 0..400),
            chunk in 1usize..32,
        ) {
            for mut codec in [LspCodec::strict(), LspCodec::lenient()] {
                let mut buf = BytesMut::new();
                for piece in input.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    while let Ok(Some(_)) = codec.decode(&mut buf) {}
                }
                while let Ok(Some(_)) = codec.decode_eof(&mut buf) {}
            }
        }
    }
}
