//! Resumption bookkeeping that outlives connections (PROTOCOL.md §3.2):
//! the client's [`ClientTicket`] (its candidate one-time passwords and
//! their rotation) and the server's [`ServerRecord`] of one session (the
//! stored OTP, resume generations, commit-on-first-record) plus the rule
//! for stale resume attempts ([`is_stale_resume`]).
//!
//! Sans-IO like the rest of the core: plain data, no clock, no IO. The
//! tokio driver (`driver/client.rs`, `driver/server.rs`) and the seeded
//! simulation (`tests/sim_stack.rs`) both use these types, so the rules
//! the simulation checks are the rules that ship.

use crate::auth::{Otp, SessionId};
use crate::handshake::{Connect, EstablishedKind, StoredSession};

/// What a client holds to resume its session: the session id and one or
/// two candidate OTPs, most recent first. The server's OTP is always one
/// of them.
#[derive(Debug, Clone)]
pub struct ClientTicket {
    session_id: SessionId,
    otps: Vec<Otp>,
}

impl ClientTicket {
    /// A ticket for a session that has not been established yet.
    pub fn new(session_id: SessionId) -> Self {
        Self {
            session_id,
            otps: Vec::new(),
        }
    }

    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// The candidates, most recent first.
    pub fn otps(&self) -> &[Otp] {
        &self.otps
    }

    /// What to ask for on a redial; `received` is the session's count,
    /// taken once the old connection is no longer fed to it.
    pub fn resume(&self, received: u64) -> Connect {
        Connect::Resume {
            session_id: self.session_id,
            otps: self.otps.clone(),
            received,
        }
    }

    /// Takes in an established connection: a new session's `otp_0`, or
    /// after `Resumed` the rotated OTP first and the matched one second
    /// (two-phase rotation: the server may still hold the matched one).
    pub fn adopt(&mut self, kind: &EstablishedKind) {
        match kind {
            EstablishedKind::New { otp } => self.otps = vec![otp.clone()],
            EstablishedKind::Resumed {
                matched, next_otp, ..
            } => {
                let matched_otp = self.otps.get(*matched).cloned();
                self.otps = std::iter::once(next_otp.clone())
                    .chain(matched_otp)
                    .collect();
            }
        }
    }
}

/// A verified resume of a [`ServerRecord`]: the generation it was verified
/// at. Its connection may commit its rotated OTP only while no later
/// resume has been verified ([`ServerRecord::commit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeGrant(u64);

/// The server's resumption record of one session.
#[derive(Debug, Clone)]
pub struct ServerRecord {
    otp: Otp,
    /// Successful resume verifications so far.
    generation: u64,
}

impl ServerRecord {
    /// The record of a new session: its connection's `otp_0`.
    pub fn new(otp: Otp) -> Self {
        Self { otp, generation: 0 }
    }

    /// What the handshake checks a resume against.
    pub fn stored(&self, received: u64) -> StoredSession {
        StoredSession {
            otp: self.otp.clone(),
            received,
        }
    }

    /// A resume was just verified against [`ServerRecord::stored`] (call it
    /// under the same lock as the lookup).
    pub fn verified(&mut self) -> ResumeGrant {
        self.generation += 1;
        ResumeGrant(self.generation)
    }

    /// The connection of `grant` carried its first record, so its client
    /// verified `Resumed` and holds `next_otp`: adopt it, unless a later
    /// resume was verified since (that attempt's client holds the old OTP
    /// and that attempt's rotation, and this commit would strand it).
    /// Returns whether the OTP changed.
    pub fn commit(&mut self, grant: ResumeGrant, next_otp: Otp) -> bool {
        if grant.0 != self.generation {
            return false;
        }
        self.otp = next_otp;
        true
    }
}

/// A resume whose `received` is below what the client has already
/// acknowledged (`acked`, the session's backup start) can only be an
/// attempt the client abandoned and that arrived late: a client's count
/// never goes back. The server drops it and waits for the real reconnect,
/// instead of calling the session lost.
pub fn is_stale_resume(peer_received: u64, acked: u64) -> bool {
    peer_received < acked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otp(b: u8) -> Otp {
        Otp::from_bytes([b; 32])
    }

    #[test]
    fn ticket_keeps_the_rotated_and_the_matched_otp() {
        let mut t = ClientTicket::new(SessionId([1; 16]));
        t.adopt(&EstablishedKind::New { otp: otp(1) });
        t.adopt(&EstablishedKind::Resumed {
            peer_received: 0,
            matched: 0,
            next_otp: otp(2),
        });
        assert_eq!(t.otps(), [otp(2), otp(1)]);
        // The server had not committed otp 2: it matched the second one.
        t.adopt(&EstablishedKind::Resumed {
            peer_received: 0,
            matched: 1,
            next_otp: otp(3),
        });
        assert_eq!(t.otps(), [otp(3), otp(1)]);
    }

    #[test]
    fn only_the_latest_verified_resume_commits() {
        let mut r = ServerRecord::new(otp(1));
        let early = r.verified();
        let late = r.verified();
        assert!(!r.commit(early, otp(2)));
        assert_eq!(r.stored(0).otp, otp(1));
        assert!(r.commit(late, otp(3)));
        assert_eq!(r.stored(0).otp, otp(3));
    }
}
