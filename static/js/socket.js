// The WebSocket of PROTOCOL.md section 3: one per tab, authenticated by the session cookie. It
// reconnects by itself with backoff, matches acks and errors to requests by `seq`, and keeps a
// heartbeat so a half-open connection (a laptop that slept, a network change) is noticed.

import { Emitter } from './emitter.js';
import { api } from './api.js';

export const Code = Object.freeze({
  USER_LIST: 10000,
  WELCOME: 10001,
  ACK: 10002,
  ERROR: 10003,
  STATUS: 10004,
  TEXT: 10005,
  ONLINE: 10006,
  OFFLINE: 10008,
  CANDIDATE: 10009,
  OFFER: 10010,
  ANSWER: 10011,
  INCOMING: 10012,
  RINGING: 10013,
  ACCEPTED: 10014,
  REJECTED: 10015,
  ENDED: 10016,
  BUSY: 10017,
  ELSEWHERE: 10018,
  PEER_LINK: 10019,
  RESUMED: 10020,
  GOING_AWAY: 10021,
});

/** A refused frame: `code` is the 10003 error name, or `disconnected` / `timeout`. */
export class SocketError extends Error {
  constructor(code, method) {
    super(`${method}: ${code}`);
    this.code = code;
    this.method = method;
  }
}

const HEARTBEAT_MS = 25000;
const HEARTBEAT_TIMEOUT_MS = 10000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class Socket extends Emitter {
  #ws = null;
  #seq = 0;
  #pending = new Map();
  #attempt = 0;
  #retryTimer = null;
  #heartbeat = null;
  #running = false;
  #goingAwayMs = null;
  #welcomed = false;

  /** `connecting`, `open`, `reconnecting`, `restarting` or `closed`. */
  state = 'closed';

  /** Milliseconds added to every reconnect delay (set by the app; see CallManager). */
  extraDelay = () => 0;

  start() {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    window.addEventListener('online', this.#onOnline);
    this.#connect();
  }

  /** Closes for good (signing out). */
  stop() {
    this.#running = false;
    window.removeEventListener('online', this.#onOnline);
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.close(1000, 'bye');
    this.#failPending('disconnected');
    this.#setState('closed');
  }

  get open() {
    return this.#ws !== null && this.#ws.readyState === WebSocket.OPEN && this.#welcomed;
  }

  /** Sends a frame and resolves with its ack's data, or rejects with a SocketError. */
  request(method, fields = {}, timeoutMs = 15000) {
    if (!this.open) return Promise.reject(new SocketError('disconnected', method));
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new SocketError('timeout', method));
      }, timeoutMs);
      this.#pending.set(seq, { resolve, reject, timer, method });
      this.#ws.send(JSON.stringify({ method, seq, ...fields }));
    });
  }

  /** Sends a frame without waiting for anything; false when the socket is down. */
  send(method, fields = {}) {
    if (!this.open) return false;
    this.#ws.send(JSON.stringify({ method, ...fields }));
    return true;
  }

  /** Drops the current connection and connects again (used when the app knows it is stale). */
  reconnectSoon(delayMs = 300) {
    if (!this.#running) return;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.close(1000, 'reconnecting');
    this.#onLost(delayMs);
  }

  #onOnline = () => {
    // The network came back: do not wait for the backoff.
    if (this.#running && !this.#ws) {
      clearTimeout(this.#retryTimer);
      this.#connect();
    }
  };

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  #connect() {
    clearTimeout(this.#retryTimer);
    if (!this.#running) return;
    if (this.state !== 'reconnecting' && this.state !== 'restarting') this.#setState('connecting');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    const ws = new WebSocket(url);
    this.#ws = ws;
    this.#welcomed = false;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (ev) => {
      if (this.#ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.#onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#welcomed = false;
      clearInterval(this.#heartbeat);
      this.#failPending('disconnected');
      if (ev.code === 4001 || ev.code === 4002) {
        this.#running = false;
        this.#setState('closed');
        this.emit('signedout', ev.code);
        return;
      }
      this.emit('down');
      // Refused before opening: maybe the session ended (checked now and then, not on every
      // attempt while a server is down).
      if (!opened && this.#attempt % 3 === 0) this.#checkSession();
      this.#onLost();
    };
  }

  #onLost(fixedDelay) {
    if (!this.#running) return;
    let delay;
    if (fixedDelay !== undefined) {
      delay = fixedDelay;
    } else if (this.#goingAwayMs !== null) {
      // The server said when to come back (10021); spread the herd a little.
      delay = this.#goingAwayMs + Math.random() * 500;
      this.#goingAwayMs = null;
    } else {
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt);
      delay = base * (0.7 + Math.random() * 0.6);
      this.#attempt += 1;
    }
    if (fixedDelay === undefined) delay += this.extraDelay();
    if (this.state !== 'restarting') this.#setState('reconnecting');
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /** An upgrade refused before opening may mean the session is gone (401 is not visible to
   *  WebSocket code): ask the HTTP API, which tells. */
  async #checkSession() {
    try {
      await api.me();
    } catch (e) {
      if (e.status === 401 && this.#running) {
        this.stop();
        this.emit('signedout', 401);
      }
    }
  }

  #onFrame(frame) {
    const { code, data } = frame;
    if (code === Code.ACK || code === Code.ERROR) {
      const seq = data && data.seq;
      const pending = seq != null ? this.#pending.get(seq) : null;
      if (pending) {
        this.#pending.delete(seq);
        clearTimeout(pending.timer);
        if (code === Code.ACK) pending.resolve(data);
        else pending.reject(new SocketError(data.error, pending.method));
        return;
      }
    }
    if (code === Code.WELCOME) {
      this.#welcomed = true;
      this.#attempt = 0;
      this.#setState('open');
      this.#startHeartbeat();
    }
    if (code === Code.GOING_AWAY) {
      this.#goingAwayMs = Number(data && data.reconnectAfterMs) || 1000;
      this.#setState('restarting');
    }
    this.emit(code, data, frame);
  }

  #startHeartbeat() {
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      this.request('User/Ping', {}, HEARTBEAT_TIMEOUT_MS).catch((e) => {
        // No answer in time: the connection is dead even if the browser has not noticed.
        if (e.code === 'timeout') this.reconnectSoon(0);
      });
    }, HEARTBEAT_MS);
  }

  #failPending(code) {
    for (const [seq, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new SocketError(code, p.method));
      this.#pending.delete(seq);
    }
  }
}
