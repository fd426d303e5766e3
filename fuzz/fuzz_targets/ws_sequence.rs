//! A client's byte stream on a WebSocket after the upgrade, through what duet does with it:
//! frames read by tungstenite as duet's upgrade configures it, each text message through the
//! frame decode and envelope checks, and a failed read given its close code by duet's own rule
//! (`connection::reader::read_failure`). Whatever the bytes: no panic; a close code is 1002,
//! 1007 or 1009 with a reason a close frame can carry; after a violation the close can still be
//! written.
#![no_main]

use std::io::{Cursor, Read, Write};

use duet::connection::reader::{MAX_FRAME_BYTES, MAX_READ_BYTES, read_failure};
use duet::protocol::{ClientFrame, envelope};
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

/// The client's bytes in, the server's out.
struct Wire {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let config = WebSocketConfig::default().max_message_size(Some(MAX_READ_BYTES)).max_frame_size(Some(MAX_READ_BYTES));
    let mut ws = WebSocket::from_raw_socket(Wire { input: Cursor::new(data.to_vec()), output: Vec::new() }, Role::Server, Some(config));
    for _ in 0..10_000 {
        match ws.read() {
            Ok(Message::Text(text)) if text.len() <= MAX_FRAME_BYTES => {
                if let Ok(frame) = ClientFrame::decode(text.as_str()) {
                    let _ = envelope(&frame, 7);
                }
            }
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(e) => {
                if let Some((code, reason)) = read_failure(&e) {
                    assert!(matches!(code, 1002 | 1007 | 1009), "close code {code} for {e}");
                    assert!(reason.len() <= 123, "a close reason fits a control frame");
                    let _ = ws.close(Some(CloseFrame { code: code.into(), reason: reason.into() }));
                    let _ = ws.flush();
                }
                return;
            }
        }
    }
});
