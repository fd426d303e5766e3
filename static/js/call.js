// The call as this tab sees it: invite, ring, accept, media, hang up, and keeping a call alive
// through reloads, reconnects, server restarts and network changes (PROTOCOL.md section 4).
//
// The server owns the call's state; this module asks it for changes and follows its events. The
// media connection is peer to peer (peer.js); the server only forwards offers, answers and
// candidates between the two connections bound to the call, and only while the call is active.

import { Emitter } from './emitter.js';
import { Code } from './socket.js';
import { Peer } from './peer.js';
import { LinkMeter, qualityOf } from './stats.js';
import { startRinging, stopRinging } from './ringer.js';
import { notifyIncoming, closeNotification } from './notify.js';
import { settings, saveSetting } from './settings.js';
import { api } from './api.js';
import { t, errorText } from './i18n.js';

const SAVED_KEY = 'duet.call';
const STATS_EVERY_MS = 2000;
const REPORT_EVERY_MS = 5000;
// ICE "disconnected" often heals by itself (a brief loss); restart only if it lasts.
const DISCONNECTED_GRACE_MS = 2500;
// How long the other side gets to renegotiate after it is back, before this side restarts ICE.
const PEER_BACK_WAIT_MS = 4000;
const CONNECT_TIMEOUT_MS = 25000;
const MAX_REBINDS = 6;

class Call {
  constructor({ id = null, peer, role, media, phase }) {
    this.id = id;
    this.peer = peer; // the other party: User
    this.role = role; // "caller" or "callee", as the server sees it
    this.media = media; // {audio, video} the call was placed with
    this.phase = phase; // outgoing | incoming | accepting | connecting | active | ended
    this.outgoing = 'calling'; // calling | ringing (while phase is outgoing)
    this.answeredAt = null;
    this.wantVideo = !!media.video;
    this.muted = false;
    this.cameraOff = !media.video;
    this.mic = null;
    this.cam = null;
    this.screen = null;
    this.localStream = new MediaStream();
    this.remoteStream = null;
    this.remoteState = { muted: false, cameraOff: false, sharing: false };
    this.peerConn = null;
    this.peerAway = false;
    this.reconnecting = false;
    this.offerLost = false;
    this.iceFailures = 0;
    this.relayForced = false;
    this.meter = new LinkMeter();
    this.stats = null;
    this.quality = 'unknown';
    this.queue = Promise.resolve();
    this.ready = new Promise((resolve) => {
      this.setReady = resolve;
    });
    this.timers = {};
  }

  get live() {
    return this.phase === 'connecting' || this.phase === 'active';
  }

  /** What the camera sender should carry: the screen while sharing, else the camera if on. */
  videoTrack() {
    return this.screen || (this.cameraOff ? null : this.cam);
  }
}

function readSaved() {
  try {
    return JSON.parse(sessionStorage.getItem(SAVED_KEY) || 'null');
  } catch {
    return null;
  }
}

function audioConstraints() {
  return { echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...(settings.micId ? { deviceId: { ideal: settings.micId } } : {}) };
}

function videoConstraints() {
  return { width: { ideal: 1280 }, height: { ideal: 720 }, ...(settings.cameraId ? { deviceId: { ideal: settings.cameraId } } : {}) };
}

export class CallManager extends Emitter {
  /** The call of this tab (ringing, or live), or null. */
  call = null;
  #pendingHangup = null;
  #rebinds = 0;
  #titleBefore = null;

  constructor({ socket, store, ice }) {
    super();
    this.socket = socket;
    this.store = store;
    this.ice = ice;
    this.#listen();
  }

  // ---- events from the server ----

  #listen() {
    const s = this.socket;
    s.on(Code.WELCOME, (d) => this.#onWelcome(d));
    s.on(Code.INCOMING, (d) => this.#onIncoming(d));
    s.on(Code.RINGING, (d) => {
      const c = this.#match(d.callId);
      if (c && c.phase === 'outgoing') {
        c.outgoing = 'ringing';
        startRinging('outgoing');
        this.#changed();
      }
    });
    s.on(Code.ACCEPTED, (d) => {
      const c = this.#match(d.callId);
      if (c && c.phase === 'outgoing') this.#goLive(c, { offerer: true });
    });
    s.on(Code.REJECTED, (d) => {
      const c = this.#match(d.callId);
      if (c) this.#end(c, t('call.end.rejected', { name: this.#name(c) }));
    });
    s.on(Code.ENDED, (d) => this.#onEnded(d));
    s.on(Code.BUSY, (d) => {
      const c = this.call;
      if (c && c.phase === 'outgoing' && (c.id === d.callId || (!c.id && c.peer.id === d.toId))) {
        this.#end(c, t('call.end.busy', { name: this.#name(c) }));
      }
    });
    s.on(Code.ELSEWHERE, (d) => {
      const c = this.#match(d.callId);
      if (c && (c.phase === 'incoming' || c.phase === 'accepting')) this.#end(c, t('call.elsewhere'));
    });
    s.on(Code.PEER_LINK, (d) => this.#onPeerLink(d));
    s.on(Code.RESUMED, (d) => this.#resume(d));
    s.on(Code.OFFER, (d) => this.#onSignal('offer', d));
    s.on(Code.ANSWER, (d) => this.#onSignal('answer', d));
    s.on(Code.CANDIDATE, (d) => this.#onSignal('candidate', d));
    s.on('down', () => {
      if (this.call) this.#changed();
    });
    document.addEventListener('visibilitychange', () => {
      const c = this.call;
      if (!c || c.phase !== 'incoming') return;
      if (document.visibilityState === 'hidden') notifyIncoming(c, () => this.emit('open-call'));
      else closeNotification(c.id);
    });
  }

  /** Extra wait before this tab reconnects its socket. The server binds a call waiting for us
   *  to whichever of our connections opens first, so a tab without the call lets the tab that
   *  has it go first. */
  reconnectDelay() {
    const me = this.store.me && this.store.user(this.store.me.id);
    return !this.call && me && me.status === 'in_call' ? 1500 : 0;
  }

  #match(callId) {
    return this.call && this.call.id === callId ? this.call : null;
  }

  #name(c) {
    return c.peer.displayName || c.peer.username;
  }

  #changed() {
    this.emit('change', this.call);
  }

  #notice(text) {
    this.emit('notice', text);
  }

  #onWelcome(d) {
    this.ice.setFromWelcome(d.iceServers);
    if (d.activeCall) {
      this.#resume(d.activeCall);
      return;
    }
    const c = this.call;
    if (c && c.id && c.phase !== 'ended') {
      this.#verify(c.id, c);
    } else if (!c) {
      const saved = readSaved();
      if (saved && saved.id) this.#verify(saved.id, null);
    }
  }

  /** The new connection was not bound to a call this tab believes in. Either the server has not
   *  yet noticed that our previous connection closed (a fast reload wins that race), or the call
   *  ended while we were away. The record tells which. */
  async #verify(callId, c) {
    let record;
    try {
      record = await api.call(callId);
    } catch {
      record = null;
    }
    if (c && c !== this.call) return;
    if (c && c.phase === 'incoming') {
      // Ringing here, never bound here: it still rings (10012 comes again), was answered on
      // another device, or ended while we were away.
      if (record && record.status === 'ringing') return;
      this.#end(c, record && record.status === 'active' ? t('call.elsewhere') : record && record.endReason ? this.#endText(c, record.endReason, record.endedBy) : t('call.ended'));
      return;
    }
    const live = record && (record.status === 'active' || record.status === 'ringing');
    if (live && this.#rebinds < MAX_REBINDS) {
      this.#rebinds += 1;
      this.socket.reconnectSoon(400 * this.#rebinds);
      return;
    }
    if (!c) {
      sessionStorage.removeItem(SAVED_KEY);
      return;
    }
    if (live) {
      // Still live but never bound here again: the server gave it to another tab or device of
      // ours that connected first. Leave it there, without hanging up.
      this.#end(c, t('call.movedElsewhere'));
      return;
    }
    const reason = record ? record.endReason : null;
    this.#end(c, reason ? this.#endText(c, reason, record.endedBy) : t('call.ended'));
  }

  #onIncoming(d) {
    const current = this.call;
    if (current) {
      // The same call announced again (a reconnect while it rings): keep ringing as we were.
      if (current.id === d.callId) return;
      // We are calling them as they call us (glare): our invite's ack merges the two calls.
      if (current.phase === 'outgoing' && current.peer.id === d.fromId) return;
      if (current.phase !== 'incoming') return;
      this.#end(current, null);
    }
    const c = new Call({ id: d.callId, peer: d.from, role: 'callee', media: d.media || { audio: true, video: true }, phase: 'incoming' });
    this.call = c;
    startRinging('incoming');
    this.#titleBefore = this.#titleBefore ?? document.title;
    document.title = `📞 ${t('call.incoming', { name: this.#name(c) })}`;
    notifyIncoming(c, () => this.emit('open-call'));
    this.#changed();
  }

  #onEnded(d) {
    const c = this.#match(d.callId);
    if (!c) return;
    // Rung here and never answered anywhere: shown as a missed call.
    c.missed = c.role === 'callee' && !c.answeredAt && (d.reason === 'timeout' || d.reason === 'cancelled');
    this.#end(c, this.#endText(c, d.reason, d.by));
  }

  #endText(c, reason, by) {
    const name = this.#name(c);
    const me = this.store.me && this.store.me.id;
    switch (reason) {
      case 'hangup':
        return by === me ? t('call.end.hangup.me') : t('call.end.hangup.peer', { name });
      case 'cancelled':
        return c.role === 'callee' ? t('call.end.cancelled.callee', { name }) : t('call.end.cancelled.caller');
      case 'rejected':
        return c.role === 'callee' ? t('call.end.rejected.elsewhere') : t('call.end.rejected', { name });
      case 'timeout':
        return c.role === 'callee' ? t('call.end.timeout.callee', { name }) : t('call.end.timeout.caller', { name });
      case 'peer_lost':
        return t('call.end.peer_lost', { name });
      case 'logout':
        return by === me ? t('call.ended') : t('call.end.logout', { name });
      case 'offline':
        return t('call.end.offline', { name });
      case 'busy':
        return t('call.end.busy', { name });
      default:
        return t('call.end.server_error');
    }
  }

  #onPeerLink(d) {
    const c = this.#match(d.callId);
    if (!c) return;
    if (d.state === 'reconnecting') {
      c.peerAway = true;
      this.#notice(t('call.peerReconnecting', { name: this.#name(c) }));
      this.#changed();
      return;
    }
    c.peerAway = false;
    this.#notice(t('call.peerBack', { name: this.#name(c) }));
    // They renegotiate now (an ICE restart, or a new connection after a reload). An offer of
    // ours that the server refused while they were away goes again.
    if (c.peerConn && c.offerLost) {
      c.offerLost = false;
      c.peerConn.resendOffer();
    }
    clearTimeout(c.timers.back);
    c.timers.back = setTimeout(() => {
      const pc = c.peerConn && c.peerConn.pc;
      if (c === this.call && pc && pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed') this.#recover(c);
    }, PEER_BACK_WAIT_MS);
    this.#changed();
  }

  /** 10020 or the welcome's `activeCall`: this connection is now bound to a live call. */
  async #resume(info) {
    this.#rebinds = 0;
    if (this.#pendingHangup === info.callId) {
      // Hung up while the socket was down: tell the server now.
      this.socket.request('Call/Hangup', { data: { callId: info.callId } }).catch(() => {});
      this.#pendingHangup = null;
      return;
    }
    let c = this.call;
    if (c && c.id === info.callId) {
      c.peer = info.peer || c.peer;
      // Whatever we heard before our socket dropped is stale: after a server restart the other
      // side may have come back before us, and then no 10019 "connected" follows. If they are
      // still away, signaling is refused and sent again when they are back.
      c.peerAway = false;
      if (info.state === 'active' && c.peerConn) {
        // The same page, a new socket: the media may still flow; restart ICE all the same,
        // since a network change is the usual reason a socket drops.
        this.#recover(c);
      }
      this.#changed();
      return;
    }
    if (c) this.#end(c, null);

    // A reload (or a new tab that the server bound to the waiting call).
    const saved = readSaved();
    const prefs = saved && saved.id === info.callId ? saved : null;
    let media = prefs ? prefs.media : null;
    if (!media) {
      const record = await api.call(info.callId).catch(() => null);
      media = record ? record.media : { audio: true, video: true };
    }
    if (this.call && this.call.id === info.callId) return; // resumed twice (welcome and 10020)
    c = new Call({ id: info.callId, peer: info.peer, role: info.role, media, phase: info.state === 'ringing' ? 'outgoing' : 'connecting' });
    if (prefs) {
      c.wantVideo = prefs.wantVideo;
      c.muted = prefs.muted;
    }
    this.call = c;
    if (info.state === 'ringing') {
      c.outgoing = 'ringing';
      startRinging('outgoing');
      this.#changed();
      await this.#acquire(c);
      this.#changed();
      return;
    }
    c.answeredAt = Date.parse(info.since) || Date.now();
    this.#notice(t('call.resumed'));
    this.#changed();
    await Promise.all([this.#acquire(c), this.ice.get()]);
    if (c !== this.call || c.phase === 'ended') return;
    // A fresh connection with a new id: the other side answers it with a fresh one too.
    this.#createPeer(c, { waitForOffer: false });
    this.#save(c);
    this.#changed();
  }

  // ---- what the user does ----

  /** Calls `user`, with video or audio only. */
  async start(user, { video }) {
    if (this.call) {
      this.#notice(t('error.already_in_call'));
      return;
    }
    const c = new Call({ peer: user, role: 'caller', media: { audio: true, video: !!video }, phase: 'outgoing' });
    this.call = c;
    this.#changed();
    await Promise.all([this.#acquire(c), this.ice.get()]);
    if (c.phase === 'ended') return;
    let ack;
    try {
      ack = await this.socket.request('Call/Invite', { toId: user.id, data: { media: { audio: true, video: !!video } } });
    } catch (e) {
      const name = this.#name(c);
      const text = e.code === 'offline' ? t('call.end.offline', { name }) : e.code === 'busy' ? t('call.end.busy', { name }) : e.code === 'disconnected' || e.code === 'timeout' ? t('error.network') : errorText(e.code, { name });
      this.#end(c, text);
      return;
    }
    c.id = ack.callId;
    if (c.phase === 'ended') {
      // Cancelled while the invite was on its way.
      this.socket.request('Call/Cancel', { data: { callId: c.id } }).catch(() => {});
      return;
    }
    this.#save(c);
    if (ack.merged) {
      // We called each other at once: the server merged the two into their call, active now.
      c.role = 'callee';
      this.#goLive(c, { offerer: false });
      return;
    }
    this.#changed();
  }

  async accept({ video }) {
    const c = this.call;
    if (!c || c.phase !== 'incoming') return;
    c.phase = 'accepting';
    c.wantVideo = !!video && !!c.media.video;
    c.cameraOff = !c.wantVideo;
    stopRinging();
    closeNotification(c.id);
    this.#restoreTitle();
    this.#changed();
    await Promise.all([this.#acquire(c), this.ice.get()]);
    if (c.phase === 'ended') return;
    try {
      await this.socket.request('Call/Accept', { data: { callId: c.id } });
    } catch (e) {
      // Cancelled, timed out or answered elsewhere meanwhile: its own event says which.
      setTimeout(() => {
        if (c.phase !== 'ended') this.#end(c, e.code === 'bad_state' ? t('call.ended') : errorText(e.code));
      }, 500);
      return;
    }
    if (c.phase === 'ended') return;
    this.#goLive(c, { offerer: false });
  }

  reject() {
    const c = this.call;
    if (!c || c.phase !== 'incoming') return;
    this.socket.request('Call/Reject', { data: { callId: c.id } }).catch(() => {});
    this.#end(c, null);
  }

  /** Cancel, decline or hang up, whichever fits the call's phase. */
  hangup() {
    const c = this.call;
    if (!c) return;
    if (c.phase === 'incoming') {
      this.reject();
      return;
    }
    if (c.id) {
      if (this.socket.open) this.socket.request('Call/Hangup', { data: { callId: c.id } }).catch(() => {});
      else this.#pendingHangup = c.id;
    }
    this.#end(c, c.phase === 'outgoing' ? t('call.end.cancelled.caller') : t('call.end.hangup.me'));
  }

  toggleMute() {
    const c = this.call;
    if (!c) return;
    c.muted = !c.muted;
    if (c.mic) c.mic.enabled = !c.muted;
    this.#sendState(c);
    this.#save(c);
    this.#changed();
  }

  async toggleCamera() {
    const c = this.call;
    if (!c) return;
    if (!c.cameraOff) {
      c.cameraOff = true;
      c.wantVideo = false;
      // Stopping the track turns the camera (and its light) off, not just the picture.
      if (c.cam) c.cam.stop();
      c.cam = null;
      if (!c.screen && c.peerConn) await c.peerConn.setTrack('video', null);
    } else {
      let track;
      try {
        const s = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() });
        track = s.getVideoTracks()[0];
      } catch {
        this.#notice(t('call.deviceFailed'));
        return;
      }
      if (c.phase === 'ended') {
        track.stop();
        return;
      }
      c.cam = track;
      c.cameraOff = false;
      c.wantVideo = true;
      if (!c.screen && c.peerConn) await c.peerConn.setTrack('video', track, c.localStream);
    }
    this.#syncLocal(c);
    this.#sendState(c);
    this.#save(c);
    this.#changed();
  }

  async toggleScreen() {
    const c = this.call;
    if (!c || !c.live) return;
    if (c.screen) {
      await this.#stopShare(c);
      return;
    }
    let track;
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      track = s.getVideoTracks()[0];
    } catch {
      this.#notice(t('call.shareFailed'));
      return;
    }
    if (c.phase === 'ended') {
      track.stop();
      return;
    }
    track.contentHint = 'detail';
    // The browser's own "stop sharing" button ends the track.
    track.addEventListener('ended', () => this.#stopShare(c));
    c.screen = track;
    // Replaces the camera's track; a call without a video section renegotiates to add one.
    if (c.peerConn) await c.peerConn.setTrack('video', track, c.localStream);
    this.#syncLocal(c);
    this.#sendState(c);
    this.#changed();
  }

  async #stopShare(c) {
    if (!c.screen) return;
    const track = c.screen;
    c.screen = null;
    track.stop();
    if (c.peerConn) await c.peerConn.setTrack('video', c.videoTrack(), c.localStream);
    this.#syncLocal(c);
    this.#sendState(c);
    this.#changed();
  }

  async devices() {
    try {
      const list = await navigator.mediaDevices.enumerateDevices();
      return {
        cameras: list.filter((d) => d.kind === 'videoinput'),
        microphones: list.filter((d) => d.kind === 'audioinput'),
      };
    } catch {
      return { cameras: [], microphones: [] };
    }
  }

  /** Switches to another camera or microphone; the choice is kept for later calls. */
  async switchDevice(kind, deviceId) {
    const c = this.call;
    saveSetting(kind === 'audioinput' ? 'micId' : 'cameraId', deviceId);
    if (!c || c.phase === 'ended') return;
    try {
      if (kind === 'audioinput') {
        const s = await navigator.mediaDevices.getUserMedia({ audio: { ...audioConstraints(), deviceId: { exact: deviceId } } });
        const track = s.getAudioTracks()[0];
        track.enabled = !c.muted;
        const old = c.mic;
        c.mic = track;
        if (c.peerConn) await c.peerConn.setTrack('audio', track, c.localStream);
        if (old) old.stop();
      } else {
        if (c.cameraOff) return; // used when the camera is turned on
        const s = await navigator.mediaDevices.getUserMedia({ video: { ...videoConstraints(), deviceId: { exact: deviceId } } });
        const track = s.getVideoTracks()[0];
        const old = c.cam;
        c.cam = track;
        if (!c.screen && c.peerConn) await c.peerConn.setTrack('video', track, c.localStream);
        if (old) old.stop();
      }
    } catch {
      this.#notice(t('call.deviceFailed'));
    }
    this.#syncLocal(c);
    this.#changed();
  }

  /** The user chose "hide my address" (or not): applies to the live call at its next restart. */
  setHideAddress(on) {
    saveSetting('hideAddress', on);
    const c = this.call;
    if (c && c.peerConn) {
      c.peerConn.setConfig({ relayOnly: on || c.relayForced });
      if (c.live) this.#recover(c);
    }
  }

  // ---- media and the peer connection ----

  /** Gets the microphone, and the camera if wanted; degrades to audio only, then to nothing
   *  (the call still receives). */
  async #acquire(c) {
    const md = navigator.mediaDevices;
    let stream = null;
    if (md && md.getUserMedia) {
      try {
        stream = await md.getUserMedia({ audio: audioConstraints(), video: c.wantVideo ? videoConstraints() : false });
      } catch {
        if (c.wantVideo) {
          try {
            stream = await md.getUserMedia({ audio: audioConstraints() });
            this.#notice(t('call.noCamera'));
          } catch {
            stream = null;
          }
        }
      }
    }
    if (!stream) this.#notice(t('call.noMedia', { name: this.#name(c) }));
    if (c.phase === 'ended') {
      if (stream) stream.getTracks().forEach((tr) => tr.stop());
      return;
    }
    c.mic = stream ? stream.getAudioTracks()[0] || null : null;
    c.cam = stream ? stream.getVideoTracks()[0] || null : null;
    c.cameraOff = !c.cam;
    if (c.mic) c.mic.enabled = !c.muted;
    this.#syncLocal(c);
  }

  #syncLocal(c) {
    const want = [c.mic, c.videoTrack()].filter(Boolean);
    for (const tr of c.localStream.getTracks()) if (!want.includes(tr)) c.localStream.removeTrack(tr);
    for (const tr of want) if (!c.localStream.getTracks().includes(tr)) c.localStream.addTrack(tr);
  }

  #polite(c) {
    // Deterministic on both sides: the higher user id yields on offer collisions.
    return (this.store.me ? this.store.me.id : 0) > c.peer.id;
  }

  #goLive(c, { offerer }) {
    c.phase = 'connecting';
    c.answeredAt = Date.now();
    stopRinging();
    closeNotification(c.id);
    this.#restoreTitle();
    this.#save(c);
    // The caller offers once the call is active (the server forwards nothing before that); the
    // callee answers that offer.
    this.#createPeer(c, { waitForOffer: !offerer });
    this.#changed();
  }

  #createPeer(c, { waitForOffer }) {
    const peer = new Peer({
      polite: this.#polite(c),
      iceServers: this.ice.current,
      relayOnly: settings.hideAddress || c.relayForced,
      waitForOffer,
      send: (kind, payload) => this.#signal(c, peer, kind, payload),
    });
    peer.attachLocal(c.localStream, { audio: c.mic, video: c.videoTrack(), receiveVideo: c.media.video });
    peer.on('remote', (stream) => {
      if (peer !== c.peerConn) return;
      c.remoteStream = stream;
      this.#changed();
    });
    peer.on('ice', (state) => this.#onIce(c, peer, state));
    peer.on('dcopen', () => this.#sendState(c));
    peer.on('data', (msg) => {
      if (msg && msg.t === 'state') {
        c.remoteState = { muted: !!msg.muted, cameraOff: !!msg.cameraOff, sharing: !!msg.sharing };
        this.#changed();
      }
    });
    c.peerConn = peer;
    c.meter.reset();
    c.setReady();
    this.#startTimers(c);
    return peer;
  }

  /** The other side has a new connection (it reloaded): answer it with a fresh one of ours. */
  #replacePeer(c) {
    const old = c.peerConn;
    if (old) old.close();
    c.remoteStream = null;
    c.remoteState = { muted: false, cameraOff: false, sharing: false };
    c.iceFailures = 0;
    return this.#createPeer(c, { waitForOffer: true });
  }

  #signal(c, peer, kind, payload) {
    if (peer.closed || c !== this.call || !c.id) return;
    const data = { callId: c.id, ...payload, pcId: peer.id, toPcId: peer.remotePcId };
    if (kind === 'candidate') {
      this.socket.send('Message/Candidate', { toId: c.peer.id, data });
      return;
    }
    const method = kind === 'offer' ? 'Message/Offer' : 'Message/Answer';
    this.socket.request(method, { toId: c.peer.id, data }).catch(() => {
      // Refused while the other side reconnects (or our socket is down): sent again when they
      // are back (#onPeerLink), or replaced by the ICE restart after our own reconnect.
      if (kind === 'offer') c.offerLost = true;
    });
  }

  #onSignal(kind, d) {
    const c = this.call;
    if (!c || c.id !== d.callId) return;
    const data = d.data || {};
    // One at a time and in order: a candidate must not overtake the offer it belongs to.
    c.queue = c.queue.then(() => this.#applySignal(c, kind, data)).catch((e) => console.warn(`applying the ${kind} failed`, e));
  }

  async #applySignal(c, kind, data) {
    await c.ready;
    if (c !== this.call || c.phase === 'ended') return;
    let peer = c.peerConn;
    // Meant for a connection this tab no longer has (we reloaded, they had not heard yet).
    if (data.toPcId && data.toPcId !== peer.id) return;
    const fromOther = data.pcId && peer.remotePcId && data.pcId !== peer.remotePcId;
    if (kind === 'offer') {
      if (fromOther) peer = this.#replacePeer(c);
      await peer.handleDescription(data.sdp, data.pcId);
    } else if (fromOther) {
      // An answer or candidate of the other side's previous connection.
    } else if (kind === 'answer') {
      await peer.handleDescription(data.sdp, data.pcId);
    } else {
      await peer.addCandidate(data.candidate);
    }
  }

  #onIce(c, peer, state) {
    if (peer !== c.peerConn || c.phase === 'ended') return;
    clearTimeout(c.timers.ice);
    if (state === 'connected' || state === 'completed') {
      c.iceFailures = 0;
      c.reconnecting = false;
      clearTimeout(c.timers.connect);
      if (c.phase === 'connecting') c.phase = 'active';
      this.#save(c);
    } else if (state === 'disconnected') {
      c.reconnecting = true;
      c.timers.ice = setTimeout(() => {
        if (peer === c.peerConn && peer.pc.iceConnectionState === 'disconnected') this.#recover(c);
      }, DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      c.reconnecting = true;
      this.#iceFailed(c);
    }
    this.#changed();
  }

  /** ICE failed: restart it; if that fails too, retry through the relay only; then give up. */
  #iceFailed(c) {
    // While either side's signaling is away, nothing can be negotiated; their return (10019)
    // or ours (10020) restarts ICE.
    if (c.peerAway || !this.socket.open) return;
    c.iceFailures += 1;
    const relayAlready = c.peerConn && c.peerConn.relayOnly;
    if (c.iceFailures === 1) {
      this.#recover(c);
    } else if (c.iceFailures === 2 && !relayAlready) {
      c.relayForced = true;
      this.#notice(t('call.relayRetry'));
      this.#recover(c, { relay: true });
    } else {
      this.#notice(t('call.end.failed'));
      this.hangup();
    }
  }

  /** An ICE restart with fresh TURN credentials (or the pending offer sent again). */
  async #recover(c, { relay } = {}) {
    const peer = c.peerConn;
    if (!peer || peer.closed) return;
    const servers = await this.ice.get({ fresh: true });
    if (peer !== c.peerConn || peer.closed) return;
    peer.setConfig({ iceServers: servers, relayOnly: relay ? true : undefined });
    if (c.offerLost) {
      c.offerLost = false;
      peer.resendOffer();
    }
    peer.restartIce();
  }

  #sendState(c) {
    if (!c.peerConn) return;
    c.peerConn.sendData({ t: 'state', muted: c.muted, cameraOff: !c.videoTrack(), sharing: !!c.screen });
  }

  #startTimers(c) {
    if (c.timers.stats) return;
    c.timers.stats = setInterval(async () => {
      const peer = c.peerConn;
      if (!peer || peer.closed) return;
      try {
        c.stats = await c.meter.sample(peer.pc);
        c.quality = qualityOf(c.stats);
        this.emit('stats', c);
      } catch {
        // Closed between the check and the call.
      }
    }, STATS_EVERY_MS);
    c.timers.report = setInterval(() => this.#report(c), REPORT_EVERY_MS);
    c.timers.connect = setTimeout(() => {
      if (c === this.call && c.phase === 'connecting') this.#iceFailed(c);
    }, CONNECT_TIMEOUT_MS);
    this.#scheduleIceRefresh(c);
  }

  /** TURN credentials expire: fetch new ones before they do and hand them to the connection. */
  #scheduleIceRefresh(c) {
    const ms = this.ice.refreshInMs();
    if (ms === null) return;
    clearTimeout(c.timers.iceRefresh);
    c.timers.iceRefresh = setTimeout(async () => {
      if (c !== this.call) return;
      const servers = await this.ice.get({ fresh: true });
      if (c.peerConn) c.peerConn.setConfig({ iceServers: servers });
      this.#scheduleIceRefresh(c);
    }, ms);
  }

  #report(c, stats = c.stats) {
    if (!c.id || !stats) return;
    this.socket.send('Call/Report', { data: { callId: c.id, stats } });
  }

  #save(c) {
    try {
      sessionStorage.setItem(SAVED_KEY, JSON.stringify({ id: c.id, media: c.media, wantVideo: !c.cameraOff || c.wantVideo, muted: c.muted }));
    } catch {
      // No storage: a reload will ask the server for the call's media instead.
    }
  }

  #restoreTitle() {
    if (this.#titleBefore !== null) {
      document.title = this.#titleBefore;
      this.#titleBefore = null;
    }
  }

  /** The call is over for this tab: everything stops, a last report goes out, the user is told. */
  #end(c, text) {
    if (c.phase === 'ended') return;
    c.phase = 'ended';
    stopRinging();
    if (c.id) closeNotification(c.id);
    this.#restoreTitle();
    clearInterval(c.timers.stats);
    clearInterval(c.timers.report);
    for (const k of ['connect', 'ice', 'back', 'iceRefresh']) clearTimeout(c.timers[k]);
    const peer = c.peerConn;
    if (peer) {
      // The last report: the record keeps each side's final view of the link.
      c.meter
        .sample(peer.pc)
        .then((stats) => this.#report(c, stats))
        .catch(() => this.#report(c))
        .finally(() => peer.close());
    }
    for (const tr of [c.mic, c.cam, c.screen]) if (tr) tr.stop();
    if (readSaved()?.id === c.id || !c.id) sessionStorage.removeItem(SAVED_KEY);
    if (this.call === c) this.call = null;
    this.emit('ended', c, text);
    this.#changed();
  }
}
