// ICE servers for calls. The server hands out short-lived TURN credentials at
// GET /api/ice-servers; a server without that endpoint (older builds) gives the list in the
// WebSocket welcome instead. Credentials are refreshed before they expire and before every ICE
// restart, so a restart never uses stale ones.

import { api } from './api.js';

// Refresh when this share of the lifetime is left.
const REFRESH_AT_REMAINING = 0.25;

export class IceServers {
  #fromWelcome = [];
  #cached = null; // {list, fetchedAt, ttlMs}
  #endpointMissing = false;
  #inflight = null;

  setFromWelcome(list) {
    this.#fromWelcome = Array.isArray(list) ? list : [];
  }

  /** The freshest list known, without waiting. */
  get current() {
    return this.#cached ? this.#cached.list : this.#fromWelcome;
  }

  #stale() {
    const c = this.#cached;
    if (!c) return true;
    return Date.now() - c.fetchedAt > c.ttlMs * (1 - REFRESH_AT_REMAINING);
  }

  /** Resolves with a usable list. `fresh` forces a new fetch (before an ICE restart). */
  async get({ fresh = false } = {}) {
    if (this.#endpointMissing) return this.#fromWelcome;
    if (!fresh && !this.#stale()) return this.#cached.list;
    if (!this.#inflight) {
      this.#inflight = api
        .iceServers()
        .then((r) => {
          const ttlMs = Math.max(2, Number(r.ttlSeconds) || 600) * 1000;
          this.#cached = { list: Array.isArray(r.iceServers) ? r.iceServers : [], fetchedAt: Date.now(), ttlMs };
        })
        .catch((e) => {
          // 404: this server has no TURN endpoint; do not ask again on this page.
          if (e.status === 404 || e.status === 405) this.#endpointMissing = true;
        })
        .finally(() => {
          this.#inflight = null;
        });
    }
    await this.#inflight;
    return this.current;
  }

  /** Milliseconds until the cached credentials should be refreshed (null: nothing to refresh). */
  refreshInMs() {
    const c = this.#cached;
    if (!c || this.#endpointMissing) return null;
    return Math.max(500, c.fetchedAt + c.ttlMs * (1 - REFRESH_AT_REMAINING) - Date.now());
  }
}
