// One RTCPeerConnection with "perfect negotiation": either side may (re)negotiate at any time, for
// a new track, a screen share or an ICE restart, and an offer collision never deadlocks: the
// impolite side ignores the colliding offer, the polite side rolls its own back.
//
// Every message this side signals carries its connection id (`pcId`) and the id of the remote
// connection it was meant for (`toPcId`). A page reload makes a new RTCPeerConnection with a new
// id; the other side sees an offer from an unknown id and starts a fresh connection to answer it
// (see call.js), and messages meant for a connection that no longer exists are dropped.

import { Emitter } from './emitter.js';

function randomId() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class Peer extends Emitter {
  /**
   * @param {object} o
   * @param {boolean} o.polite      yields on offer collisions
   * @param {RTCIceServer[]} o.iceServers
   * @param {boolean} o.relayOnly   iceTransportPolicy "relay" (hides this side's address)
   * @param {boolean} o.waitForOffer  the other side makes the first offer (the callee's case)
   * @param {(kind: string, payload: object) => void} o.send  signals an offer, answer or candidate
   */
  constructor({ polite, iceServers, relayOnly, waitForOffer, send }) {
    super();
    this.id = randomId();
    this.polite = polite;
    this.remotePcId = null;
    this.relayOnly = !!relayOnly;
    this.waitForOffer = !!waitForOffer;
    this.closed = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.send = send;
    this.remoteStream = new MediaStream();

    this.pc = new RTCPeerConnection({
      iceServers: iceServers || [],
      iceTransportPolicy: this.relayOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
    });
    // Negotiated on both sides with the same id, so neither waits for the other to announce it.
    this.dc = this.pc.createDataChannel('duet', { negotiated: true, id: 0, ordered: true });
    this.dc.onopen = () => this.emit('dcopen');
    this.dc.onmessage = (ev) => {
      try {
        this.emit('data', JSON.parse(ev.data));
      } catch {
        // Not ours: ignore.
      }
    };

    this.pc.onnegotiationneeded = () => this.#negotiate();
    this.pc.onicecandidate = ({ candidate }) => {
      // The end-of-candidates marker (null) is not signaled; trickle carries on without it.
      if (!candidate || !candidate.candidate) return;
      this.send('candidate', {
        candidate: { candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex },
      });
    };
    this.pc.ontrack = ({ track }) => {
      for (const old of this.remoteStream.getTracks()) {
        if (old.kind === track.kind && old !== track) this.remoteStream.removeTrack(old);
      }
      if (!this.remoteStream.getTracks().includes(track)) this.remoteStream.addTrack(track);
      track.onunmute = () => this.emit('remote', this.remoteStream);
      this.emit('remote', this.remoteStream);
    };
    this.pc.oniceconnectionstatechange = () => this.emit('ice', this.pc.iceConnectionState);
    this.pc.onconnectionstatechange = () => this.emit('connection', this.pc.connectionState);
  }

  async #negotiate() {
    // The callee waits for the caller's offer: the server forwards nothing before the call is
    // active, and the first offer decides the order of the media sections.
    if (this.closed || this.waitForOffer) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const d = this.pc.localDescription;
      this.send('offer', { sdp: { type: d.type, sdp: d.sdp } });
    } catch (e) {
      if (!this.closed) console.warn('creating an offer failed', e);
    } finally {
      this.makingOffer = false;
    }
  }

  /** Sends the pending local offer again (the server refused it while the peer was away). */
  resendOffer() {
    const d = this.pc.localDescription;
    if (this.closed || this.pc.signalingState !== 'have-local-offer' || !d) return false;
    this.send('offer', { sdp: { type: d.type, sdp: d.sdp } });
    return true;
  }

  /** A remote offer or answer. */
  async handleDescription(description, fromPcId) {
    if (this.closed) return;
    const pc = this.pc;
    const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswer);
    const collision = description.type === 'offer' && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // stale
    this.settingRemoteAnswer = description.type === 'answer';
    try {
      await pc.setRemoteDescription(description);
    } finally {
      this.settingRemoteAnswer = false;
    }
    if (fromPcId) this.remotePcId = fromPcId;
    if (description.type === 'offer') {
      this.waitForOffer = false;
      await pc.setLocalDescription();
      const d = pc.localDescription;
      this.send('answer', { sdp: { type: d.type, sdp: d.sdp } });
    }
  }

  async addCandidate(candidate) {
    if (this.closed || !candidate) return;
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (e) {
      // Candidates of an offer we ignored, or of an ICE generation already replaced, fail
      // harmlessly.
      if (!this.ignoreOffer && this.pc.remoteDescription) console.warn('ICE candidate refused', e.message);
    }
  }

  /** Attaches the local tracks: sendrecv where there is a track; receive-only otherwise (a
   *  participant without a camera still sees the other side). */
  attachLocal(stream, { audio, video, receiveVideo }) {
    if (audio) this.pc.addTrack(audio, stream);
    if (video) this.pc.addTrack(video, stream);
    // The callee's receive-only sections come from the caller's offer; only an offerer adds them.
    if (!this.waitForOffer) {
      if (!audio) this.pc.addTransceiver('audio', { direction: 'recvonly' });
      if (!video && receiveVideo) this.pc.addTransceiver('video', { direction: 'recvonly' });
    }
  }

  #transceiver(kind) {
    return this.pc
      .getTransceivers()
      .find((t) => !t.stopped && t.currentDirection !== 'stopped' && (t.sender.track?.kind === kind || t.receiver.track.kind === kind));
  }

  /** Puts `track` (or nothing) on the sender of `kind`. Replacing a track needs no negotiation;
   *  sending where nothing was sent before (an audio call turning video on, a screen share in an
   *  audio call) renegotiates through onnegotiationneeded. */
  async setTrack(kind, track, stream) {
    if (this.closed) return;
    const t = this.#transceiver(kind);
    if (!t) {
      if (track) this.pc.addTrack(track, stream);
      return;
    }
    await t.sender.replaceTrack(track);
    if (track) {
      if (stream && t.sender.setStreams) t.sender.setStreams(stream);
      if (t.direction === 'recvonly' || t.direction === 'inactive') {
        t.direction = t.direction === 'recvonly' ? 'sendrecv' : 'sendonly';
      }
    }
  }

  setConfig({ iceServers, relayOnly }) {
    if (this.closed) return;
    if (relayOnly !== undefined) this.relayOnly = relayOnly;
    const cfg = this.pc.getConfiguration();
    if (iceServers) cfg.iceServers = iceServers;
    cfg.iceTransportPolicy = this.relayOnly ? 'relay' : 'all';
    try {
      this.pc.setConfiguration(cfg);
    } catch (e) {
      console.warn('setConfiguration failed', e);
    }
  }

  /** An ICE restart: a new offer with new ICE credentials (onnegotiationneeded does the rest). */
  restartIce() {
    if (this.closed || this.waitForOffer) return;
    this.pc.restartIce();
  }

  sendData(obj) {
    if (this.dc.readyState === 'open') this.dc.send(JSON.stringify(obj));
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    try {
      this.dc.close();
    } catch {
      // Already closed.
    }
    this.pc.close();
  }
}
