// What the app knows: who I am, the contacts with presence and unread counts, and the chat
// conversations loaded so far. Fed by the socket and the HTTP API; views subscribe to changes.
//
// The contact list is the server's (PROTOCOL.md 2.1): on a small server everyone, on a big one
// only the people one added, called or chatted with. Every 10000 frame and every GET /api/users
// replaces it whole, so a removal in another tab shows here too. People who are not contacts
// but are on screen anyway (a directory search result, a stranger's chat) are kept apart, in
// `others`, so their chat and name still work while the list stays the server's.

import { Emitter } from './emitter.js';
import { api } from './api.js';
import { Code } from './socket.js';

const PAGE = 40;

export const LOBBY = 0;

class Conversation {
  constructor(withId) {
    this.withId = withId;
    this.messages = []; // oldest first
    this.hasMore = true;
    this.loading = null;
    this.loaded = false;
  }

  /** Adds messages, keeping id order and dropping duplicates. */
  merge(list) {
    const known = new Set(this.messages.map((m) => m.id));
    let added = 0;
    for (const m of list) {
      if (!known.has(m.id)) {
        this.messages.push(m);
        known.add(m.id);
        added += 1;
      }
    }
    if (added) this.messages.sort((a, b) => a.id - b.id);
    return added;
  }
}

export class Store extends Emitter {
  me = null;
  /** id → {id, username, displayName, status, unread}: the contact list. */
  users = new Map();
  /** The same for known people who are not contacts. The server sends no presence for them, so
   *  `status` is as of when they were seen. */
  others = new Map();
  conversations = new Map();
  /** The conversation on screen (a user id, LOBBY, or null), to tell what counts as read. */
  openChat = null;

  attach(socket) {
    socket.on(Code.WELCOME, (d) => {
      this.me = { ...d.user };
      this.emit('me', this.me);
      // Messages and unread counts may have changed while we were away.
      this.refreshUsers();
      this.refreshOpenConversation();
    });
    socket.on(Code.USER_LIST, (list) => {
      this.#replace(list);
      this.emit('users');
    });
    socket.on(Code.STATUS, (d) => this.#setStatus(d.id, d.status));
    socket.on(Code.ONLINE, (u) => {
      this.#upsert(u);
      this.emit('users');
    });
    socket.on(Code.OFFLINE, (d) => this.#setStatus(d.id, 'offline'));
    socket.on(Code.TEXT, (m) => this.#onText(m));
    // Anyone in the directory may call, and calling makes the two contacts: list the caller at
    // once from the frame (it carries a full User), then ask the server for the list it now has.
    socket.on(Code.INCOMING, (d) => {
      if (!d.from || this.users.has(d.from.id)) return;
      this.#upsert(d.from);
      this.emit('users');
      this.refreshUsers();
    });
    // The same for a call I placed to someone found in the directory.
    socket.on(Code.RINGING, (d) => {
      if (d.toId && !this.users.has(d.toId)) this.refreshUsers();
    });
    this.socket = socket;
  }

  reset() {
    this.me = null;
    this.users.clear();
    this.others.clear();
    this.conversations.clear();
    this.openChat = null;
  }

  /** A contact, or someone else the app has seen; null for a stranger. */
  user(id) {
    return this.users.get(id) || this.others.get(id) || null;
  }

  isContact(id) {
    return this.users.has(id);
  }

  nameOf(id) {
    const u = this.user(id);
    return u ? u.displayName || u.username : `#${id}`;
  }

  /** Everyone but me, available first, then in a call, then offline; by name inside each. */
  contacts() {
    const rank = { available: 0, in_call: 1, offline: 2 };
    return [...this.users.values()]
      .filter((u) => !this.me || u.id !== this.me.id)
      .sort((a, b) => rank[a.status] - rank[b.status] || a.displayName.localeCompare(b.displayName));
  }

  async refreshUsers() {
    try {
      const list = await api.users();
      this.#replace(list);
      // The open conversation is being read right now, whatever the server counted.
      if (this.openChat && this.openChat !== LOBBY && this.users.get(this.openChat)?.unread) this.markRead(this.openChat);
      this.emit('users');
    } catch {
      // The socket's own reconnect logic deals with a server that went away.
    }
  }

  /** Up to `limit` people of the whole directory whose name contains `q` (contacts or not),
   *  remembered so that their chat opens like a contact's. */
  async search(q, limit) {
    const list = await api.searchUsers(q, { limit });
    return list
      .filter((u) => !this.me || u.id !== this.me.id)
      .map((u) => {
        if (this.users.has(u.id)) return this.users.get(u.id);
        const entry = Store.#entry(u, this.others.get(u.id));
        this.others.set(u.id, entry);
        return entry;
      });
  }

  /** Adds someone to my contacts; resolves once the list shows them (or rejects: ApiError). */
  async addContact(id) {
    await api.addContact(id);
    // The server also sends every tab a fresh 10000; asking here makes this tab's list right
    // by the time the promise resolves, whichever comes first.
    await this.refreshUsers();
  }

  /** Removes an added contact; resolves with whether they are still a contact (people one has
   *  called or chatted with stay, and on a small server everyone does). */
  async removeContact(id) {
    await api.removeContact(id);
    await this.refreshUsers();
    return this.users.has(id);
  }

  static #entry(u, old) {
    return {
      id: u.id,
      username: u.username ?? (old && old.username) ?? '',
      displayName: u.displayName || (old && old.displayName) || u.username || `#${u.id}`,
      status: u.status || (old && old.status) || 'offline',
      unread: u.unread ?? (old ? old.unread : 0),
    };
  }

  #upsert(u) {
    this.users.set(u.id, Store.#entry(u, this.users.get(u.id) || this.others.get(u.id)));
    this.others.delete(u.id);
  }

  /** The server's list replaces ours; who left it is kept among `others` (an open chat). */
  #replace(list) {
    const before = new Map(this.users);
    this.users.clear();
    for (const u of list) {
      this.users.set(u.id, Store.#entry(u, before.get(u.id) || this.others.get(u.id)));
      this.others.delete(u.id);
    }
    for (const [id, u] of before) if (!this.users.has(id)) this.others.set(id, u);
  }

  #setStatus(id, status) {
    const mine = this.me && id === this.me.id;
    if (mine) this.me.status = status;
    const u = this.users.get(id);
    if (u) {
      u.status = status;
    } else if (!mine) {
      // Presence comes only for contacts: one we do not list yet (they registered, or added
      // us, after our list was sent). Fetch the list.
      this.refreshUsers();
      return;
    }
    this.emit('users');
  }

  conversation(withId) {
    if (!this.conversations.has(withId)) this.conversations.set(withId, new Conversation(withId));
    return this.conversations.get(withId);
  }

  /** Loads the newest page once, then nothing until `loadOlder`. */
  async loadConversation(withId) {
    const c = this.conversation(withId);
    if (c.loaded) return c;
    if (!c.loading) {
      c.loading = api
        .messages(withId, { limit: PAGE })
        .then((list) => {
          c.merge(list);
          c.hasMore = list.length === PAGE;
          c.loaded = true;
        })
        .finally(() => {
          c.loading = null;
        });
    }
    await c.loading;
    this.emit('conversation', withId);
    return c;
  }

  /** Loads the page before the oldest message shown; resolves with how many arrived. */
  async loadOlder(withId) {
    const c = this.conversation(withId);
    if (!c.hasMore || c.loading) return 0;
    const before = c.messages.length ? c.messages[0].id : undefined;
    let added = 0;
    c.loading = api
      .messages(withId, { limit: PAGE, before })
      .then((list) => {
        added = c.merge(list);
        c.hasMore = list.length === PAGE;
      })
      .finally(() => {
        c.loading = null;
      });
    await c.loading;
    return added;
  }

  async refreshOpenConversation() {
    const id = this.openChat;
    if (id === null || !this.conversations.get(id)?.loaded) return;
    try {
      const list = await api.messages(id, { limit: PAGE });
      if (this.conversation(id).merge(list)) this.emit('conversation', id);
    } catch {
      // Shown again on the next reconnect.
    }
  }

  /** The conversation a chat message belongs to, seen from me. */
  keyOf(m) {
    if (m.toId === LOBBY) return LOBBY;
    return m.fromId === this.me?.id ? m.toId : m.fromId;
  }

  #onText(m) {
    const key = this.keyOf(m);
    const c = this.conversation(key);
    c.merge([m]);
    const mine = m.fromId === this.me?.id;
    if (key !== LOBBY && !this.users.has(key)) {
      // A chat from (or, in another tab of mine, to) someone not in the list: chatting makes the
      // two contacts. The frame names the sender; the server's list brings the rest.
      if (!mine) this.#upsert({ id: key, username: m.username, status: 'available' });
      this.refreshUsers();
    }
    if (!mine && key !== LOBBY) {
      const reading = this.openChat === key && document.visibilityState === 'visible';
      if (reading) {
        this.markRead(key);
      } else {
        const u = this.users.get(key);
        if (u) u.unread = (u.unread || 0) + 1;
        this.emit('users');
      }
    }
    this.emit('message', m, key);
  }

  /** Sends a chat message; resolves with the stored message (it is also shown at once). */
  async sendMessage(toId, text) {
    const ack = await this.socket.request('Message/Send', { toId, message: text });
    const m = { id: ack.id, fromId: this.me.id, toId, message: text, sentAt: ack.sentAt };
    this.conversation(toId).merge([m]);
    this.emit('message', m, toId);
    // Writing to someone found in the directory made them a contact.
    if (toId !== LOBBY && !this.users.has(toId)) this.refreshUsers();
    return m;
  }

  markRead(withId) {
    if (withId === LOBBY || withId == null) return;
    const u = this.user(withId);
    if (u && u.unread) {
      u.unread = 0;
      this.emit('users');
    }
    this.socket.send('Message/Read', { toId: withId });
  }
}
