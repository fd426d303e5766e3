// What the app knows: who I am, the contacts with presence and unread counts, and the chat
// conversations loaded so far. Fed by the socket and the HTTP API; views subscribe to changes.

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
  /** id → {id, username, displayName, status, unread} */
  users = new Map();
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
      for (const u of list) this.#upsert(u);
      this.emit('users');
    });
    socket.on(Code.STATUS, (d) => this.#setStatus(d.id, d.status));
    socket.on(Code.ONLINE, (u) => {
      this.#upsert(u);
      this.emit('users');
    });
    socket.on(Code.OFFLINE, (d) => this.#setStatus(d.id, 'offline'));
    socket.on(Code.TEXT, (m) => this.#onText(m));
    this.socket = socket;
  }

  reset() {
    this.me = null;
    this.users.clear();
    this.conversations.clear();
    this.openChat = null;
  }

  user(id) {
    return this.users.get(id) || null;
  }

  nameOf(id) {
    const u = this.users.get(id);
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
      for (const u of list) this.#upsert(u);
      // The open conversation is being read right now, whatever the server counted.
      if (this.openChat && this.openChat !== LOBBY && this.users.get(this.openChat)?.unread) this.markRead(this.openChat);
      this.emit('users');
    } catch {
      // The socket's own reconnect logic deals with a server that went away.
    }
  }

  #upsert(u) {
    const old = this.users.get(u.id);
    this.users.set(u.id, {
      id: u.id,
      username: u.username,
      displayName: u.displayName || u.username,
      status: u.status || (old && old.status) || 'offline',
      unread: u.unread ?? (old ? old.unread : 0),
    });
  }

  #setStatus(id, status) {
    const u = this.users.get(id);
    if (!u) {
      // Someone who registered after our list was sent: fetch them.
      this.refreshUsers();
      return;
    }
    u.status = status;
    if (this.me && id === this.me.id) this.me.status = status;
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
    return m;
  }

  markRead(withId) {
    if (withId === LOBBY || withId == null) return;
    const u = this.users.get(withId);
    if (u && u.unread) {
      u.unread = 0;
      this.emit('users');
    }
    this.socket.send('Message/Read', { toId: withId });
  }
}
