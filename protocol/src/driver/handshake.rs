//! Drives a sans-IO handshake machine ([`crate::handshake`]) over a
//! transport until it is established, fails, or runs out of time.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;

use super::transport::BoxTransport;
use crate::frame::{FrameCodec, FrameError, MAX_FRAME_PREAUTH};
use crate::handshake::{
    ClientHandshake, HandshakeError, HandshakeErrorKind, HandshakeEvent, ServerHandshake,
};

/// The two halves of a transport with the frame reader kept across phases,
/// so that records that arrive right behind the handshake are not lost.
pub struct FramedIo {
    pub reader: FramedRead<ReadHalf<BoxTransport>, FrameCodec>,
    pub writer: WriteHalf<BoxTransport>,
}

impl FramedIo {
    pub fn new(transport: BoxTransport) -> Self {
        let (r, w) = tokio::io::split(transport);
        Self {
            reader: FramedRead::new(r, FrameCodec::new(MAX_FRAME_PREAUTH)),
            writer: w,
        }
    }
}

/// Why a handshake over a transport did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    #[error("connection failed during the handshake: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the peer closed the connection during the handshake")]
    Closed,
    #[error("the handshake did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl DriveError {
    /// True when retrying the same handshake cannot help (wrong key, version
    /// mismatch, refused resume); false for network trouble.
    pub fn is_permanent(&self) -> bool {
        // Only answers the server gave on purpose. A protocol or crypto
        // failure can come from a stream damaged in transit (a black hole
        // that swallowed bytes) and is worth another attempt.
        match self {
            DriveError::Handshake(e) => matches!(
                e.kind(),
                HandshakeErrorKind::VersionMismatch
                    | HandshakeErrorKind::NotDistant
                    | HandshakeErrorKind::AuthFailed
                    | HandshakeErrorKind::SessionRejected
            ),
            _ => false,
        }
    }

    /// True when the server refused to resume the session.
    pub fn is_session_rejected(&self) -> bool {
        matches!(self, DriveError::Handshake(e) if e.kind() == HandshakeErrorKind::SessionRejected)
    }
}

/// The operations the driver needs from both handshake machines.
pub trait HandshakeMachine {
    fn handle_frame(&mut self, body: BytesMut, now: Instant) -> Result<(), HandshakeError>;
    fn poll_transmit(&mut self) -> Option<BytesMut>;
    fn poll_event(&mut self) -> Option<HandshakeEvent>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError>;
    fn max_frame_len(&self) -> usize;
    fn is_established(&self) -> bool;
    /// The peer sent something the frame layer refused (an oversize
    /// length): tell it why, if this side speaks first in such cases.
    fn abort(&mut self, text: &str);
}

macro_rules! impl_machine {
    ($t:ty, $abort:expr) => {
        impl HandshakeMachine for $t {
            fn handle_frame(&mut self, body: BytesMut, now: Instant) -> Result<(), HandshakeError> {
                <$t>::handle_frame(self, body, now)
            }
            fn poll_transmit(&mut self) -> Option<BytesMut> {
                <$t>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<HandshakeEvent> {
                <$t>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
                <$t>::handle_timeout(self, now)
            }
            fn max_frame_len(&self) -> usize {
                <$t>::max_frame_len(self)
            }
            fn is_established(&self) -> bool {
                <$t>::is_established(self)
            }
            fn abort(&mut self, text: &str) {
                let abort: fn(&mut $t, &str) = $abort;
                abort(self, text)
            }
        }
    };
}

// The server answers an oversize frame with a fatal error (PROTOCOL.md §1);
// the client never sends errors in phase 2 and just closes.
impl_machine!(ClientHandshake, |_, _| {});
impl_machine!(ServerHandshake, |m, text| m.abort(text));

/// How long a failing side keeps trying to deliver its final alert.
const ALERT_GRACE: Duration = Duration::from_millis(500);

/// Runs `machine` over `io` until it is established. `on_event` sees every
/// event (for the server: resume lookups) and may feed the machine.
pub async fn drive<M, F>(
    machine: &mut M,
    io: &mut FramedIo,
    timeout: Duration,
    mut on_event: F,
) -> Result<(), DriveError>
where
    M: HandshakeMachine,
    F: FnMut(&mut M, HandshakeEvent) -> Result<(), HandshakeError>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let result = drive_inner(machine, io, deadline, timeout, &mut on_event).await;
    if result.is_err() {
        // Best effort: the machine may have queued an alert or an error
        // message that tells the peer why we are leaving.
        let _ = tokio::time::timeout(ALERT_GRACE, flush_transmits(machine, io)).await;
    }
    result
}

async fn flush_transmits<M: HandshakeMachine>(
    machine: &mut M,
    io: &mut FramedIo,
) -> io::Result<()> {
    let mut wrote = false;
    while let Some(frame) = machine.poll_transmit() {
        io.writer.write_all(&frame).await?;
        wrote = true;
    }
    if wrote {
        io.writer.flush().await?;
    }
    Ok(())
}

async fn drive_inner<M, F>(
    machine: &mut M,
    io: &mut FramedIo,
    deadline: tokio::time::Instant,
    timeout: Duration,
    on_event: &mut F,
) -> Result<(), DriveError>
where
    M: HandshakeMachine,
    F: FnMut(&mut M, HandshakeEvent) -> Result<(), HandshakeError>,
{
    loop {
        while let Some(event) = machine.poll_event() {
            on_event(machine, event)?;
        }
        tokio::time::timeout_at(deadline, flush_transmits(machine, io))
            .await
            .map_err(|_| DriveError::Timeout(timeout))??;
        if machine.is_established() {
            return Ok(());
        }
        io.reader.decoder_mut().set_max_len(machine.max_frame_len());
        let machine_deadline = machine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(deadline);
        tokio::select! {
            frame = io.reader.next() => match frame {
                Some(Ok(body)) => machine.handle_frame(body, Instant::now())?,
                Some(Err(e @ FrameError::TooLarge { .. })) => {
                    machine.abort(&e.to_string());
                    return Err(e.into());
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(DriveError::Closed),
            },
            _ = tokio::time::sleep_until(machine_deadline.min(deadline)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(DriveError::Timeout(timeout));
                }
                machine.handle_timeout(Instant::now())?;
            }
        }
    }
}
