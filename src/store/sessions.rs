//! Rows of `sessions`: server-side logins. The row holds the token's hash, so a stolen database
//! does not hand out live sessions, and a restart logs nobody out.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{sessions, users};
use super::{Store, StoreResult, UserRow, with_conn};

/// One login session as stored.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub token_hash: String,
    pub user_id: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session for `user_id`, valid until `expires_at`.
    pub async fn create_session(&self, token_hash: &str, user_id: i64, now: i64, expires_at: i64) -> StoreResult<()> {
        let row = (
            sessions::token_hash.eq(token_hash),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now),
            sessions::last_used_at.eq(now),
            sessions::expires_at.eq(expires_at),
        );
        with_conn!(self, |conn| {
            diesel::insert_into(sessions::table).values(row).execute(conn).await?;
            Ok(())
        })
    }

    /// The unexpired session with this token hash and its user.
    pub async fn session_with_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<(SessionRow, UserRow)>> {
        with_conn!(self, |conn| {
            Ok(sessions::table
                .inner_join(users::table)
                .filter(sessions::token_hash.eq(token_hash))
                .filter(sessions::expires_at.gt(now))
                .select((SessionRow::as_select(), UserRow::as_select()))
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Marks a session used now and slides its expiry.
    pub async fn touch_session(&self, id: i64, now: i64, expires_at: i64) -> StoreResult<()> {
        with_conn!(self, |conn| {
            diesel::update(sessions::table.find(id))
                .set((sessions::last_used_at.eq(now), sessions::expires_at.eq(expires_at)))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// Revokes one session. Returns whether it existed.
    pub async fn delete_session(&self, id: i64) -> StoreResult<bool> {
        with_conn!(self, |conn| {
            Ok(diesel::delete(sessions::table.find(id)).execute(conn).await? > 0)
        })
    }

    /// Revokes every session of a user (password change, account disabled).
    pub async fn delete_user_sessions(&self, user_id: i64) -> StoreResult<usize> {
        with_conn!(self, |conn| {
            Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn).await?)
        })
    }

    /// Removes sessions that expired before `now`; returns how many.
    pub async fn purge_expired_sessions(&self, now: i64) -> StoreResult<usize> {
        with_conn!(self, |conn| {
            Ok(diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn).await?)
        })
    }
}
