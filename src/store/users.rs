//! Rows of `users`: accounts, their password hashes and whether they may log in.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::users;
use super::{Store, StoreError, StoreResult, now_ms, with_conn};

/// One account as stored.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub username_key: String,
    pub display_name: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// An account as the directory knows it: no password hash, which the contact list never needs.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub disabled: bool,
}

/// What registration stores; the username was validated by the caller.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
}

/// The key a username is unique under.
pub fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

impl Store {
    /// Creates an account; a taken username (in any case) is `StoreError::Conflict`.
    pub async fn create_user(&self, new: NewUser<'_>) -> StoreResult<UserRow> {
        let key = username_key(new.username);
        let row = (
            users::username.eq(new.username),
            users::username_key.eq(&key),
            users::display_name.eq(new.display_name),
            users::password_hash.eq(new.password_hash),
            users::disabled.eq(false),
            users::created_at.eq(now_ms()),
        );
        // Insert, then read back by the unique key: RETURNING is not on every backend.
        with_conn!(self, |conn| {
            diesel::insert_into(users::table).values(row).execute(conn).await?;
            let user = users::table
                .filter(users::username_key.eq(&key))
                .select(UserRow::as_select())
                .first(conn)
                .await?;
            Ok(user)
        })
    }

    /// The account with this username, matched without regard to case.
    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRow>> {
        let key = username_key(username);
        with_conn!(self, |conn| {
            Ok(users::table
                .filter(users::username_key.eq(&key))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// The account with this id.
    pub async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table.find(id).select(UserRow::as_select()).first(conn).await.optional()?)
        })
    }

    /// Every account, oldest first.
    pub async fn list_users(&self) -> StoreResult<Vec<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table.order(users::id.asc()).select(UserRow::as_select()).load(conn).await?)
        })
    }

    /// Every account without its password hash, oldest first: what the in-memory directory loads.
    pub async fn directory_accounts(&self) -> StoreResult<Vec<AccountRow>> {
        with_conn!(self, |conn| {
            Ok(users::table.order(users::id.asc()).select(AccountRow::as_select()).load(conn).await?)
        })
    }

    /// Accounts created since `after_id`, for the directory's periodic catch-up with accounts made
    /// by another process (`duet user add`, a load generator).
    pub async fn accounts_after(&self, after_id: i64) -> StoreResult<Vec<AccountRow>> {
        with_conn!(self, |conn| {
            Ok(users::table.filter(users::id.gt(after_id)).order(users::id.asc()).select(AccountRow::as_select()).load(conn).await?)
        })
    }

    /// Creates many accounts that share one password hash, each with one login session: how
    /// `duet loadtest` prepares thousands of users in seconds rather than hashing a password for
    /// each. `accounts` holds (username, session token hash); returns the ids in that order.
    pub async fn create_users_with_sessions(&self, accounts: &[(String, String)], password_hash: &str, session_ttl_ms: i64) -> StoreResult<Vec<i64>> {
        use super::schema::sessions;
        let now = now_ms();
        with_conn!(self, |conn| {
            use diesel_async::AsyncConnection;
            conn.transaction::<_, StoreError, _>(async |conn| {
            let mut ids = Vec::with_capacity(accounts.len());
            for (name, token_hash) in accounts {
                let key = username_key(name);
                let row = (
                    users::username.eq(name),
                    users::username_key.eq(&key),
                    users::display_name.eq(name),
                    users::password_hash.eq(password_hash),
                    users::disabled.eq(false),
                    users::created_at.eq(now),
                );
                diesel::insert_into(users::table).values(row).execute(conn).await?;
                let id: i64 = users::table.filter(users::username_key.eq(&key)).select(users::id).first(conn).await?;
                let session = (
                    sessions::token_hash.eq(token_hash),
                    sessions::user_id.eq(id),
                    sessions::created_at.eq(now),
                    sessions::last_used_at.eq(now),
                    sessions::expires_at.eq(now + session_ttl_ms),
                );
                diesel::insert_into(sessions::table).values(session).execute(conn).await?;
                ids.push(id);
            }
            Ok(ids)
            })
            .await
        })
    }

    /// Replaces an account's password hash.
    pub async fn set_password_hash(&self, id: i64, hash: &str) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let n = diesel::update(users::table.find(id)).set(users::password_hash.eq(hash)).execute(conn).await?;
            if n == 0 {
                return Err(StoreError::NotFound("user"));
            }
            Ok(())
        })
    }

    /// Enables or disables an account. A disabled account cannot log in.
    pub async fn set_disabled(&self, id: i64, disabled: bool) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let n = diesel::update(users::table.find(id)).set(users::disabled.eq(disabled)).execute(conn).await?;
            if n == 0 {
                return Err(StoreError::NotFound("user"));
            }
            Ok(())
        })
    }
}
