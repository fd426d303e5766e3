//! The socket's sending half, owned by the connection actor. If the actor dies without closing
//! it (a crash, or a kill), dropping the writer still closes the socket with 1011, so the client
//! knows to reconnect.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;

/// A write that takes longer than this means a peer that does not read: drop it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SocketWriter {
    sink: Option<SplitSink<WebSocket, Message>>,
}

/// The socket is gone or stuck; the connection should end.
#[derive(Debug)]
pub struct WriteFailed;

impl SocketWriter {
    pub fn new(sink: SplitSink<WebSocket, Message>) -> Self {
        SocketWriter { sink: Some(sink) }
    }

    pub async fn send(&mut self, message: Message) -> Result<(), WriteFailed> {
        let sink = self.sink.as_mut().ok_or(WriteFailed)?;
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(WriteFailed),
        }
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), WriteFailed> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a close frame (best effort) and gives up the sink.
    pub async fn close(&mut self, code: u16, reason: &str) {
        if let Some(mut sink) = self.sink.take() {
            let frame = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = sink.send(frame).await;
                let _ = sink.flush().await;
            })
            .await;
        }
    }
}

impl Drop for SocketWriter {
    fn drop(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let frame = Message::Close(Some(CloseFrame { code: 1011, reason: "internal error".into() }));
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(frame)).await;
                });
            }
        }
    }
}
