//! Property tests for the session record codec and state machine:
//! round trips, and no panic on any input.

use std::time::{Duration, Instant};

use bytes::Bytes;
use distant_protocol::session::{
    Record, SendError, Session, SessionConfig, SessionError, MAX_DATA_PAYLOAD,
};
use proptest::prelude::*;

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
            |(seq, payload)| Record::Data {
                seq,
                payload: Bytes::from(payload)
            }
        ),
        any::<u64>().prop_map(|received| Record::Ack { received }),
        any::<u64>().prop_map(|received| Record::Heartbeat { received }),
        ".{0,40}".prop_map(|reason| Record::Close { reason }),
    ]
}

/// Inputs for the session: raw record contents, mostly plausible.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        (
            0u8..6,
            0u64..12,
            proptest::collection::vec(any::<u8>(), 0..12)
        )
            .prop_map(|(ty, n, rest)| {
                let mut v = vec![ty];
                v.extend_from_slice(&n.to_be_bytes());
                if ty == 1 || ty == 4 {
                    v.extend_from_slice(&rest);
                }
                v
            }),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Record(Vec<u8>),
    Connected(Option<u64>),
    Disconnected,
    Transmit,
    Timeout,
    Advance(u64),
    Close,
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..40).prop_map(Op::Send),
        6 => content().prop_map(Op::Record),
        1 => proptest::option::of(0u64..12).prop_map(Op::Connected),
        1 => Just(Op::Disconnected),
        4 => Just(Op::Transmit),
        2 => Just(Op::Timeout),
        2 => (0u64..3000).prop_map(Op::Advance),
        1 => Just(Op::Close),
        1 => Just(Op::Drain),
    ]
}

proptest! {
    #[test]
    fn record_round_trip(rec in record()) {
        let bytes = rec.encode();
        prop_assert_eq!(bytes.len(), rec.encoded_len());
        prop_assert_eq!(Record::decode(Bytes::from(bytes)), Ok(rec));
    }

    #[test]
    fn decode_never_panics_and_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(rec) = Record::decode(Bytes::from(bytes.clone())) {
            prop_assert_eq!(rec.encode(), bytes);
        }
    }

    #[test]
    fn random_bytes_into_handle_record_never_panic(
        inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..20)
    ) {
        let t0 = Instant::now();
        let mut s = Session::new(SessionConfig::default());
        s.connected(t0, None).unwrap();
        for input in inputs {
            let _ = s.handle_record(Bytes::from(input), t0);
            while s.poll_transmit(t0).is_some() {}
        }
    }

    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 0..80)) {
        let config = SessionConfig {
            max_backup_records: 4,
            max_backup_bytes: 64,
            ack_every_records: 3,
            ack_every_bytes: 50,
            ..SessionConfig::default()
        };
        let t0 = Instant::now();
        let mut now = t0;
        let mut s = Session::new(config.clone());
        for op in ops {
            match op {
                Op::Send(len) => match s.send(Bytes::from(vec![0u8; len])) {
                    Ok(()) | Err(SendError::Backpressure) | Err(SendError::Closed) => {}
                    Err(SendError::TooLarge) => prop_assert!(len > config.max_backup_bytes),
                },
                Op::Record(c) => match s.handle_record(Bytes::from(c), now) {
                    Ok(()) | Err(SessionError::Protocol(_)) | Err(SessionError::Closed { .. })
                    | Err(SessionError::Lost { .. }) => {}
                    Err(SessionError::PeerDead) => prop_assert!(false, "PeerDead from a record"),
                },
                Op::Connected(p) => { let _ = s.connected(now, p); }
                Op::Disconnected => s.disconnected(),
                Op::Transmit => while let Some(t) = s.poll_transmit(now) {
                    let rec = Record::decode(t.to_bytes());
                    prop_assert!(rec.is_ok());
                    prop_assert!(t.encoded_len() <= MAX_DATA_PAYLOAD + 9);
                },
                Op::Timeout => {
                    if let Some(at) = s.poll_timeout() {
                        now = now.max(at);
                    }
                    let _ = s.handle_timeout(now);
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Close => s.close("prop"),
                Op::Drain => while s.poll_received().is_some() {},
            }
            let st = s.stats();
            prop_assert!(st.backup_records <= config.max_backup_records);
            prop_assert!(st.backup_bytes <= config.max_backup_bytes);
            prop_assert!(st.acked <= st.sent && st.sent <= st.queued);
            prop_assert_eq!(st.received, s.received_count());
            if !s.is_connected() {
                prop_assert!(s.poll_transmit(now).is_none());
                prop_assert!(s.poll_timeout().is_none());
            }
        }
    }
}
