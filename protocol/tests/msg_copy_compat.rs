//! `Op::Copy`'s optional `overwrite` (PROTOCOL.md §5.6): absent, it is not
//! encoded at all, so the bytes are those of a client older than the
//! field, and such a client's message decodes with `overwrite: None`.

use distant_protocol::msg::{Message, Op, Request, RequestPayload};

fn copy(overwrite: Option<bool>) -> Message {
    Message::Request(Request {
        id: 3,
        payload: RequestPayload::Single(Op::Copy {
            src: "/a".into(),
            dst: "/b".into(),
            overwrite,
        }),
    })
}

/// The bytes an older client sends: `{"Copy": {"src", "dst"}}` only.
fn old_client_bytes() -> Vec<u8> {
    let mut b = vec![0x81];
    b.extend(b"\xa7Request");
    b.extend(b"\x82\xa2id\x03\xa7payload\x81\xa6Single");
    b.extend(b"\x81\xa4Copy\x82\xa3src\xa2/a\xa3dst\xa2/b");
    b
}

#[test]
fn absent_overwrite_is_the_old_encoding_and_old_messages_decode() {
    assert_eq!(copy(None).encode().unwrap(), old_client_bytes());
    assert_eq!(Message::decode(&old_client_bytes()).unwrap(), copy(None));
    for o in [true, false] {
        let bytes = copy(Some(o)).encode().unwrap();
        assert!(bytes.windows(9).any(|w| w == b"overwrite"));
        assert_eq!(Message::decode(&bytes).unwrap(), copy(Some(o)));
    }
}
