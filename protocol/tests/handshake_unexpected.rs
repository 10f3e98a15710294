//! Every message in every state the machines do not expect it in is a
//! `Protocol` error (never a panic), and random input never panics.

mod handshake_support;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use distant_protocol::auth::{static_key_question, AuthMessage, Question, SessionId};
use distant_protocol::handshake::*;
use handshake_support::*;
use proptest::prelude::*;
use serde_bytes::ByteBuf;

fn all_messages() -> Vec<AuthMessage> {
    vec![
        AuthMessage::Methods {
            methods: vec!["static_key".into()],
        },
        AuthMessage::Select {
            methods: vec!["static_key".into()],
        },
        AuthMessage::Start {
            method: "static_key".into(),
        },
        AuthMessage::Challenge {
            method: "static_key".into(),
            questions: vec![static_key_question()],
        },
        AuthMessage::Answers {
            answers: vec![ByteBuf::from(vec![0; 32])],
        },
        AuthMessage::Verify {
            kind: "host".into(),
            text: "ok?".into(),
        },
        AuthMessage::Verified { valid: true },
        AuthMessage::Info { text: "hi".into() },
        AuthMessage::Error {
            fatal: false,
            text: "x".into(),
        },
        AuthMessage::Success {
            session_id: SessionId([0; 16]),
            proof: None,
        },
        AuthMessage::Resume {
            proofs: vec![ByteBuf::from(vec![0; 32])],
            received: 0,
        },
        AuthMessage::Resumed {
            proof: ByteBuf::from(vec![0; 32]),
            matched: 0,
            received: 0,
        },
    ]
}

/// A server after the Choice, in state `AwaitSelect` (New) or
/// `AwaitResume` (Resume), plus the manual client's record layer.
fn keyed_server(connect: ConnectRequest) -> (ServerHandshake, ManualPeer, Instant) {
    let mut r = rng(40);
    let now = Instant::now();
    let mut server = ServerHandshake::new(Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    let offer = drain_server(&mut server).remove(0);
    let (choice, peer) = manual_client(&offer, connect, &mut r);
    server.handle_frame(body(choice), now).unwrap();
    let mut peer = peer;
    for b in drain_server(&mut server) {
        peer.open(frame_of(&b)).unwrap();
    }
    (server, peer, now)
}

fn assert_protocol(r: Result<(), HandshakeError>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), HandshakeErrorKind::Protocol, "{what}: {e}"),
        Ok(()) => panic!("{what}: accepted"),
    }
}

#[test]
fn server_rejects_unexpected_messages_in_every_state() {
    for msg in all_messages() {
        // AwaitSelect
        if !matches!(msg, AuthMessage::Select { .. }) {
            let (mut s, mut p, now) = keyed_server(ConnectRequest::New);
            assert_protocol(
                s.handle_frame(body(p.seal(&msg)), now),
                &format!("select/{}", msg.name()),
            );
            // The client is told, sealed.
            let out = drain_server(&mut s);
            assert!(matches!(
                p.open(frame_of(&out[0])),
                Ok(AuthMessage::Error { fatal: true, .. })
            ));
        }
        // AwaitAnswers
        if !matches!(msg, AuthMessage::Answers { .. }) {
            let (mut s, mut p, now) = keyed_server(ConnectRequest::New);
            s.handle_frame(
                body(p.seal(&AuthMessage::Select {
                    methods: vec!["static_key".into()],
                })),
                now,
            )
            .unwrap();
            assert_protocol(
                s.handle_frame(body(p.seal(&msg)), now),
                &format!("answers/{}", msg.name()),
            );
        }
        // FailureDelay: the client must stay silent.
        {
            let (mut s, mut p, now) = keyed_server(ConnectRequest::New);
            s.handle_frame(
                body(p.seal(&AuthMessage::Select {
                    methods: vec!["static_key".into()],
                })),
                now,
            )
            .unwrap();
            s.handle_frame(
                body(p.seal(&AuthMessage::Answers {
                    answers: vec![vec![1; 32].into()],
                })),
                now,
            )
            .unwrap();
            assert_protocol(
                s.handle_frame(body(p.seal(&msg)), now),
                &format!("delay/{}", msg.name()),
            );
        }
        // AwaitResume
        if !matches!(msg, AuthMessage::Resume { .. }) {
            let (mut s, mut p, now) = keyed_server(ConnectRequest::Resume {
                session_id: SessionId([1; 16]),
            });
            assert_protocol(
                s.handle_frame(body(p.seal(&msg)), now),
                &format!("resume/{}", msg.name()),
            );
        }
        // AwaitSession
        {
            let (mut s, mut p, now) = keyed_server(ConnectRequest::Resume {
                session_id: SessionId([1; 16]),
            });
            let resume = AuthMessage::Resume {
                proofs: vec![vec![0; 32].into()],
                received: 0,
            };
            s.handle_frame(body(p.seal(&resume)), now).unwrap();
            assert_protocol(
                s.handle_frame(body(p.seal(&msg)), now),
                &format!("session/{}", msg.name()),
            );
        }
    }
}

#[test]
fn server_rejects_wrong_plaintext_and_misuse() {
    let mut r = rng(41);
    let now = Instant::now();
    let cfg = Arc::new(server_cfg(Some(key(1))));
    // An Offer sent to a server.
    let mut s = ServerHandshake::new(cfg.clone(), &mut r, now);
    let offer = drain_server(&mut s).remove(0);
    assert_protocol(s.handle_frame(offer.clone(), now), "offer to server");
    // An unknown kind.
    let mut s = ServerHandshake::new(cfg.clone(), &mut r, now);
    let mut weird = offer.clone();
    weird[8] = 9;
    assert_protocol(s.handle_frame(weird, now), "kind 9");
    // Garbage msgpack in a Choice.
    let mut s = ServerHandshake::new(cfg.clone(), &mut r, now);
    let mut garbage = BytesMut::from(&offer[..9]);
    garbage[8] = 2;
    garbage.extend_from_slice(&[0xc1, 0xff, 0x00]);
    assert_protocol(s.handle_frame(garbage, now), "garbage choice");
    // A bad public key.
    let mut s = ServerHandshake::new(cfg.clone(), &mut r, now);
    let offer = drain_server(&mut s).remove(0);
    let (choice, _) = manual_client(&offer, ConnectRequest::New, &mut r);
    let Ok(PlainMessage::Choice(mut c)) = decode_plain(&body(choice)) else {
        panic!()
    };
    c.public_key = vec![4; 65].into();
    let e = s
        .handle_frame(encode_plain(&PlainMessage::Choice(c)), now)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Crypto, "{e}");
    // provide_session without a pending resume.
    let mut s = ServerHandshake::new(cfg.clone(), &mut r, now);
    assert_protocol(s.provide_session(None), "provide_session");
    // A frame after failure repeats the original error (rustls style).
    let mut s = ServerHandshake::new(cfg, &mut r, now);
    let first = s
        .handle_frame(BytesMut::from(&b"junk"[..]), now)
        .unwrap_err();
    assert_eq!(first.kind(), HandshakeErrorKind::NotDistant, "{first}");
    let again = s
        .handle_frame(BytesMut::from(&b"junk"[..]), now)
        .unwrap_err();
    assert_eq!(
        (again.kind(), again.to_string()),
        (first.kind(), first.to_string()),
        "after failure"
    );
}

/// A client at the given step against a manual server.
fn client_at(step: usize) -> (ClientHandshake, ManualPeer, Instant) {
    let mut r = rng(42);
    let now = Instant::now();
    let fake = ManualServer::new(&mut r);
    let mut client = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    client.handle_frame(body(fake.offer_frame()), now).unwrap();
    let out = drain_client(&mut client);
    let (_, mut peer) = fake.accept(&out[0]);
    let script = [
        AuthMessage::Methods {
            methods: vec!["static_key".into()],
        },
        AuthMessage::Start {
            method: "static_key".into(),
        },
    ];
    for m in script.iter().take(step) {
        client.handle_frame(body(peer.seal(m)), now).unwrap();
    }
    for b in drain_client(&mut client) {
        peer.open(frame_of(&b)).unwrap();
    }
    (client, peer, now)
}

#[test]
fn client_rejects_unexpected_messages_in_every_state() {
    for msg in all_messages() {
        // AwaitMethods: only Methods, Info and Error are fine.
        if !matches!(
            msg,
            AuthMessage::Methods { .. } | AuthMessage::Info { .. } | AuthMessage::Error { .. }
        ) {
            let (mut c, mut p, now) = client_at(0);
            assert_protocol(
                c.handle_frame(body(p.seal(&msg)), now),
                &format!("methods/{}", msg.name()),
            );
        }
        // AwaitAuth before Start: Start, Info, Error{fatal} only.
        if !matches!(msg, AuthMessage::Start { .. } | AuthMessage::Info { .. }) {
            let (mut c, mut p, now) = client_at(1);
            assert_protocol(
                c.handle_frame(body(p.seal(&msg)), now),
                &format!("auth0/{}", msg.name()),
            );
        }
        // AwaitAuth after Start{static_key}: a second Start of the same
        // method, Methods, Select, Answers, Verified, Resume, Resumed are
        // protocol errors; Success(proof: None) is AuthFailed.
        if matches!(
            msg,
            AuthMessage::Start { .. }
                | AuthMessage::Methods { .. }
                | AuthMessage::Select { .. }
                | AuthMessage::Answers { .. }
                | AuthMessage::Verified { .. }
                | AuthMessage::Resume { .. }
                | AuthMessage::Resumed { .. }
        ) {
            let (mut c, mut p, now) = client_at(2);
            assert_protocol(
                c.handle_frame(body(p.seal(&msg)), now),
                &format!("auth1/{}", msg.name()),
            );
        }
    }
    // A challenge with the wrong shape.
    let (mut c, mut p, now) = client_at(2);
    let two = AuthMessage::Challenge {
        method: "static_key".into(),
        questions: vec![
            static_key_question(),
            Question {
                label: "x".into(),
                text: "y".into(),
            },
        ],
    };
    assert_protocol(c.handle_frame(body(p.seal(&two)), now), "two questions");
    // A server Verify gets a "no".
    let (mut c, mut p, now) = client_at(2);
    c.handle_frame(
        body(p.seal(&AuthMessage::Verify {
            kind: "k".into(),
            text: "t".into(),
        })),
        now,
    )
    .unwrap();
    let out = drain_client(&mut c);
    assert_eq!(
        p.open(frame_of(&out[0])).unwrap(),
        AuthMessage::Verified { valid: false }
    );
    assert!(matches!(
        c.poll_event(),
        Some(HandshakeEvent::VerifyRequested { .. })
    ));
    // Info becomes an event.
    let (mut c, mut p, now) = client_at(0);
    c.handle_frame(
        body(p.seal(&AuthMessage::Info {
            text: "hello".into(),
        })),
        now,
    )
    .unwrap();
    assert_eq!(c.poll_event(), Some(HandshakeEvent::Info("hello".into())));
    // An Offer again after keys: fails to open → Crypto, not a panic.
    let (mut c, _p, now) = client_at(1);
    let e = c
        .handle_frame(body(ManualServer::new(&mut rng(1)).offer_frame()), now)
        .unwrap_err();
    assert_eq!(e.kind(), HandshakeErrorKind::Crypto);
    // A Choice sent to a client.
    let mut r = rng(43);
    let fake = ManualServer::new(&mut r);
    let (choice, _) = manual_client(&fake.offer_body, ConnectRequest::New, &mut r);
    let mut c = ClientHandshake::new(
        client_cfg(Some(key(1))),
        Connect::New,
        &mut r,
        Instant::now(),
    );
    assert_protocol(
        c.handle_frame(body(choice), Instant::now()),
        "choice to client",
    );
}

fn machines(seed: u64) -> (ClientHandshake, ServerHandshake, Instant) {
    let mut r = rng(seed);
    let now = Instant::now();
    let s = ServerHandshake::new(Arc::new(server_cfg(Some(key(1)))), &mut r, now);
    let c = ClientHandshake::new(client_cfg(Some(key(1))), Connect::New, &mut r, now);
    (c, s, now)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6)) {
        let (mut c, mut s, now) = machines(50);
        for f in &frames {
            let _ = c.handle_frame(BytesMut::from(&f[..]), now);
            let _ = s.handle_frame(BytesMut::from(&f[..]), now);
            let _ = s.provide_session(None);
        }
        let _ = c.handle_timeout(now + std::time::Duration::from_secs(60));
        let _ = s.handle_timeout(now + std::time::Duration::from_secs(60));
        while c.poll_transmit().is_some() {}
        while s.poll_transmit().is_some() {}
    }

    #[test]
    fn random_headed_frames_never_panic(
        kind in 0u8..5,
        major in prop_oneof![Just(1u16), any::<u16>()],
        content in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let (mut c, mut s, now) = machines(51);
        let mut b = BytesMut::from(&b"DSTN"[..]);
        b.extend_from_slice(&major.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&[kind]);
        b.extend_from_slice(&content);
        let _ = c.handle_frame(b.clone(), now);
        let _ = s.handle_frame(b, now);
    }

    #[test]
    fn random_sealed_messages_never_panic(
        // Random msgpack-ish content sealed under the right keys.
        contents in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..5),
        which in proptest::collection::vec(0usize..12, 1..5),
    ) {
        let (mut s, mut p, now) = keyed_server(ConnectRequest::New);
        for c in &contents {
            let mut out = BytesMut::new();
            p.sealer.seal_into(&[c], &mut out).unwrap();
            let _ = s.handle_frame(body(out), now);
        }
        let msgs = all_messages();
        let (mut c, mut p, now) = client_at(1);
        for w in which {
            let _ = c.handle_frame(body(p.seal(&msgs[w])), now);
        }
    }
}

#[test]
fn resuming_client_rejects_unexpected_messages() {
    for msg in all_messages() {
        if matches!(msg, AuthMessage::Info { .. } | AuthMessage::Resumed { .. }) {
            continue;
        }
        let mut r = rng(44);
        let now = Instant::now();
        let fake = ManualServer::new(&mut r);
        let otp = distant_protocol::auth::Otp::random(&mut r);
        let connect = Connect::Resume {
            session_id: SessionId([1; 16]),
            otps: vec![otp],
            received: 0,
        };
        let mut c = ClientHandshake::new(client_cfg(None), connect, &mut r, now);
        c.handle_frame(body(fake.offer_frame()), now).unwrap();
        let out = drain_client(&mut c);
        let (_, mut p) = fake.accept(&out[0]);
        let r = c.handle_frame(body(p.seal(&msg)), now);
        if matches!(msg, AuthMessage::Error { .. }) {
            // Error{fatal: false} is still not valid while resuming.
            assert_protocol(r, "resumed/Error");
        } else {
            assert_protocol(r, &format!("resumed/{}", msg.name()));
        }
    }
}
