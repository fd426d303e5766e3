//! The call recorder: one task that writes call records in the order they were made, off the path
//! of the frames a session forwards. A session hands it the row of each transition and goes on;
//! rows of one call that queue up meanwhile collapse into the newest, so a burst costs one write.
//! A write that fails is retried (the newest row of that call wins), and `flush` waits until
//! everything handed in has been written, which a graceful shutdown does before it exits.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};
use crate::store::calls::CallRow;

enum Job {
    /// A row, and who waits until it (or a newer row of its call) is written.
    Save(Box<CallRow>, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
}

/// A row waiting to be written, with those who wait for it.
struct Pending {
    row: CallRow,
    waiters: Vec<oneshot::Sender<()>>,
}

/// Cheap to clone; every clone feeds the one task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Job>,
}

/// Pause between attempts while the database refuses writes.
const RETRY_AFTER: Duration = Duration::from_millis(500);

impl Recorder {
    pub fn start(store: Store) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        Recorder { tx }
    }

    /// Queues a row to be written.
    pub fn save(&self, row: CallRow) {
        if self.tx.send(Job::Save(Box::new(row), None)).is_err() {
            tracing::error!("the call recorder is gone; a call record was not written");
        }
    }

    /// Queues a row and waits until it is written, at most `within`. A transition is on disk
    /// before the parties hear of it (a crash right after loses nothing they saw), unless the
    /// database is slow or down: then the row stays queued and is written when it can be,
    /// and the call goes on meanwhile.
    pub async fn save_and_wait(&self, row: CallRow, within: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Save(Box::new(row), Some(done))).is_err() {
            tracing::error!("the call recorder is gone; a call record was not written");
            return false;
        }
        matches!(tokio::time::timeout(within, wait).await, Ok(Ok(())))
    }

    /// Waits until every row queued before this call is written (or `within` has passed).
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(within, wait).await, Ok(Ok(())))
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    // Rows waiting to be written, newest per call, in the order their calls first queued.
    let mut pending: Vec<Pending> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        if pending.is_empty() {
            for f in flushes.drain(..) {
                let _ = f.send(());
            }
            match rx.recv().await {
                Some(job) => take(job, &mut pending, &mut flushes),
                None => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            take(job, &mut pending, &mut flushes);
        }
        let batch = std::mem::take(&mut pending);
        let rows: Vec<CallRow> = batch.iter().map(|p| p.row.clone()).collect();
        // One transaction for the whole batch: a burst of calls costs one commit.
        let mut failed = Vec::new();
        match store.save_calls(&rows).await {
            Ok(()) => {
                for p in batch {
                    for w in p.waiters {
                        let _ = w.send(());
                    }
                }
            }
            // The database is down or slow: keep every row and try again.
            Err(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(rows = rows.len(), error = %e, "writing call records; will retry");
                failed = batch;
            }
            // The database refused a row (a bug, not an outage): write the rows one by one, so
            // one bad row costs only itself and does not hold the others back forever.
            Err(e) => {
                tracing::error!(rows = rows.len(), error = %e, "writing call records; trying them one by one");
                for p in batch {
                    match store.save_calls(std::slice::from_ref(&p.row)).await {
                        Ok(()) => {
                            for w in p.waiters {
                                let _ = w.send(());
                            }
                        }
                        Err(StoreError::Unavailable(_)) => failed.push(p),
                        Err(e) => {
                            tracing::error!(call.id = %p.row.id, status = %p.row.status, error = %e, "a call record the database refuses was dropped");
                            metrics::counter!(crate::telemetry::names::CALL_RECORDS_DROPPED).increment(1);
                        }
                    }
                }
            }
        }
        metrics::gauge!(crate::telemetry::names::CALL_RECORDS_PENDING).set((pending.len() + failed.len()) as f64);
        if !failed.is_empty() {
            // Rows queued meanwhile are newer and replace the failed ones (keeping their waiters).
            for p in failed.into_iter().rev() {
                match pending.iter_mut().find(|q| q.row.id == p.row.id) {
                    Some(q) => q.waiters.extend(p.waiters),
                    None => pending.insert(0, p),
                }
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
}

fn take(job: Job, pending: &mut Vec<Pending>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match job {
        Job::Save(row, waiter) => match pending.iter_mut().find(|p| p.row.id == row.id) {
            Some(p) => {
                p.row = *row;
                p.waiters.extend(waiter);
            }
            None => pending.push(Pending { row: *row, waiters: waiter.into_iter().collect() }),
        },
        Job::Flush(done) => flushes.push(done),
    }
}
