//! Rows of `calls`: one per call, written at every transition and terminal once ended. Live rows
//! (`ringing`, `active`) are what a restarted server restores.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::calls;
use super::{Store, StoreError, StoreResult, with_conn};

/// Statuses of a call that is still live.
pub const LIVE: [&str; 2] = ["ringing", "active"];

/// One call as stored.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = calls, treat_none_as_null = true)]
pub struct CallRow {
    pub id: String,
    pub caller_id: i64,
    pub callee_id: i64,
    pub status: String,
    pub media_audio: bool,
    pub media_video: bool,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub ended_by: Option<i64>,
    pub caller_report: Option<String>,
    pub callee_report: Option<String>,
    /// Set when the call ends: `ok`, `no_answer`, `declined`, `busy`, `signaling_lost`, ...
    pub failure_class: Option<String>,
    /// `traceparent` of the call's root span.
    pub trace_parent: Option<String>,
}

impl Store {
    /// Writes the call as it now stands (update, or insert the first time).
    pub async fn save_call(&self, row: &CallRow) -> StoreResult<()> {
        self.save_calls(std::slice::from_ref(row)).await
    }

    /// Writes many calls in one transaction (the recorder's batches): a burst of transitions
    /// costs one commit, not one per row.
    pub async fn save_calls(&self, rows: &[CallRow]) -> StoreResult<()> {
        use diesel_async::AsyncConnection;
        with_conn!(self, |conn| {
            conn.transaction::<_, StoreError, _>(async |c| {
                for row in rows {
                    let updated = diesel::update(calls::table.find(&row.id)).set(row).execute(c).await?;
                    if updated == 0 {
                        diesel::insert_into(calls::table).values(row).execute(c).await?;
                    }
                }
                Ok(())
            })
            .await
        })
    }

    pub async fn call_by_id(&self, id: &str) -> StoreResult<Option<CallRow>> {
        with_conn!(self, |conn| {
            Ok(calls::table.find(id).select(CallRow::as_select()).first(conn).await.optional()?)
        })
    }

    /// A page of a user's calls, newest first, older than call `before` if given.
    pub async fn calls_of_user(&self, user_id: i64, before: Option<&CallRow>, limit: i64) -> StoreResult<Vec<CallRow>> {
        with_conn!(self, |conn| {
            let mut q = calls::table
                .filter(calls::caller_id.eq(user_id).or(calls::callee_id.eq(user_id)))
                .select(CallRow::as_select())
                .into_boxed();
            if let Some(b) = before {
                q = q.filter(calls::created_at.lt(b.created_at).or(calls::created_at.eq(b.created_at).and(calls::id.lt(b.id.clone()))));
            }
            Ok(q.order((calls::created_at.desc(), calls::id.desc())).limit(limit).load(conn).await?)
        })
    }

    /// Calls that were ringing or active when the server last stopped.
    pub async fn live_calls(&self) -> StoreResult<Vec<CallRow>> {
        with_conn!(self, |conn| {
            Ok(calls::table.filter(calls::status.eq_any(LIVE)).select(CallRow::as_select()).load(conn).await?)
        })
    }

    /// Keeps a party's `Call/Report` on a call that has already ended.
    pub async fn set_call_report(&self, id: &str, caller: bool, stats: &str) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let target = calls::table.find(id);
            if caller {
                diesel::update(target).set(calls::caller_report.eq(stats)).execute(conn).await?;
            } else {
                diesel::update(target).set(calls::callee_report.eq(stats)).execute(conn).await?;
            }
            Ok(())
        })
    }
}
