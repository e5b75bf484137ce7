//! Reading one request frame off a connection, bounded in memory and in time.
//!
//! The buffer grows only as bytes arrive (in [`READ_CHUNK`] steps), never to the length the
//! client claims, so a connection that announces a 100 MiB frame and sends ten bytes costs
//! ten bytes and one chunk. Two deadlines apply: the frame's first byte must arrive by the
//! caller's `first_byte_by` (the idle or SASL-login deadline), and once it has, the whole frame
//! must arrive within the request read timeout (so a slowloris client that trickles a frame is
//! closed).

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Duration, Instant, timeout_at};

/// The most the frame buffer grows by ahead of the bytes that arrived, while it is small.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// What reading a frame gave.
#[derive(Debug)]
pub(super) enum Frame {
    /// A whole frame body (without its length prefix).
    Body(Vec<u8>),
    /// The client closed the connection between frames.
    Closed,
    /// Nothing arrived by `first_byte_by`.
    Quiet,
    /// The connection must close: why, for the log.
    Bad(Bad),
}

/// Why a frame was not read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bad {
    /// The client closed the connection mid-frame, or the read failed.
    Truncated,
    /// A negative length prefix.
    NegativeSize(i32),
    /// A frame larger than allowed now.
    TooLarge { size: usize, max: usize },
    /// The frame started but did not complete within the request read timeout.
    TooSlow { received: usize, size: usize },
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Truncated => write!(f, "connection closed mid-request"),
            Bad::NegativeSize(size) => write!(f, "negative request size {size}"),
            Bad::TooLarge { size, max } => write!(
                f,
                "request of {size} bytes exceeds {max} (--max-request-bytes; 512 KiB before SASL authentication)"
            ),
            Bad::TooSlow { received, size } => write!(
                f,
                "request not received within --request-read-timeout ({received} of {size} bytes arrived)"
            ),
        }
    }
}

/// Which deadline closes a connection that sends nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deadline {
    /// `--connections-max-idle` after the previous frame.
    Idle,
    /// `--sasl-login-timeout` after connecting, while not authenticated.
    SaslLogin,
}

impl Deadline {
    /// The `reason` label of `ferry_broker_connections_timed_out_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Deadline::Idle => "idle",
            Deadline::SaslLogin => "sasl_login",
        }
    }
}

/// When the next frame's first byte is due, and which deadline that is: `max_idle` from
/// `now`, or `login_by` (set while the client has not authenticated) when that comes first.
pub(super) fn first_byte_due(
    now: Instant,
    max_idle: Duration,
    login_by: Option<Instant>,
) -> (Instant, Deadline) {
    let idle_by = now + max_idle;
    match login_by {
        Some(login_by) if login_by <= idle_by => (login_by, Deadline::SaslLogin),
        _ => (idle_by, Deadline::Idle),
    }
}

/// Reads one frame: its first byte by `first_byte_by`, the rest within `read_timeout` of it,
/// at most `max` bytes of body.
pub(super) async fn read_frame<R>(
    rd: &mut R,
    max: usize,
    first_byte_by: Instant,
    read_timeout: Duration,
) -> Frame
where
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match timeout_at(first_byte_by, rd.read(&mut len[..1])).await {
        Err(_) => return Frame::Quiet,
        Ok(Ok(0)) => return Frame::Closed,
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Frame::Bad(Bad::Truncated),
    }
    let deadline = Instant::now() + read_timeout;
    match timeout_at(deadline, rd.read_exact(&mut len[1..])).await {
        Err(_) => {
            return Frame::Bad(Bad::TooSlow {
                received: 0,
                size: 0,
            });
        }
        Ok(Err(_)) => return Frame::Bad(Bad::Truncated),
        Ok(Ok(_)) => {}
    }
    let size = i32::from_be_bytes(len);
    let Ok(size) = usize::try_from(size) else {
        return Frame::Bad(Bad::NegativeSize(size));
    };
    if size > max {
        return Frame::Bad(Bad::TooLarge { size, max });
    }
    let mut body = Vec::new();
    match timeout_at(deadline, read_body(rd, size, &mut body)).await {
        Err(_) => Frame::Bad(Bad::TooSlow {
            received: body.len(),
            size,
        }),
        Ok(Err(_)) => Frame::Bad(Bad::Truncated),
        Ok(Ok(())) => Frame::Body(body),
    }
}

/// Fills `body` up to `size` bytes. The buffer grows (by doubling, so at most twice what has
/// arrived, or [`READ_CHUNK`] at first) only when it is full, and reads go into its spare
/// capacity without zeroing it first.
async fn read_body<R>(rd: &mut R, size: usize, body: &mut Vec<u8>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
{
    while body.len() < size {
        let missing = size - body.len();
        if body.len() == body.capacity() {
            body.reserve(missing.min(READ_CHUNK.max(body.len())));
        }
        if rd.read_buf(&mut (&mut *body).limit(missing)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_earlier_deadline_applies() {
        let now = Instant::now();
        let idle = Duration::from_secs(600);
        let ten = Duration::from_secs(10);
        for (name, login_by, want) in [
            ("authenticated", None, (now + idle, Deadline::Idle)),
            (
                "logging in",
                Some(now + ten),
                (now + ten, Deadline::SaslLogin),
            ),
            (
                "login later than idle",
                Some(now + idle + ten),
                (now + idle, Deadline::Idle),
            ),
        ] {
            assert_eq!(first_byte_due(now, idle, login_by), want, "{name}");
        }
    }

    #[tokio::test]
    async fn a_claimed_frame_costs_only_what_arrives() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        client
            .write_all(&(100i32 << 20).to_be_bytes())
            .await
            .unwrap();
        client.write_all(&[7u8; 10]).await.unwrap();
        drop(client);
        let mut body = Vec::new();
        let mut len = [0u8; 4];
        server.read_exact(&mut len).await.unwrap();
        let read = read_body(&mut server, 100 << 20, &mut body).await;
        assert!(read.is_err(), "EOF mid-frame");
        assert_eq!(body, [7u8; 10]);
        assert!(body.capacity() <= READ_CHUNK, "{}", body.capacity());
    }

    #[tokio::test]
    async fn frames_sizes_and_deadlines() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        client.write_all(&3i32.to_be_bytes()).await.unwrap();
        client.write_all(b"abc").await.unwrap();
        client.write_all(&(-1i32).to_be_bytes()).await.unwrap();
        let soon = || Instant::now() + SECOND;
        let got = read_frame(&mut server, 10, soon(), SECOND).await;
        assert!(matches!(got, Frame::Body(ref b) if b == b"abc"), "{got:?}");
        let got = read_frame(&mut server, 10, soon(), SECOND).await;
        assert!(matches!(got, Frame::Bad(Bad::NegativeSize(-1))), "{got:?}");
        client.write_all(&11i32.to_be_bytes()).await.unwrap();
        let got = read_frame(&mut server, 10, soon(), SECOND).await;
        assert!(
            matches!(got, Frame::Bad(Bad::TooLarge { size: 11, max: 10 })),
            "{got:?}"
        );
        let quick = Duration::from_millis(50);
        let got = read_frame(&mut server, 10, Instant::now() + quick, SECOND).await;
        assert!(matches!(got, Frame::Quiet), "{got:?}");
        client.write_all(&5i32.to_be_bytes()).await.unwrap();
        client.write_all(b"ab").await.unwrap();
        let got = read_frame(&mut server, 10, soon(), quick).await;
        assert!(
            matches!(
                got,
                Frame::Bad(Bad::TooSlow {
                    received: 2,
                    size: 5
                })
            ),
            "{got:?}"
        );
        drop(client);
        let got = read_frame(&mut server, 10, soon(), SECOND).await;
        assert!(matches!(got, Frame::Closed), "{got:?}");
    }
}
