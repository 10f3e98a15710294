//! Unit tests: every state and error path of [`Session`].

use super::record::MAX_RECORD_CONTENT;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cfg() -> SessionConfig {
    SessionConfig::default()
}

fn data(seq: u64, payload: &'static [u8]) -> Bytes {
    Bytes::from(
        Record::Data {
            seq,
            payload: Bytes::from_static(payload),
        }
        .encode(),
    )
}

fn ack(received: u64) -> Bytes {
    Bytes::from(Record::Ack { received }.encode())
}

fn decode(t: &Transmit) -> Record {
    Record::decode(t.to_bytes()).expect("session emits valid records")
}

/// Drains every transmit at `now`.
fn drain(s: &mut Session, now: Instant) -> Vec<Record> {
    std::iter::from_fn(|| s.poll_transmit(now))
        .map(|t| decode(&t))
        .collect()
}

fn connected(config: SessionConfig, t0: Instant) -> Session {
    let mut s = Session::new(config);
    s.connected(t0, None).unwrap();
    s
}

fn data_seqs(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Data { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

#[test]
fn send_transmits_in_order_with_zero_copy_parts() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    for p in [&b"a"[..], b"bb", b""] {
        s.send(Bytes::from_static(p)).unwrap();
    }
    let t = s.poll_transmit(t0).unwrap();
    assert_eq!(t.parts()[0], &[1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(t.parts()[1], b"a");
    assert_eq!(
        t.kind(),
        TransmitKind::Data {
            seq: 0,
            retransmit: false
        }
    );
    let rest = drain(&mut s, t0);
    assert_eq!(
        rest,
        vec![
            Record::Data {
                seq: 1,
                payload: Bytes::from_static(b"bb")
            },
            Record::Data {
                seq: 2,
                payload: Bytes::new()
            },
        ]
    );
    let st = s.stats();
    assert_eq!(
        (st.sent, st.queued, st.backup_records, st.backup_bytes),
        (3, 3, 3, 3)
    );
}

#[test]
fn nothing_transmitted_while_disconnected() {
    let t0 = Instant::now();
    let mut s = Session::new(cfg());
    s.send(Bytes::from_static(b"x")).unwrap();
    assert!(!s.is_connected());
    assert!(s.poll_transmit(t0).is_none());
    assert!(s.poll_timeout().is_none());
    assert!(s.handle_timeout(t0 + Duration::from_secs(100)).is_ok());
    s.connected(t0, None).unwrap();
    assert_eq!(data_seqs(&drain(&mut s, t0)), vec![0]);
}

#[test]
fn receive_in_order_and_drop_duplicates() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.handle_record(data(0, b"zero"), t0).unwrap();
    s.handle_record(data(1, b"one"), t0).unwrap();
    s.handle_record(data(0, b"zero again"), t0).unwrap();
    s.handle_record(data(1, b"one again"), t0).unwrap();
    s.handle_record(data(2, b"two"), t0).unwrap();
    let got: Vec<Bytes> = std::iter::from_fn(|| s.poll_received()).collect();
    assert_eq!(got, vec![&b"zero"[..], b"one", b"two"]);
    assert_eq!(s.received_count(), 3);
    assert_eq!(s.stats().duplicates, 2);
}

#[test]
fn gap_is_a_protocol_error_that_ends_the_session_with_a_close() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.handle_record(data(0, b"a"), t0).unwrap();
    s.send(Bytes::from_static(b"queued")).unwrap();
    let err = s.handle_record(data(2, b"c"), t0).unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("gap")),
        "{err}"
    );
    // Nothing of the offending record was applied.
    assert_eq!(s.received_count(), 1);
    assert!(s.poll_received().is_some());
    assert!(s.poll_received().is_none());
    // The peer is told why, before anything else, and nothing follows.
    let close = s.poll_transmit(t0).expect("a Close record");
    assert_eq!(close.kind(), TransmitKind::Close);
    assert_eq!(
        Record::decode(close.to_bytes()).unwrap(),
        Record::Close {
            reason: "session protocol error: gap in data records: got seq 2, expected 1".into()
        }
    );
    assert!(s.poll_transmit(t0).is_none());
    assert!(!s.is_connected());
    // Final: the session cannot be resumed.
    let end = s.termination().expect("ended");
    assert!(
        matches!(end, SessionError::Lost { ref reason } if reason.contains("gap")),
        "{end}"
    );
    assert_eq!(s.connected(t0, Some(0)), Err(end));
    assert_eq!(s.send(Bytes::from_static(b"x")), Err(SendError::Closed));
}

#[test]
fn cumulative_ack_trims_backup() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    for p in [&b"aa"[..], b"bbb", b"c"] {
        s.send(Bytes::from_static(p)).unwrap();
    }
    drain(&mut s, t0);
    s.handle_record(ack(2), t0).unwrap();
    let st = s.stats();
    assert_eq!((st.backup_records, st.backup_bytes, st.acked), (1, 1, 2));
    // Stale ack is ignored.
    s.handle_record(ack(1), t0).unwrap();
    assert_eq!(s.stats().backup_records, 1);
    // Heartbeats acknowledge too.
    s.handle_record(Bytes::from(Record::Heartbeat { received: 3 }.encode()), t0)
        .unwrap();
    assert_eq!(s.stats().backup_records, 0);
    assert_eq!(s.stats().backup_bytes, 0);
}

#[test]
fn ack_beyond_sent_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"a")).unwrap();
    s.send(Bytes::from_static(b"b")).unwrap();
    // Queued but not yet transmitted: the peer cannot have them.
    assert!(matches!(
        s.handle_record(ack(1), t0),
        Err(SessionError::Protocol(_))
    ));
    assert!(s.termination().is_some());

    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"a")).unwrap();
    s.send(Bytes::from_static(b"b")).unwrap();
    let _ = s.poll_transmit(t0);
    s.handle_record(ack(1), t0).unwrap();
    let err = s.handle_record(ack(5), t0).unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("acknowledged 5")),
        "{err}"
    );
    assert_eq!(
        s.poll_transmit(t0).map(|t| t.kind()),
        Some(TransmitKind::Close)
    );
}

#[test]
fn backpressure_by_records_then_writable() {
    let t0 = Instant::now();
    let mut s = connected(
        SessionConfig {
            max_backup_records: 2,
            ..cfg()
        },
        t0,
    );
    s.send(Bytes::from_static(b"a")).unwrap();
    s.send(Bytes::from_static(b"b")).unwrap();
    assert!(!s.has_capacity(0));
    assert_eq!(
        s.send(Bytes::from_static(b"c")),
        Err(SendError::Backpressure)
    );
    assert_eq!(s.poll_event(), None);
    drain(&mut s, t0);
    s.handle_record(ack(1), t0).unwrap();
    assert_eq!(s.poll_event(), Some(SessionEvent::Writable));
    assert_eq!(s.poll_event(), None);
    s.send(Bytes::from_static(b"c")).unwrap();
    // No new Writable without a new refusal.
    s.handle_record(ack(2), t0).unwrap();
    assert_eq!(s.poll_event(), None);
}

#[test]
fn backpressure_by_bytes_then_writable_only_when_it_fits() {
    let t0 = Instant::now();
    let mut s = connected(
        SessionConfig {
            max_backup_bytes: 10,
            ..cfg()
        },
        t0,
    );
    s.send(Bytes::from_static(b"12345")).unwrap();
    s.send(Bytes::from_static(b"1234")).unwrap();
    assert_eq!(
        s.send(Bytes::from_static(b"12")),
        Err(SendError::Backpressure)
    );
    assert!(s.has_capacity(1));
    drain(&mut s, t0);
    // Frees 5 bytes: 4 + 2 fits.
    s.handle_record(ack(1), t0).unwrap();
    assert_eq!(s.poll_event(), Some(SessionEvent::Writable));
    s.send(Bytes::from_static(b"12")).unwrap();
    assert_eq!(s.stats().backup_bytes, 6);
}

#[test]
fn has_capacity_arms_writable() {
    let t0 = Instant::now();
    let mut s = connected(
        SessionConfig {
            max_backup_records: 1,
            ..cfg()
        },
        t0,
    );
    s.send(Bytes::from_static(b"a")).unwrap();
    assert!(!s.has_capacity(1));
    drain(&mut s, t0);
    s.handle_record(ack(1), t0).unwrap();
    assert_eq!(s.poll_event(), Some(SessionEvent::Writable));
}

#[test]
fn too_large() {
    let mut s = Session::new(SessionConfig {
        max_backup_bytes: 4,
        ..cfg()
    });
    assert_eq!(
        s.send(Bytes::from_static(b"12345")),
        Err(SendError::TooLarge)
    );
    assert!(!s.has_capacity(5));
    s.send(Bytes::from_static(b"1234")).unwrap();
    let mut s = Session::new(SessionConfig {
        max_backup_bytes: usize::MAX,
        ..cfg()
    });
    assert_eq!(
        s.send(Bytes::from(vec![0u8; MAX_DATA_PAYLOAD + 1])),
        Err(SendError::TooLarge)
    );
    s.send(Bytes::from(vec![0u8; MAX_DATA_PAYLOAD])).unwrap();
    assert_eq!(MAX_DATA_PAYLOAD, 16 * 1024 * 1024 - 9);
}

#[test]
fn delayed_ack_timer() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.handle_record(data(0, b"a"), t0 + ms(10)).unwrap();
    assert!(drain(&mut s, t0 + ms(50)).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + ms(110)));
    s.handle_record(data(1, b"b"), t0 + ms(60)).unwrap();
    // The deadline counts from the first unacknowledged record.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(110)));
    s.handle_timeout(t0 + ms(110)).unwrap();
    assert_eq!(
        drain(&mut s, t0 + ms(110)),
        vec![Record::Ack { received: 2 }]
    );
    assert_eq!(s.stats().acks_sent, 1);
    // Nothing pending: the next deadline is the heartbeat.
    assert_eq!(s.poll_timeout(), Some(t0 + ms(1110)));
}

#[test]
fn ack_every_records_threshold() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    for seq in 0..31 {
        s.handle_record(data(seq, b"x"), t0).unwrap();
    }
    assert!(drain(&mut s, t0).is_empty());
    s.handle_record(data(31, b"x"), t0).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0));
    assert_eq!(drain(&mut s, t0), vec![Record::Ack { received: 32 }]);
}

#[test]
fn ack_every_bytes_threshold() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    let half = Bytes::from(vec![7u8; 512 * 1024]);
    let rec = |seq| {
        Bytes::from(
            Record::Data {
                seq,
                payload: half.clone(),
            }
            .encode(),
        )
    };
    s.handle_record(rec(0), t0).unwrap();
    assert!(drain(&mut s, t0).is_empty());
    s.handle_record(rec(1), t0).unwrap();
    assert_eq!(drain(&mut s, t0), vec![Record::Ack { received: 2 }]);
}

#[test]
fn ack_goes_before_queued_data() {
    let t0 = Instant::now();
    let mut s = connected(
        SessionConfig {
            ack_every_records: 1,
            ..cfg()
        },
        t0,
    );
    s.send(Bytes::from_static(b"out")).unwrap();
    s.handle_record(data(0, b"in"), t0).unwrap();
    let recs = drain(&mut s, t0);
    assert_eq!(recs[0], Record::Ack { received: 1 });
    assert_eq!(data_seqs(&recs), vec![0]);
}

#[test]
fn heartbeat_after_idle_carries_received() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + ms(1000)));
    assert!(drain(&mut s, t0 + ms(999)).is_empty());
    s.handle_record(data(0, b"a"), t0 + ms(950)).unwrap();
    // The ack deadline (1050) is later than the heartbeat (1000): the
    // heartbeat doubles as the ack.
    s.handle_timeout(t0 + ms(1000)).unwrap();
    assert_eq!(
        drain(&mut s, t0 + ms(1000)),
        vec![Record::Heartbeat { received: 1 }]
    );
    assert!(drain(&mut s, t0 + ms(1100)).is_empty());
    assert_eq!(s.stats().heartbeats_sent, 1);
    // Sending data resets the idle timer.
    s.send(Bytes::from_static(b"x")).unwrap();
    drain(&mut s, t0 + ms(1500));
    assert!(drain(&mut s, t0 + ms(2400)).is_empty());
    assert_eq!(
        drain(&mut s, t0 + ms(2500)),
        vec![Record::Heartbeat { received: 1 }]
    );
}

#[test]
fn dead_peer_after_silence() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.handle_record(ack(0), t0 + ms(1000)).unwrap();
    assert!(s.handle_timeout(t0 + ms(4999)).is_ok());
    assert!(s.poll_timeout().unwrap() <= t0 + ms(5000));
    assert_eq!(s.handle_timeout(t0 + ms(5000)), Err(SessionError::PeerDead));
    assert!(!s.is_connected());
    assert!(s.poll_timeout().is_none());
    assert!(s.poll_transmit(t0 + ms(5000)).is_none());
    // Still resumable.
    s.connected(t0 + ms(6000), Some(0)).unwrap();
    assert!(s.is_connected());
}

#[test]
fn connected_replays_from_peer_received() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    for p in [&b"0"[..], b"1", b"2", b"3"] {
        s.send(Bytes::from_static(p)).unwrap();
    }
    let _ = drain(&mut s, t0);
    s.handle_record(ack(1), t0).unwrap();
    s.send(Bytes::from_static(b"4")).unwrap(); // queued, never sent
    s.disconnected();
    // Peer got 0..=1 (its ack of 2 was lost with the connection).
    s.connected(t0, Some(2)).unwrap();
    let recs = drain(&mut s, t0);
    assert_eq!(data_seqs(&recs), vec![2, 3, 4]);
    let st = s.stats();
    assert_eq!(
        (st.retransmitted, st.sent, st.acked, st.backup_records),
        (2, 5, 2, 3)
    );
}

#[test]
fn connected_at_backup_start_and_at_sent_high() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"0")).unwrap();
    s.send(Bytes::from_static(b"1")).unwrap();
    drain(&mut s, t0);
    s.connected(t0, Some(0)).unwrap();
    assert_eq!(data_seqs(&drain(&mut s, t0)), vec![0, 1]);
    s.connected(t0, Some(2)).unwrap();
    assert!(drain(&mut s, t0).is_empty());
    assert_eq!(s.stats().backup_records, 0);
}

#[test]
fn connected_below_backup_is_lost() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"0")).unwrap();
    s.send(Bytes::from_static(b"1")).unwrap();
    drain(&mut s, t0);
    s.handle_record(ack(1), t0).unwrap();
    s.disconnected();
    // A restarted peer with empty state.
    let err = s.connected(t0, Some(0)).unwrap_err();
    assert!(matches!(err, SessionError::Lost { .. }), "{err}");
    assert!(!s.is_connected());
    assert_eq!(s.termination(), Some(err.clone()));
    assert_eq!(s.send(Bytes::from_static(b"x")), Err(SendError::Closed));
    assert_eq!(s.connected(t0, Some(1)), Err(err.clone()));
    assert_eq!(s.handle_record(data(0, b"x"), t0), Err(err));
    assert!(s.poll_transmit(t0).is_none());
    assert_eq!(s.stats().backup_records, 0);
}

#[test]
fn connected_above_sent_is_lost() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"0")).unwrap();
    s.send(Bytes::from_static(b"1")).unwrap();
    let _ = s.poll_transmit(t0); // only seq 0 went out
    s.disconnected();
    assert!(matches!(
        s.connected(t0, Some(2)),
        Err(SessionError::Lost { .. })
    ));
    // A fresh session meeting a peer that thinks it received something.
    let mut fresh = Session::new(cfg());
    assert!(matches!(
        fresh.connected(t0, Some(3)),
        Err(SessionError::Lost { .. })
    ));
}

#[test]
fn disconnect_with_queued_data_then_resend() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"0")).unwrap();
    let _ = s.poll_transmit(t0);
    s.disconnected();
    s.send(Bytes::from_static(b"1")).unwrap();
    s.send(Bytes::from_static(b"2")).unwrap();
    assert!(s.poll_transmit(t0).is_none());
    s.connected(t0 + ms(10), Some(0)).unwrap();
    let recs = std::iter::from_fn(|| s.poll_transmit(t0 + ms(10)))
        .map(|t| t.kind())
        .collect::<Vec<_>>();
    assert_eq!(
        recs,
        vec![
            TransmitKind::Data {
                seq: 0,
                retransmit: true
            },
            TransmitKind::Data {
                seq: 1,
                retransmit: false
            },
            TransmitKind::Data {
                seq: 2,
                retransmit: false
            },
        ]
    );
}

#[test]
fn replacing_transport_rewinds_and_late_ack_clamps_cursor() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    for p in [&b"0"[..], b"1", b"2"] {
        s.send(Bytes::from_static(p)).unwrap();
    }
    drain(&mut s, t0);
    // A second transport replaces the first without disconnected().
    s.connected(t0, Some(0)).unwrap();
    let _ = s.poll_transmit(t0); // seq 0 again
                                 // The peer had in fact received everything and says so.
    s.handle_record(ack(3), t0).unwrap();
    assert!(data_seqs(&drain(&mut s, t0)).is_empty());
    s.send(Bytes::from_static(b"3")).unwrap();
    assert_eq!(data_seqs(&drain(&mut s, t0)), vec![3]);
}

#[test]
fn duplicate_schedules_an_ack() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.handle_record(data(0, b"a"), t0).unwrap();
    assert_eq!(
        drain(&mut s, t0 + ms(100)),
        vec![Record::Ack { received: 1 }]
    );
    s.handle_record(data(0, b"a"), t0 + ms(200)).unwrap();
    assert_eq!(
        drain(&mut s, t0 + ms(300)),
        vec![Record::Ack { received: 1 }]
    );
}

#[test]
fn local_close_goes_after_queued_data() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"a")).unwrap();
    s.close("bye");
    assert_eq!(s.send(Bytes::from_static(b"b")), Err(SendError::Closed));
    assert!(!s.has_capacity(0));
    let recs = drain(&mut s, t0);
    assert_eq!(
        recs,
        vec![
            Record::Data {
                seq: 0,
                payload: Bytes::from_static(b"a")
            },
            Record::Close {
                reason: "bye".into()
            },
        ]
    );
    assert_eq!(
        s.termination(),
        Some(SessionError::Closed {
            reason: "bye".into()
        })
    );
    assert!(!s.is_connected());
    assert!(s.poll_transmit(t0).is_none());
    assert!(s.connected(t0, Some(0)).is_err());
}

#[test]
fn close_while_disconnected_goes_out_after_replay() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.send(Bytes::from_static(b"a")).unwrap();
    let _ = s.poll_transmit(t0);
    s.disconnected();
    s.close("done");
    s.close("ignored");
    s.connected(t0, Some(0)).unwrap();
    let recs = drain(&mut s, t0);
    assert_eq!(data_seqs(&recs), vec![0]);
    assert_eq!(
        recs.last(),
        Some(&Record::Close {
            reason: "done".into()
        })
    );
}

#[test]
fn peer_close_ends_session() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    s.handle_record(data(0, b"last words"), t0).unwrap();
    s.send(Bytes::from_static(b"x")).unwrap();
    let err = s
        .handle_record(Bytes::from_static(b"\x04going away"), t0)
        .unwrap_err();
    assert_eq!(
        err,
        SessionError::Closed {
            reason: "going away".into()
        }
    );
    assert_eq!(
        s.poll_event(),
        Some(SessionEvent::PeerClosed("going away".into()))
    );
    // Delivered data stays readable.
    assert_eq!(s.poll_received(), Some(Bytes::from_static(b"last words")));
    assert_eq!(s.send(Bytes::from_static(b"y")), Err(SendError::Closed));
    assert!(s.poll_transmit(t0).is_none());
    assert!(s.poll_timeout().is_none());
    assert_eq!(s.handle_record(ack(0), t0), Err(err.clone()));
    assert_eq!(s.connected(t0, Some(0)), Err(err));
    assert_eq!(s.stats().backup_records, 0);
}

#[test]
fn malformed_records_are_protocol_errors() {
    let t0 = Instant::now();
    let cases: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\x05abc",
        b"\xff",
        b"\x01\x00\x00",
        b"\x02\x00",
        b"\x03",
        b"\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x04\xc3\x28",
    ];
    for case in cases {
        let mut s = connected(cfg(), t0);
        let err = s
            .handle_record(Bytes::from_static(case), t0)
            .expect_err("malformed");
        assert!(matches!(err, SessionError::Protocol(_)), "{case:?}: {err}");
        assert_eq!(s.received_count(), 0, "{case:?}");
        let close = s.poll_transmit(t0).expect("a Close record");
        assert_eq!(close.kind(), TransmitKind::Close, "{case:?}");
        assert!(!s.is_connected());
        assert!(
            matches!(s.termination(), Some(SessionError::Lost { .. })),
            "{case:?}"
        );
    }
}

#[test]
fn long_close_reason_is_truncated_on_a_char_boundary() {
    let t0 = Instant::now();
    let mut s = connected(cfg(), t0);
    let reason = "é".repeat(MAX_DATA_PAYLOAD / 2 + 10);
    s.close(&reason);
    let t = s.poll_transmit(t0).unwrap();
    assert_eq!(t.kind(), TransmitKind::Close);
    assert!(t.encoded_len() <= MAX_RECORD_CONTENT);
    assert!(std::str::from_utf8(t.parts()[1]).is_ok());
}

#[test]
fn config_minimums_and_huge_durations() {
    let t0 = Instant::now();
    let mut s = connected(
        SessionConfig {
            max_backup_records: 0,
            ack_every_records: 0,
            heartbeat_interval: Duration::MAX,
            dead_after: Duration::MAX,
            ack_delay: Duration::MAX,
            ..cfg()
        },
        t0,
    );
    s.send(Bytes::from_static(b"a")).unwrap();
    s.handle_record(data(0, b"a"), t0).unwrap();
    // ack_every_records clamped to 1: ack at once.
    assert_eq!(drain(&mut s, t0)[0], Record::Ack { received: 1 });
    assert!(s.poll_timeout().is_none());
    assert!(s.handle_timeout(t0 + Duration::from_secs(1 << 40)).is_ok());
}

#[test]
fn defaults_match_the_spec() {
    let c = SessionConfig::default();
    assert_eq!(c.max_backup_records, 8192);
    assert_eq!(c.max_backup_bytes, 64 << 20);
    assert_eq!(c.ack_every_records, 32);
    assert_eq!(c.ack_every_bytes, 1 << 20);
    assert_eq!(c.ack_delay, ms(100));
    assert_eq!(c.heartbeat_interval, ms(1000));
    assert_eq!(c.dead_after, ms(4000));
}
