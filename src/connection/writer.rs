//! The socket's sending half, in a task of its own behind a bounded queue. The connection actor
//! never waits on the socket: it queues a frame and goes on. Frames that queued up while the
//! socket was busy go out together (fed, then one flush). A client that does not read fills its
//! queue and keeps it full; the connection then closes it (1008), so one stuck browser cannot
//! grow the server's memory. A client that stops reading before its queue fills stalls a write
//! instead: after the write timeout the writer gives the socket up (1008) and tells the actor,
//! which ends the connection as any lost one. If the actor dies without closing (a crash, or a kill), the queue's sender is dropped
//! and the task closes the socket with 1011, so the client knows to reconnect.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::protocol::conn::{self, ConnId, ConnMsg, Inbound, Out};

/// Frames written between two flushes at most, so a long queue still reaches the wire in steps.
const BATCH: usize = 64;

/// Close code for a client too slow to read what it is sent (PROTOCOL.md section 7's 1008).
pub const SLOW_CONSUMER: u16 = 1008;

/// How the socket is to be closed: with this code, after what is queued or without it.
struct Closing {
    code: u16,
    reason: &'static str,
    drain: bool,
}

/// The actor's handle on the writer task.
pub struct SocketWriter {
    conn_id: ConnId,
    queue: mpsc::Sender<Out>,
    /// The welcome and the contact list, which go out before anything queued.
    first: Option<oneshot::Sender<Vec<Utf8Bytes>>>,
    /// Taken by the first close; afterwards nothing more is written.
    close: Option<oneshot::Sender<Closing>>,
    task: Option<JoinHandle<()>>,
}

/// The queue is full (a client that does not read) or the socket is gone.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteFailed {
    Full,
    Gone,
}

impl SocketWriter {
    /// Starts the writer and opens the connection's outbox (frames from the registry and call
    /// sessions come straight to its queue). It writes nothing until [`Self::send_first`] gave it
    /// the welcome, so the welcome is the first frame whatever was queued meanwhile. It pings
    /// the peer every `ping_every` (the reader watches for answers). A write that takes longer
    /// than `write_timeout` gives the socket up, and `actor` hears of it.
    pub fn spawn(conn_id: ConnId, sink: SplitSink<WebSocket, Message>, actor: ractor::ActorRef<ConnMsg>, timing: WriterTiming, queue_len: usize) -> Self {
        let (queue, rx) = mpsc::channel(queue_len.max(1));
        let (close, close_rx) = oneshot::channel();
        let (first, first_rx) = oneshot::channel();
        let task = tokio::spawn(run(sink, first_rx, rx, close_rx, actor, timing));
        conn::open_outbox(conn_id.clone(), queue.clone());
        SocketWriter { conn_id, queue, first: Some(first), close: Some(close), task: Some(task) }
    }

    /// The frames that open the conversation (10001, 10000), ahead of everything queued.
    pub fn send_first(&mut self, frames: Vec<Utf8Bytes>) {
        if let Some(first) = self.first.take() {
            let _ = first.send(frames);
        }
    }

    /// Queues a text frame. With the queue full, waits up to `stall` for room: a burst (a
    /// presence storm) drains in time; a client that does not read does not, and gets `Full`.
    pub async fn send_text(&self, text: Utf8Bytes, stall: Duration) -> Result<(), WriteFailed> {
        let out = match self.push_or_return(Out::Text(text)) {
            Ok(()) => return Ok(()),
            Err(Some(out)) => out,
            Err(None) => return Err(WriteFailed::Gone),
        };
        match tokio::time::timeout(stall, self.queue.send(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteFailed::Gone),
            Err(_) => Err(WriteFailed::Full),
        }
    }

    /// `Err(Some(out))` when the queue is full, `Err(None)` when the writer is gone.
    fn push_or_return(&self, out: Out) -> Result<(), Option<Out>> {
        if self.close.is_none() {
            return Err(None);
        }
        self.queue.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(out) => Some(out),
            mpsc::error::TrySendError::Closed(_) => None,
        })
    }

    /// Writes what is queued, then a close frame with `code`, and waits (bounded) until it left.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        self.end(Closing { code, reason, drain: true }).await;
    }

    /// Closes without writing what is queued (a client that stopped reading).
    pub async fn abandon(&mut self, code: u16, reason: &'static str) {
        self.end(Closing { code, reason, drain: false }).await;
    }

    async fn end(&mut self, closing: Closing) {
        conn::close_outbox(&self.conn_id);
        if let Some(close) = self.close.take() {
            let _ = close.send(closing);
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, task).await;
        }
    }
}

/// The longest a close may take to write, queue included.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The writer's clocks.
#[derive(Clone, Copy, Debug)]
pub struct WriterTiming {
    /// How often the peer is pinged.
    pub ping_every: Duration,
    /// A write (a batch, or a ping) not done within this long means a client that does not
    /// read: the socket is given up.
    pub write_timeout: Duration,
}

impl Drop for SocketWriter {
    fn drop(&mut self) {
        // However the connection ends (a kill included), nobody delivers to it any more.
        conn::close_outbox(&self.conn_id);
    }
}

async fn run(
    mut sink: SplitSink<WebSocket, Message>,
    first: oneshot::Receiver<Vec<Utf8Bytes>>,
    mut rx: mpsc::Receiver<Out>,
    mut close_rx: oneshot::Receiver<Closing>,
    actor: ractor::ActorRef<ConnMsg>,
    timing: WriterTiming,
) {
    // Nothing before the welcome; a connection closed (or gone) before it had one closes now.
    let opening = tokio::select! {
        biased;
        asked = &mut close_rx => Err(asked.ok()),
        frames = first => frames.map_err(|_| None),
    };
    let end = match opening {
        Ok(frames) => {
            let write = async {
                for f in frames {
                    sink.feed(Message::Text(f)).await?;
                }
                sink.flush().await
            };
            match tokio::time::timeout(timing.write_timeout, write).await {
                Ok(Ok(())) => write_until_closed(&mut sink, &mut rx, &mut close_rx, timing).await,
                Ok(Err(_)) => End::Failed,
                Err(_) => End::Stalled,
            }
        }
        Err(asked) => End::Asked(asked),
    };
    let close = match end {
        End::Asked(close) => close,
        // The actor hears first, so presence and the call move on while the close is tried.
        End::Stalled => {
            let _ = actor.cast(ConnMsg::Inbound(Inbound::StoppedReading));
            Some(Closing { code: SLOW_CONSUMER, reason: "too slow to read", drain: false })
        }
        // The peer is gone: nothing more can be written, not even a close.
        End::Failed => {
            let _ = actor.cast(ConnMsg::Inbound(Inbound::Closed));
            return;
        }
    };
    finish(sink, rx, close).await
}

/// How writing ended.
enum End {
    /// The actor asked to close (`Some`), or is gone (`None`).
    Asked(Option<Closing>),
    /// A write did not finish within the write timeout: the client does not read.
    Stalled,
    /// A write failed: the socket is gone.
    Failed,
}

/// Writes what is queued, in batches, and pings, until asked to close or until the actor is
/// gone; returns early if a write stalls or fails.
async fn write_until_closed(
    sink: &mut SplitSink<WebSocket, Message>,
    rx: &mut mpsc::Receiver<Out>,
    close_rx: &mut oneshot::Receiver<Closing>,
    timing: WriterTiming,
) -> End {
    // Pings come from here rather than from a timer task per connection.
    let ping_every = timing.ping_every;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        let first = tokio::select! {
            biased;
            asked = &mut *close_rx => return End::Asked(asked.ok()),
            out = rx.recv() => out,
            _ = ping.tick() => Some(Out::Ping),
        };
        let Some(first) = first else { return End::Asked(None) };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(out) => batch.push(out),
                Err(_) => break,
            }
        }
        let write = async {
            for out in batch {
                let message = match out {
                    Out::Text(t) => Message::Text(t),
                    Out::Ping => Message::Ping(Default::default()),
                };
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(timing.write_timeout, write).await {
            Ok(Ok(())) => {}
            // A client that has not read for the whole timeout is a slow consumer (PROTOCOL.md
            // section 7: 1008), whichever of this and the queue's stall check notices first.
            Err(_) => return End::Stalled,
            Ok(Err(_)) => return End::Failed,
        }
    }
}

/// Asked to close: what was queued before the close goes out first, unless the client is being
/// dropped for not reading. A crash or a kill (no close asked) is 1011.
async fn finish(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Out>, close: Option<Closing>) {
    let closing = close.unwrap_or(Closing { code: 1011, reason: "internal error", drain: false });
    metrics::counter!(crate::telemetry::names::WS_CLOSES, "code" => closing.code.to_string()).increment(1);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if closing.drain {
            while let Ok(out) = rx.try_recv() {
                if let Out::Text(t) = out {
                    let _ = sink.feed(Message::Text(t)).await;
                }
            }
        }
        let frame = Message::Close(Some(CloseFrame { code: closing.code, reason: closing.reason.into() }));
        let _ = sink.send(frame).await;
        let _ = sink.flush().await;
    })
    .await;
}
