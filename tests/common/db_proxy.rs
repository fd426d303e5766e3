//! A TCP proxy the test controls, put between duet and its database to stage an outage. `cut`
//! closes every open connection and refuses new ones (a database that went down); `stall` keeps
//! every socket open but carries no byte either way and accepts new ones into the void (a network
//! that drops packets). `restore` ends either: sockets held by a stall are closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const UP: u8 = 0;
const CUT: u8 = 1;
const STALL: u8 = 2;

pub struct DbProxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Bumped at each change of mode; every connection looks at the mode again when it changes.
    changes: watch::Sender<u64>,
}

/// Holds a socket without reading or writing until the mode changes again.
async fn hold(socket: TcpStream, mut changes: watch::Receiver<u64>) {
    let _ = changes.changed().await;
    drop(socket);
}

impl DbProxy {
    /// Listens on a random loopback port and forwards to `target`, on a thread of its own (the
    /// test thread blocks while a server starts, and the server's database traffic must flow).
    pub fn start(target: SocketAddr) -> DbProxy {
        let mode = Arc::new(AtomicU8::new(UP));
        let (changes, watch) = watch::channel(0u64);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let now = mode.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else { return };
                    let mut changes = watch.clone();
                    changes.borrow_and_update();
                    match now.load(Ordering::SeqCst) {
                        CUT => drop(client),
                        STALL => drop(tokio::spawn(hold(client, changes))),
                        _ => {
                            let now = now.clone();
                            tokio::spawn(async move {
                                let Ok(mut server) = TcpStream::connect(target).await else { return };
                                let mut client = client;
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                    _ = changes.changed() => {
                                        if now.load(Ordering::SeqCst) == STALL {
                                            changes.borrow_and_update();
                                            let _ = changes.changed().await;
                                        }
                                    }
                                }
                            });
                        }
                    }
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        DbProxy { addr, mode, changes }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.changes.send_modify(|n| *n += 1);
    }

    /// The database goes down: open connections are closed and new ones refused.
    pub fn cut(&self) {
        self.set(CUT);
    }

    /// The network drops everything: sockets stay open, nothing gets through.
    pub fn stall(&self) {
        self.set(STALL);
    }

    /// The database is back.
    pub fn restore(&self) {
        self.set(UP);
    }
}

/// The `host:port` of a database URL (`scheme://user:pw@host:port/db?...`).
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}
