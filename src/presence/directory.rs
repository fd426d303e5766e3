//! The directory in memory: every account (without password hashes) and the contact graph of
//! PROTOCOL.md section 2.1. It is loaded once at start and kept current by registration, the
//! contact endpoints, calls and chat, so a connect never reads the users table.
//!
//! Up to `full_max` active accounts everyone is everyone's contact; above that, a user's contacts
//! are the users they added and the users they have met (called or chatted with), and a user's
//! presence goes only to those who have them as a contact (`watchers`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

use crate::protocol::{Status, User};
use crate::store::contacts::ContactRow;
use crate::store::{AccountRow, Store, StoreResult};

/// One account, as the contact list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub disabled: bool,
}

/// One edge of the contact graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Edge {
    added: bool,
    met: bool,
}

#[derive(Default)]
struct Inner {
    /// By id, so the full list comes out oldest first.
    accounts: BTreeMap<i64, Account>,
    /// Accounts not disabled: decides whether the directory is "full" (everyone sees everyone).
    active: usize,
    /// owner -> contact -> how they became one.
    contacts: HashMap<i64, HashMap<i64, Edge>>,
    /// contact -> owners: who receives a user's presence.
    watchers: HashMap<i64, HashSet<i64>>,
}

/// Who hears about a user's presence.
pub enum Audience {
    /// The directory is small: every online user.
    Everyone,
    /// These users (online or not) have the user as a contact.
    Only(Vec<i64>),
}

pub struct Directory {
    inner: RwLock<Inner>,
    full_max: usize,
    /// One catch-up with the store at a time: a storm of unknown users costs one query.
    catching_up: tokio::sync::Mutex<()>,
}

impl Directory {
    /// An empty directory, for tests and for a server whose store could not be read yet.
    pub fn new(full_max: usize) -> Directory {
        Directory { inner: RwLock::new(Inner::default()), full_max, catching_up: tokio::sync::Mutex::new(()) }
    }

    /// Loads every account and the contact graph.
    pub async fn load(store: &Store, full_max: usize) -> StoreResult<Directory> {
        let dir = Directory::new(full_max);
        let accounts = store.directory_accounts().await?;
        let edges = store.all_contacts().await?;
        {
            let mut inner = dir.write();
            for a in accounts {
                inner.upsert(a);
            }
            for e in edges {
                inner.link(e);
            }
        }
        Ok(dir)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an account or brings it up to date (registration, enable/disable, a fresh row seen
    /// at login). Returns whether anything changed.
    pub fn upsert(&self, row: AccountRow) -> bool {
        let unchanged = self.read().accounts.get(&row.id).is_some_and(|a| a.username == row.username && a.display_name == row.display_name && a.disabled == row.disabled);
        if unchanged {
            return false;
        }
        self.write().upsert(row);
        true
    }

    /// Makes sure account `id` is known: an account this server never saw made (by `duet user
    /// add`, or a load generator writing the database) is loaded, with every other account made
    /// since the newest one known, in one query however many such users arrive at once.
    pub async fn know(&self, id: i64, store: &Store) {
        if self.read().accounts.contains_key(&id) {
            return;
        }
        let _one = self.catching_up.lock().await;
        if self.read().accounts.contains_key(&id) {
            return;
        }
        match store.accounts_after(self.last_id()).await {
            Ok(rows) => {
                let n = rows.len();
                let mut inner = self.write();
                for r in rows {
                    inner.upsert(r);
                }
                tracing::info!(accounts = n, "directory caught up with accounts made elsewhere");
            }
            Err(e) => tracing::warn!(error = %e, "catching the directory up with the store"),
        }
    }

    /// The highest account id known, for catching up with accounts made by other processes.
    pub fn last_id(&self) -> i64 {
        self.read().accounts.keys().next_back().copied().unwrap_or(0)
    }

    /// Whether everyone is everyone's contact right now.
    pub fn is_full(&self) -> bool {
        self.read().active <= self.full_max
    }

    /// An active account, if there is one with this id.
    pub fn active(&self, id: i64) -> Option<Account> {
        self.read().accounts.get(&id).filter(|a| !a.disabled).cloned()
    }

    /// `owner` adds `contact` by hand.
    pub fn add(&self, owner: i64, contact: i64) {
        self.write().link(ContactRow { user_id: owner, contact_id: contact, added: true, met: false });
    }

    /// Takes back a hand-made contact; whether `owner` still has `contact` afterwards (met).
    pub fn remove(&self, owner: i64, contact: i64) -> bool {
        let mut inner = self.write();
        let Some(edges) = inner.contacts.get_mut(&owner) else { return false };
        let Some(edge) = edges.get_mut(&contact) else { return false };
        edge.added = false;
        if edge.met {
            return true;
        }
        edges.remove(&contact);
        if let Some(w) = inner.watchers.get_mut(&contact) {
            w.remove(&owner);
        }
        false
    }

    /// Whether `a` and `b` are already each other's contacts by having met.
    pub fn have_met(&self, a: i64, b: i64) -> bool {
        let inner = self.read();
        let met = |x: i64, y: i64| inner.contacts.get(&x).and_then(|e| e.get(&y)).is_some_and(|e| e.met);
        met(a, b) && met(b, a)
    }

    /// `a` and `b` called or chatted: contacts both ways from now on. Returns whether `a` newly
    /// has `b`, and whether `b` newly has `a`.
    pub fn meet(&self, a: i64, b: i64) -> (bool, bool) {
        let mut inner = self.write();
        let had = |inner: &Inner, x: i64, y: i64| inner.contacts.get(&x).is_some_and(|e| e.contains_key(&y));
        let fresh = (!had(&inner, a, b), !had(&inner, b, a));
        inner.link(ContactRow { user_id: a, contact_id: b, added: false, met: true });
        inner.link(ContactRow { user_id: b, contact_id: a, added: false, met: true });
        fresh
    }

    /// Whether `owner` has `contact` as a contact (by hand or by having met).
    pub fn has(&self, owner: i64, contact: i64) -> bool {
        self.read().contacts.get(&owner).is_some_and(|e| e.contains_key(&contact))
    }

    /// Who hears about `user`'s presence.
    pub fn audience(&self, user: i64) -> Audience {
        if self.is_full() {
            return Audience::Everyone;
        }
        Audience::Only(self.read().watchers.get(&user).map(|w| w.iter().copied().collect()).unwrap_or_default())
    }

    /// The contact list of `user` with presence from `status`: every active account while the
    /// directory is full, else the user themself and their contacts; oldest account first.
    pub fn contact_list(&self, user: i64, status: impl Fn(i64) -> Status) -> Vec<User> {
        let full = self.is_full();
        let inner = self.read();
        let wire = |id: i64, a: &Account| User { id, username: a.username.clone(), display_name: a.display_name.clone(), status: status(id) };
        if full {
            return inner.accounts.iter().filter(|(_, a)| !a.disabled).map(|(id, a)| wire(*id, a)).collect();
        }
        let mut ids: Vec<i64> = inner.contacts.get(&user).map(|e| e.keys().copied().collect()).unwrap_or_default();
        ids.push(user);
        ids.sort_unstable();
        ids.dedup();
        ids.iter().filter_map(|id| inner.accounts.get(id).filter(|a| !a.disabled).map(|a| wire(*id, a))).collect()
    }

    /// Up to `limit` active accounts whose username or display name contains `q`, without
    /// regard to case, oldest first.
    pub fn search(&self, q: &str, limit: usize, status: impl Fn(i64) -> Status) -> Vec<User> {
        let needle = q.to_lowercase();
        let inner = self.read();
        inner
            .accounts
            .iter()
            .filter(|(_, a)| !a.disabled && (a.username.to_lowercase().contains(&needle) || a.display_name.to_lowercase().contains(&needle)))
            .take(limit)
            .map(|(id, a)| User { id: *id, username: a.username.clone(), display_name: a.display_name.clone(), status: status(*id) })
            .collect()
    }
}

impl Inner {
    fn upsert(&mut self, row: AccountRow) {
        let account = Account { username: row.username, display_name: row.display_name, disabled: row.disabled };
        let was_active = self.accounts.get(&row.id).map(|a| !a.disabled);
        let now_active = !account.disabled;
        self.accounts.insert(row.id, account);
        match (was_active, now_active) {
            (None | Some(false), true) => self.active += 1,
            (Some(true), false) => self.active = self.active.saturating_sub(1),
            _ => {}
        }
    }

    fn link(&mut self, e: ContactRow) {
        if e.user_id == e.contact_id {
            return;
        }
        let edge = self.contacts.entry(e.user_id).or_default().entry(e.contact_id).or_default();
        edge.added |= e.added;
        edge.met |= e.met;
        self.watchers.entry(e.contact_id).or_default().insert(e.user_id);
    }
}

/// Catches up every 30 s with accounts created or changed by another process (`duet user add`,
/// `disable`, a load generator seeding the database), which this server's handlers never saw.
pub async fn keep_current(dir: std::sync::Arc<Directory>, store: Store) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    every.tick().await;
    loop {
        every.tick().await;
        match store.directory_accounts().await {
            Ok(rows) => {
                let changed = rows.into_iter().filter(|r| dir.upsert(r.clone())).count();
                if changed > 0 {
                    tracing::info!(accounts = changed, "directory caught up with accounts changed elsewhere");
                }
            }
            Err(e) => tracing::warn!(error = %e, "refreshing the directory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, name: &str) -> AccountRow {
        AccountRow { id, username: name.into(), display_name: name.to_uppercase(), disabled: false }
    }

    #[test]
    fn small_directories_are_everyones_and_large_ones_are_scoped() {
        let dir = Directory::new(2);
        dir.upsert(row(1, "ann"));
        dir.upsert(row(2, "bob"));
        let online = |_| Status::Available;
        assert!(dir.is_full());
        assert_eq!(dir.contact_list(1, online).len(), 2);
        dir.upsert(row(3, "cat"));
        assert!(!dir.is_full());
        assert_eq!(dir.contact_list(1, online).iter().map(|u| u.id).collect::<Vec<_>>(), vec![1]);
        dir.add(1, 3);
        assert_eq!(dir.contact_list(1, online).iter().map(|u| u.id).collect::<Vec<_>>(), vec![1, 3]);
        // Adding is one way: 3 hears of 1 only if 3 has 1.
        assert!(matches!(dir.audience(3), Audience::Only(w) if w == vec![1]));
        assert!(matches!(dir.audience(1), Audience::Only(w) if w.is_empty()));
        dir.meet(1, 2);
        assert!(dir.have_met(2, 1));
        assert!(!dir.remove(1, 3));
        dir.add(1, 2);
        assert!(dir.remove(1, 2), "met contacts stay");
        assert_eq!(dir.contact_list(1, online).iter().map(|u| u.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(dir.search("C", 10, online).iter().map(|u| u.id).collect::<Vec<_>>(), vec![3]);
        // A disabled account leaves lists and no longer counts toward "full".
        dir.upsert(AccountRow { disabled: true, ..row(3, "cat") });
        assert!(dir.is_full());
        assert!(dir.active(3).is_none());
        assert!(dir.search("cat", 10, online).is_empty());
    }
}
