//! Rows of `server_settings`: values the server generates once and must keep across restarts.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::server_settings;
use super::{Store, StoreError, StoreResult, with_conn};

impl Store {
    /// The value kept under `name`, or `make()` stored under it now. Two servers racing on one
    /// database agree: the first insert wins and both read it back.
    pub async fn setting_or_init(&self, name: &str, make: impl FnOnce() -> String) -> StoreResult<String> {
        let value = make();
        with_conn!(self, |conn| {
            let inserted = diesel::insert_into(server_settings::table)
                .values((server_settings::name.eq(name), server_settings::value.eq(&value)))
                .execute(conn)
                .await;
            match inserted.map_err(StoreError::from) {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            Ok(server_settings::table.find(name).select(server_settings::value).first(conn).await?)
        })
    }
}
