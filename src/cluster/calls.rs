//! Calls across nodes. A call lives on one node, its owner (the caller's node when it is made, a
//! surviving node after its owner died); a party on another node has its events forwarded there,
//! and the owner's frames reach that party's connection through its node's channel.
//!
//! Redis holds the cluster's one view of who is in which call: `{p}:calls` (hash, call id ->
//! [`Entry`]) and `{p}:in-call` (hash, user id -> call id). Scripts change both atomically and
//! announce the change on the bus in the same step, so "busy", "already in a call" and glare are
//! decided once for the whole cluster, and every node's copy of the directory ([`Directory`])
//! hears of a call before any frame of it.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A call in the cluster's directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub owner: String,
    pub caller: i64,
    pub callee: i64,
}

/// What claiming a new call's two parties found.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// Both were free; the call is in the directory, owned by this node.
    Claimed,
    /// The caller is in this call already.
    CallerIn(String),
    /// The callee is in this call.
    CalleeIn(String),
}

/// Claims both parties for a new call, or names the call one of them is in. A claim that points
/// at a call no longer in the directory is stale and does not count.
/// KEYS: in-call, calls, bus. ARGV: call id, caller, callee, entry, announcement.
pub const CLAIM: &str = r"
local a = redis.call('HGET', KEYS[1], ARGV[2])
if a and redis.call('HEXISTS', KEYS[2], a) == 1 then return {1, a} end
local b = redis.call('HGET', KEYS[1], ARGV[3])
if b and redis.call('HEXISTS', KEYS[2], b) == 1 then return {2, b} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('PUBLISH', KEYS[3], ARGV[5])
return {0, ''}
";

/// Takes a call out of the directory, if this node still owns it.
/// KEYS: in-call, calls, bus. ARGV: call id, caller, callee, announcement, owner.
pub const RELEASE: &str = r"
local e = redis.call('HGET', KEYS[2], ARGV[1])
if e and cjson.decode(e).owner ~= ARGV[5] then return 0 end
for _, user in ipairs({ARGV[2], ARGV[3]}) do
  if redis.call('HGET', KEYS[1], user) == ARGV[1] then redis.call('HDEL', KEYS[1], user) end
end
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then redis.call('PUBLISH', KEYS[3], ARGV[4]) end
return 1
";

/// Takes over a call whose owner stopped heartbeating (or, with `absent` set, a live call the
/// directory does not hold: Redis lost it). Announced as adopted, so every node rebinds its
/// connections of the parties to the new owner.
/// KEYS: in-call, calls, bus, nodes. ARGV: call id, caller, callee, entry, announcement, this
/// node, heartbeats since (ms), absent ('1' or '0').
pub const ADOPT: &str = r"
local e = redis.call('HGET', KEYS[2], ARGV[1])
if e then
  local owner = cjson.decode(e).owner
  if owner ~= ARGV[6] then
    local beat = redis.call('ZSCORE', KEYS[4], owner)
    if beat and tonumber(beat) >= tonumber(ARGV[7]) then return 0 end
  end
elseif ARGV[8] ~= '1' then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1], ARGV[3], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[5])
return 1
";

/// Writes a call this node holds into the directory again (after Redis came back), unless
/// another node has taken it over meanwhile (0).
/// KEYS: in-call, calls. ARGV: call id, caller, callee, entry, this node.
pub const REASSERT: &str = r"
local e = redis.call('HGET', KEYS[2], ARGV[1])
if e and cjson.decode(e).owner ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1], ARGV[3], ARGV[1])
return 1
";

/// This node's copy of the directory: which node owns each call, and each user's call.
#[derive(Default)]
pub struct Directory {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    calls: HashMap<String, Entry>,
    by_user: HashMap<i64, String>,
}

impl Directory {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn up(&self, call_id: &str, entry: Entry) {
        let mut t = self.tables();
        t.by_user.insert(entry.caller, call_id.to_string());
        t.by_user.insert(entry.callee, call_id.to_string());
        t.calls.insert(call_id.to_string(), entry);
    }

    pub fn down(&self, call_id: &str) {
        let mut t = self.tables();
        if let Some(e) = t.calls.remove(call_id) {
            for user in [e.caller, e.callee] {
                if t.by_user.get(&user).is_some_and(|c| c == call_id) {
                    t.by_user.remove(&user);
                }
            }
        }
    }

    /// The whole directory, as read from Redis after a (re)connect.
    pub fn replace(&self, all: HashMap<String, Entry>) {
        let mut t = self.tables();
        t.by_user = all.iter().flat_map(|(id, e)| [(e.caller, id.clone()), (e.callee, id.clone())]).collect();
        t.calls = all;
    }

    pub fn get(&self, call_id: &str) -> Option<Entry> {
        self.tables().calls.get(call_id).cloned()
    }

    /// The call a user is in, and its entry.
    pub fn of_user(&self, user_id: i64) -> Option<(String, Entry)> {
        let t = self.tables();
        let id = t.by_user.get(&user_id)?;
        Some((id.clone(), t.calls.get(id)?.clone()))
    }

    pub fn owned_by(&self, node: &str) -> usize {
        self.tables().calls.values().filter(|e| e.owner == node).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_leaves_the_directory_with_their_call_only() {
        let d = Directory::default();
        d.up("a", Entry { owner: "n1".into(), caller: 1, callee: 2 });
        d.up("b", Entry { owner: "n2".into(), caller: 3, callee: 1 });
        // User 1 moved on to call b (a glare or a stale entry): ending a leaves them in b.
        d.down("a");
        assert_eq!(d.of_user(1).map(|(id, _)| id), Some("b".to_string()));
        assert_eq!(d.of_user(2), None);
        assert_eq!(d.owned_by("n2"), 1);
    }
}
