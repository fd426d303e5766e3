// The call layer over the app: outgoing ringing, incoming ringing, and the call itself. It is
// rebuilt only when the kind of screen changes; within a call, updates touch the parts that
// change so the videos never flicker.

import { h, avatar } from './dom.js';
import { icon } from './icons.js';
import { createChat } from './chat.js';
import { t, clock } from '../i18n.js';

function ctrl({ label, iconName, onclick, cls = '', pressed = null, id = null }) {
  // Toggles change their name ("Mute" / "Unmute") rather than use aria-pressed, so the name
  // always says what pressing does; `is-on` only styles the active state.
  const b = h('button', { class: `ctrl ${cls}${pressed ? ' is-on' : ''}`, type: 'button', 'aria-label': label, title: label, onclick, id }, icon(iconName), h('span', { class: 'ctrl-label' }, label));
  return b;
}

function setCtrl(b, { label, iconName, pressed }) {
  b.setAttribute('aria-label', label);
  b.title = label;
  b.querySelector('.ctrl-label').textContent = label;
  b.querySelector('.icon').replaceWith(icon(iconName));
  if (pressed !== undefined) b.classList.toggle('is-on', pressed);
}

function modeOf(call) {
  if (!call || call.phase === 'ended') return null;
  if (call.phase === 'outgoing') return 'outgoing';
  if (call.phase === 'incoming') return 'incoming';
  return 'live';
}

function attach(video, stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  if (stream && video.paused) return video.play();
  return Promise.resolve();
}

export class CallView {
  constructor(root, calls, store, { onOpen, onClose }) {
    this.root = root;
    this.calls = calls;
    this.store = store;
    this.onOpen = onOpen;
    this.onClose = onClose;
    this.mode = null;
    this.callId = null;
    this.els = null;
    this.chat = null;
    this.tick = null;
    calls.on('change', (c) => this.update(c));
    calls.on('stats', (c) => c === calls.call && this.#updateQuality(c));
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.els) {
        if (this.els.devices && !this.els.devices.hidden) {
          this.#toggleDevices(false);
          ev.stopPropagation();
        } else if (this.els.drawer && !this.els.drawer.hidden) {
          this.#toggleChat(false);
          ev.stopPropagation();
        }
      }
    });
  }

  update(call) {
    const mode = modeOf(call);
    const id = call ? call.id || 'pending' : null;
    if (mode !== this.mode || (mode && this.callId !== id && this.callId !== 'pending')) {
      this.#build(mode, call);
    }
    this.callId = id;
    if (!mode) return;
    if (mode === 'outgoing') this.#updateOutgoing(call);
    else if (mode === 'live') this.#updateLive(call);
  }

  #teardown() {
    clearInterval(this.tick);
    this.tick = null;
    if (this.offMessage) this.offMessage();
    this.offMessage = null;
    if (this.chat) this.chat.destroy();
    this.chat = null;
    if (this.els) {
      for (const v of this.root.querySelectorAll('video')) v.srcObject = null;
    }
    this.els = null;
  }

  #build(mode, call) {
    const wasOpen = this.mode !== null;
    this.#teardown();
    this.mode = mode;
    if (!mode) {
      this.root.hidden = true;
      this.root.replaceChildren();
      if (wasOpen) this.onClose();
      return;
    }
    const name = call.peer.displayName || call.peer.username;
    this.root.hidden = false;
    this.root.className = `call-layer call-${mode}`;
    this.root.setAttribute('role', 'dialog');
    this.root.setAttribute('aria-modal', 'true');
    this.root.setAttribute('aria-labelledby', 'call-title');
    if (mode === 'outgoing') this.#buildOutgoing(call, name);
    else if (mode === 'incoming') this.#buildIncoming(call, name);
    else this.#buildLive(call, name);
    if (!wasOpen) this.onOpen();
    // Keyboard users land on the action that matters on this screen.
    requestAnimationFrame(() => this.els && this.els.primary && this.els.primary.focus());
  }

  // ---- outgoing ----

  #buildOutgoing(call, name) {
    const preview = h('video', { class: 'backdrop-video', muted: true, autoplay: true, playsInline: true, 'aria-hidden': 'true' });
    preview.muted = true;
    const status = h('p', { class: 'call-status', role: 'status', 'aria-live': 'polite' });
    const mute = ctrl({ label: t('call.mute'), iconName: 'mic', pressed: false, onclick: () => this.calls.toggleMute() });
    const cancel = ctrl({ label: t('call.cancel'), iconName: 'hangup', cls: 'ctrl-danger', onclick: () => this.calls.hangup() });
    this.els = { preview, status, mute, primary: cancel };
    this.root.replaceChildren(
      preview,
      h('div', { class: 'call-center' }, h('div', { class: 'ring-avatar' }, avatar(call.peer, { size: 'xl' })), h('h2', { id: 'call-title', class: 'call-name' }, name), h('p', { class: 'call-kind' }, call.media.video ? t('call.video') : t('call.audio')), status),
      h('div', { class: 'controls' }, mute, cancel),
    );
  }

  #updateOutgoing(call) {
    const e = this.els;
    const name = call.peer.displayName || call.peer.username;
    e.status.textContent = call.outgoing === 'ringing' ? t('call.ringing', { name }) : t('call.calling', { name });
    const v = call.localStream.getVideoTracks().length ? call.localStream : null;
    e.preview.hidden = !v;
    attach(e.preview, v).catch(() => {});
    setCtrl(e.mute, { label: call.muted ? t('call.unmute') : t('call.mute'), iconName: call.muted ? 'micOff' : 'mic', pressed: call.muted });
  }

  // ---- incoming ----

  #buildIncoming(call, name) {
    const video = !!call.media.video;
    const decline = ctrl({ label: t('call.reject'), iconName: 'hangup', cls: 'ctrl-danger', onclick: () => this.calls.reject() });
    const audio = ctrl({ label: video ? t('call.acceptAudio') : t('call.accept'), iconName: 'phone', cls: 'ctrl-accept', onclick: () => this.calls.accept({ video: false }) });
    const withVideo = video ? ctrl({ label: t('call.acceptVideo'), iconName: 'video', cls: 'ctrl-accept', onclick: () => this.calls.accept({ video: true }) }) : null;
    this.els = { primary: withVideo || audio };
    this.root.replaceChildren(
      h(
        'div',
        { class: 'call-center' },
        h('div', { class: 'ring-avatar ringing' }, avatar(call.peer, { size: 'xl' })),
        h('h2', { id: 'call-title', class: 'call-name' }, name),
        h('p', { class: 'call-status', role: 'alert' }, h('span', { class: 'sr-only' }, `${t('call.incoming', { name })}. `), video ? t('call.incoming.video') : t('call.incoming.audio')),
      ),
      h('div', { class: 'controls controls-incoming' }, decline, audio, withVideo),
    );
  }

  // ---- in the call ----

  #buildLive(call, name) {
    const remote = h('video', { class: 'remote-video', autoplay: true, playsInline: true });
    const local = h('video', { class: 'local-video', muted: true, autoplay: true, playsInline: true, 'aria-label': t('call.you') });
    local.muted = true;
    const placeholder = h('div', { class: 'remote-placeholder' }, avatar(call.peer, { size: 'xl' }), h('p', { class: 'placeholder-text' }));
    const badges = h('div', { class: 'stage-badges', 'aria-live': 'polite' });
    const play = h('button', { class: 'btn btn-primary play-btn', type: 'button', hidden: true, onclick: () => this.#play() }, t('call.resumeMedia'));
    const status = h('p', { class: 'call-status', role: 'status', 'aria-live': 'polite' });
    const timer = h('span', { class: 'call-timer', role: 'timer', 'aria-label': t('call.timer') }, '0:00');
    const quality = h('span', { class: 'quality q-unknown', role: 'img' }, h('span', { class: 'bar' }), h('span', { class: 'bar' }), h('span', { class: 'bar' }));
    const mute = ctrl({ label: t('call.mute'), iconName: 'mic', pressed: false, onclick: () => this.calls.toggleMute() });
    const camera = ctrl({ label: t('call.cameraOff'), iconName: 'video', pressed: false, onclick: () => this.calls.toggleCamera() });
    const canShare = !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
    const share = canShare ? ctrl({ label: t('call.share'), iconName: 'screen', pressed: false, onclick: () => this.calls.toggleScreen() }) : null;
    const devicesBtn = ctrl({ label: t('call.devices'), iconName: 'sliders', onclick: () => this.#toggleDevices() });
    devicesBtn.setAttribute('aria-expanded', 'false');
    devicesBtn.setAttribute('aria-controls', 'call-devices');
    const chatBtn = ctrl({ label: t('call.chat'), iconName: 'chat', onclick: () => this.#toggleChat() });
    chatBtn.setAttribute('aria-expanded', 'false');
    chatBtn.setAttribute('aria-controls', 'call-chat');
    const hangup = ctrl({ label: t('call.hangup'), iconName: 'hangup', cls: 'ctrl-danger', onclick: () => this.calls.hangup() });
    const devices = h('div', { class: 'devices-pop', id: 'call-devices', hidden: true, role: 'group', 'aria-label': t('call.devices') });
    const drawer = h('aside', { class: 'call-chat', id: 'call-chat', hidden: true, 'aria-label': t('call.chat') });
    this.els = { remote, local, placeholder, badges, play, status, timer, quality, mute, camera, share, devicesBtn, chatBtn, hangup, devices, drawer, primary: hangup, remoteStream: null, remoteKinds: '' };
    this.root.replaceChildren(
      h(
        'div',
        { class: 'stage' },
        remote,
        placeholder,
        badges,
        play,
        h('div', { class: 'call-top' }, h('h2', { id: 'call-title', class: 'call-name' }, name), h('span', { class: 'call-meta' }, timer, quality), status),
        local,
        h('div', { class: 'controls' }, mute, camera, share, devicesBtn, chatBtn, hangup),
        devices,
      ),
      drawer,
    );
    this.tick = setInterval(() => this.#updateTimer(this.calls.call), 1000);
    // A message from the other side while the chat drawer is closed marks the chat button.
    this.offMessage = this.store.on('message', (m, key) => {
      if (key === call.peer.id && m.fromId === call.peer.id && drawer.hidden) chatBtn.classList.add('has-unread');
    });
  }

  #updateTimer(call) {
    if (!call || !this.els || !this.els.timer) return;
    this.els.timer.textContent = call.answeredAt ? clock(Date.now() - call.answeredAt) : '0:00';
  }

  #updateQuality(call) {
    const q = this.els && this.els.quality;
    if (!q) return;
    q.className = `quality q-${call.quality}`;
    const label = t('call.quality', { level: t(`call.quality.${call.quality}`) });
    q.setAttribute('aria-label', label);
    q.title = call.stats && call.stats.rttMs != null ? `${label} · ${call.stats.rttMs} ms` : label;
  }

  #updateLive(call) {
    const e = this.els;
    const name = call.peer.displayName || call.peer.username;
    // Remote media: reattach when the stream or its set of tracks changed (a new connection
    // after a reload, a video track added by renegotiation).
    const rs = call.remoteStream;
    const kinds = rs ? rs.getTracks().map((tr) => tr.id).join(',') : '';
    if (rs !== e.remoteStream || kinds !== e.remoteKinds) {
      e.remoteStream = rs;
      e.remoteKinds = kinds;
      e.remote.srcObject = null;
      e.remote.srcObject = rs;
      if (rs) this.#play();
    }
    const hasRemoteVideo = !!(rs && rs.getVideoTracks().length);
    const peerCamOff = !hasRemoteVideo || (call.remoteState.cameraOff && !call.remoteState.sharing);
    e.placeholder.hidden = !peerCamOff;
    e.remote.classList.toggle('is-hidden', peerCamOff);
    e.remote.classList.toggle('is-screen', call.remoteState.sharing);
    // In a video call a missing picture means the camera was turned off; in an audio call it is
    // just what the call is.
    e.placeholder.querySelector('.placeholder-text').textContent = !call.media.video ? t('call.audio') : call.remoteState.cameraOff ? t('call.peerCameraOff', { name }) : '';

    const badges = [];
    if (call.remoteState.muted) badges.push(h('span', { class: 'badge-pill' }, icon('micOff', 'icon-sm'), t('call.peerMuted', { name })));
    if (call.remoteState.sharing) badges.push(h('span', { class: 'badge-pill' }, icon('screen', 'icon-sm'), t('call.peerSharing', { name })));
    if (call.muted) badges.push(h('span', { class: 'badge-pill badge-self' }, icon('micOff', 'icon-sm'), t('call.youMuted')));
    const key = badges.map((b) => b.textContent).join('|');
    if (e.badges.dataset.key !== key) {
      e.badges.dataset.key = key;
      e.badges.replaceChildren(...badges);
    }

    // Local preview: mirrored camera, not mirrored screen.
    const hasLocalVideo = call.localStream.getVideoTracks().length > 0;
    e.local.hidden = !hasLocalVideo;
    e.local.classList.toggle('is-mirrored', !call.screen);
    if (hasLocalVideo) {
      if (e.local.srcObject !== call.localStream) e.local.srcObject = call.localStream;
      e.local.play().catch(() => {});
    }

    let status;
    if (call.phase === 'accepting' || (call.phase === 'connecting' && !call.peerAway)) status = t('call.connecting');
    else if (call.peerAway) status = t('call.peerReconnecting', { name });
    else if (!this.calls.socket.open || call.reconnecting) status = t('call.reconnecting');
    else status = t('call.connected');
    if (e.status.textContent !== status) e.status.textContent = status;
    this.root.dataset.state = call.phase;

    setCtrl(e.mute, { label: call.muted ? t('call.unmute') : t('call.mute'), iconName: call.muted ? 'micOff' : 'mic', pressed: call.muted });
    setCtrl(e.camera, { label: call.cameraOff ? t('call.cameraOn') : t('call.cameraOff'), iconName: call.cameraOff ? 'videoOff' : 'video', pressed: call.cameraOff });
    if (e.share) setCtrl(e.share, { label: call.screen ? t('call.stopShare') : t('call.share'), iconName: call.screen ? 'screenOff' : 'screen', pressed: !!call.screen });
    this.#updateTimer(call);
    this.#updateQuality(call);
  }

  #play() {
    const e = this.els;
    if (!e || !e.remote) return;
    e.remote
      .play()
      .then(() => {
        e.play.hidden = true;
      })
      .catch((err) => {
        // Autoplay refused (a reload with no click yet): one click starts sound and picture.
        if (err && err.name === 'NotAllowedError') e.play.hidden = false;
      });
  }

  async #toggleDevices(force) {
    const e = this.els;
    const open = force ?? e.devices.hidden;
    e.devices.hidden = !open;
    e.devicesBtn.setAttribute('aria-expanded', String(open));
    if (!open) {
      e.devicesBtn.focus();
      return;
    }
    const { cameras, microphones } = await this.calls.devices();
    const call = this.calls.call;
    const select = (id, label, list, current, kind) =>
      h(
        'div',
        { class: 'field' },
        h('label', { for: id }, label),
        h(
          'select',
          { id, onchange: (ev) => this.calls.switchDevice(kind, ev.target.value) },
          list.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${label} ${i + 1}`)),
        ),
      );
    const camId = call && call.cam ? call.cam.getSettings().deviceId : null;
    const micId = call && call.mic ? call.mic.getSettings().deviceId : null;
    e.devices.replaceChildren(
      select('dev-mic', t('call.microphone'), microphones, micId, 'audioinput'),
      select('dev-cam', t('call.camera'), cameras, camId, 'videoinput'),
      h('button', { class: 'btn btn-ghost btn-block', type: 'button', onclick: () => this.#toggleDevices(false) }, t('settings.close')),
    );
    const first = e.devices.querySelector('select');
    if (first) first.focus();
  }

  #toggleChat(force) {
    const e = this.els;
    const call = this.calls.call;
    if (!e || !call) return;
    const open = force ?? e.drawer.hidden;
    e.drawer.hidden = !open;
    e.chatBtn.setAttribute('aria-expanded', String(open));
    e.chatBtn.classList.remove('has-unread');
    this.root.classList.toggle('chat-open', open);
    if (open) {
      if (!this.chat) {
        const close = h('button', { class: 'btn btn-icon btn-ghost', type: 'button', 'aria-label': t('call.closeChat'), title: t('call.closeChat'), onclick: () => this.#toggleChat(false) }, icon('close'));
        const header = h('header', { class: 'pane-head' }, h('h3', {}, t('call.chat')), close);
        this.chat = createChat(this.store, call.peer.id, { compact: true, header });
        e.drawer.replaceChildren(this.chat.el);
      }
      this.chat.focus();
    } else {
      e.chatBtn.focus();
    }
  }
}
