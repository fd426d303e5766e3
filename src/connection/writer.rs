//! The socket's sending half, in a task of its own behind a bounded queue. The connection actor
//! never waits on the socket: it queues a frame and goes on. Frames that queued up while the
//! socket was busy go out together (fed, then one flush). A client that does not read fills its
//! queue; the connection then closes it (1008), so one stuck browser cannot grow the server's
//! memory. If the actor dies without closing (a crash, or a kill), the queue's sender is dropped
//! and the task closes the socket with 1011, so the client knows to reconnect.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A write that takes longer than this means a peer that does not read: drop it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

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

enum Out {
    Text(Utf8Bytes),
    Ping,
}

/// The actor's handle on the writer task.
pub struct SocketWriter {
    queue: mpsc::Sender<Out>,
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
    pub fn spawn(sink: SplitSink<WebSocket, Message>, queue_len: usize) -> Self {
        let (queue, rx) = mpsc::channel(queue_len.max(1));
        let (close, close_rx) = oneshot::channel();
        let task = tokio::spawn(run(sink, rx, close_rx));
        SocketWriter { queue, close: Some(close), task: Some(task) }
    }

    fn push(&self, out: Out) -> Result<(), WriteFailed> {
        if self.close.is_none() {
            return Err(WriteFailed::Gone);
        }
        self.queue.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteFailed::Full,
            mpsc::error::TrySendError::Closed(_) => WriteFailed::Gone,
        })
    }

    /// Queues a text frame.
    pub fn send_text(&self, text: Utf8Bytes) -> Result<(), WriteFailed> {
        self.push(Out::Text(text))
    }

    pub fn ping(&self) -> Result<(), WriteFailed> {
        self.push(Out::Ping)
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

async fn run(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Out>, mut close_rx: oneshot::Receiver<Closing>) {
    let close = loop {
        let first = tokio::select! {
            biased;
            asked = &mut close_rx => break asked.ok(),
            out = rx.recv() => out,
        };
        let Some(first) = first else { break None };
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
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            // The peer is gone or does not read: nothing more can be written.
            _ => return,
        }
    };
    // Asked to close: what was queued before the close goes out first, unless the client is
    // being dropped for not reading. A crash or a kill (no close asked) is 1011.
    let closing = close.unwrap_or(Closing { code: 1011, reason: "internal error", drain: false });
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
