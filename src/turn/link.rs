//! A client of the relay as the rest of it sees one: the 5-tuple that names its allocation, and
//! the way back to it, a UDP socket or the writer of its TCP or TLS connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// How the client reaches the relay.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Streams frame ChannelData padded to 4 bytes.
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }
}

/// Client address, server address and transport: what an allocation belongs to (RFC 8656 §2).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
}

/// The way back to a client.
#[derive(Clone)]
pub enum Link {
    Udp { socket: Arc<UdpSocket>, to: SocketAddr },
    /// Frames for the connection's writer; full means the client is not reading, and a frame
    /// is dropped as the network would drop a datagram.
    Stream(mpsc::Sender<Vec<u8>>),
}

impl Link {
    /// An answer: on a stream it waits for room, as a client there never retransmits.
    pub async fn answer(&self, frame: Vec<u8>) {
        match self {
            Link::Udp { socket, to } => {
                let _ = socket.send_to(&frame, to).await;
            }
            Link::Stream(tx) => {
                let _ = tx.send(frame).await;
            }
        }
    }

    /// Relayed data: never waits on a client that is not reading.
    pub async fn relay(&self, frame: Vec<u8>) {
        match self {
            Link::Udp { socket, to } => {
                let _ = socket.send_to(&frame, to).await;
            }
            Link::Stream(tx) => {
                let _ = tx.try_send(frame);
            }
        }
    }
}
