//! Rows of `contacts`: who is on whose contact list above `DUET_DIRECTORY_FULL_MAX` accounts
//! (PROTOCOL.md section 2.1). `added` is one way and may be taken back; `met` is written both ways
//! when two people call or chat, and stays.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::contacts;
use super::{Store, StoreError, StoreResult, now_ms, with_conn};

/// One edge of the contact graph: `user_id` has `contact_id` as a contact.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = contacts)]
pub struct ContactRow {
    pub user_id: i64,
    pub contact_id: i64,
    pub added: bool,
    pub met: bool,
}

impl Store {
    /// The whole contact graph, loaded once at start into the in-memory directory.
    pub async fn all_contacts(&self) -> StoreResult<Vec<ContactRow>> {
        with_conn!(self, |conn| Ok(contacts::table.select(ContactRow::as_select()).load(conn).await?))
    }

    /// `user_id` adds `contact_id` by hand.
    pub async fn add_contact(&self, user_id: i64, contact_id: i64) -> StoreResult<()> {
        let row = (
            contacts::user_id.eq(user_id),
            contacts::contact_id.eq(contact_id),
            contacts::added.eq(true),
            contacts::met.eq(false),
            contacts::created_at.eq(now_ms()),
        );
        // Update, else insert, else (someone inserted meanwhile) update: an upsert in words every
        // backend has (MySQL spells ON CONFLICT differently).
        with_conn!(self, |conn| {
            let edge = contacts::table.filter(contacts::user_id.eq(user_id)).filter(contacts::contact_id.eq(contact_id));
            if diesel::update(edge).set(contacts::added.eq(true)).execute(conn).await? > 0 {
                return Ok(());
            }
            match diesel::insert_into(contacts::table).values(row).execute(conn).await.map_err(StoreError::from) {
                Ok(_) => Ok(()),
                Err(StoreError::Conflict(_)) => {
                    diesel::update(edge).set(contacts::added.eq(true)).execute(conn).await?;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Takes back a hand-made contact; one who was met stays.
    pub async fn remove_contact(&self, user_id: i64, contact_id: i64) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let edge = contacts::table.filter(contacts::user_id.eq(user_id)).filter(contacts::contact_id.eq(contact_id));
            diesel::update(edge).set(contacts::added.eq(false)).execute(conn).await?;
            diesel::delete(edge.filter(contacts::met.eq(false))).execute(conn).await?;
            Ok(())
        })
    }

    /// `a` and `b` called or chatted: each is the other's contact from now on.
    pub async fn mark_met(&self, a: i64, b: i64) -> StoreResult<()> {
        let now = now_ms();
        with_conn!(self, |conn| {
            for (x, y) in [(a, b), (b, a)] {
                let edge = contacts::table.filter(contacts::user_id.eq(x)).filter(contacts::contact_id.eq(y));
                if diesel::update(edge).set(contacts::met.eq(true)).execute(conn).await? > 0 {
                    continue;
                }
                let row = (
                    contacts::user_id.eq(x),
                    contacts::contact_id.eq(y),
                    contacts::added.eq(false),
                    contacts::met.eq(true),
                    contacts::created_at.eq(now),
                );
                match diesel::insert_into(contacts::table).values(row).execute(conn).await.map_err(StoreError::from) {
                    Ok(_) => {}
                    Err(StoreError::Conflict(_)) => {
                        diesel::update(edge).set(contacts::met.eq(true)).execute(conn).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}
