//! Rows of `messages`: one-to-one and lobby chat, with a read mark for one-to-one messages.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::messages;
use super::{InsertedId, Store, StoreResult, last_insert_id_sql, with_conn};

/// The lobby's `to_id`.
pub const LOBBY: i64 = 0;

/// One chat message as stored.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: i64,
    pub from_id: i64,
    pub to_id: i64,
    pub body: String,
    pub sent_at: i64,
    pub read_at: Option<i64>,
}

impl Store {
    /// Stores a message and returns it with its id.
    pub async fn insert_message(&self, from_id: i64, to_id: i64, body: &str, sent_at: i64) -> StoreResult<MessageRow> {
        let row = (messages::from_id.eq(from_id), messages::to_id.eq(to_id), messages::body.eq(body), messages::sent_at.eq(sent_at));
        with_conn!(self, |conn| {
            // Insert, then ask the connection for the id it made: MySQL has no RETURNING.
            diesel::insert_into(messages::table).values(row).execute(conn).await?;
            let id = diesel::sql_query(last_insert_id_sql(conn)).get_result::<InsertedId>(conn).await?.id;
            Ok(MessageRow { id, from_id, to_id, body: body.to_string(), sent_at, read_at: None })
        })
    }

    /// A page of the conversation between `me` and `with` (or of the lobby when `with` is 0),
    /// newest first, older than message `before` if given.
    pub async fn conversation(&self, me: i64, with: i64, before: Option<i64>, limit: i64) -> StoreResult<Vec<MessageRow>> {
        with_conn!(self, |conn| {
            let mut q = messages::table.select(MessageRow::as_select()).into_boxed();
            q = if with == LOBBY {
                q.filter(messages::to_id.eq(LOBBY))
            } else {
                q.filter(
                    messages::from_id.eq(me).and(messages::to_id.eq(with)).or(messages::from_id.eq(with).and(messages::to_id.eq(me))),
                )
            };
            if let Some(before) = before {
                q = q.filter(messages::id.lt(before));
            }
            Ok(q.order(messages::id.desc()).limit(limit).load(conn).await?)
        })
    }

    /// Messages `from` has sent since `since` (ms), for the daily cap on stored chat.
    pub async fn messages_sent_since(&self, from: i64, since: i64) -> StoreResult<i64> {
        with_conn!(self, |conn| {
            Ok(messages::table.filter(messages::from_id.eq(from)).filter(messages::sent_at.ge(since)).count().get_result::<i64>(conn).await?)
        })
    }

    /// Marks every unread message from `from` to `me` read; returns how many.
    pub async fn mark_read(&self, me: i64, from: i64, now: i64) -> StoreResult<usize> {
        with_conn!(self, |conn| {
            Ok(diesel::update(
                messages::table.filter(messages::to_id.eq(me)).filter(messages::from_id.eq(from)).filter(messages::read_at.is_null()),
            )
            .set(messages::read_at.eq(now))
            .execute(conn)
            .await?)
        })
    }

    /// Unread one-to-one messages to `me`, counted per sender.
    pub async fn unread_counts(&self, me: i64) -> StoreResult<Vec<(i64, i64)>> {
        with_conn!(self, |conn| {
            Ok(messages::table
                .filter(messages::to_id.eq(me))
                .filter(messages::read_at.is_null())
                .group_by(messages::from_id)
                .select((messages::from_id, diesel::dsl::count_star()))
                .load(conn)
                .await?)
        })
    }
}
