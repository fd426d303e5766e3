// Starts the app: decides between the auth pages and the signed-in shell, and wires the modules.

import { api } from './api.js';
import { Socket } from './socket.js';
import { Store } from './store.js';
import { IceServers } from './ice.js';
import { CallManager } from './call.js';
import { router } from './router.js';
import { lang, t, errorText } from './i18n.js';
import { unlockOnGesture } from './ringer.js';
import { openNotifications } from './notify.js';
import { renderAuth } from './ui/auth.js';
import { Shell } from './ui/shell.js';
import { h } from './ui/dom.js';

// Set when this browser signed in, so a visitor who never did is not asked about a session
// (a 401 for every first visit would be noise).
const SIGNED_IN_KEY = 'duet.signedIn';

document.documentElement.lang = lang;
document.title = t('app.name');
unlockOnGesture();

const root = document.getElementById('app');
const socket = new Socket();
const store = new Store();
store.attach(socket);
const ice = new IceServers();
const calls = new CallManager({ socket, store, ice });
socket.extraDelay = () => calls.reconnectDelay();
let shell = null;

// For tests and debugging in the console: the live call and its RTCPeerConnection.
window.duet = {
  get pc() {
    return calls.call && calls.call.peerConn ? calls.call.peerConn.pc : null;
  },
  get call() {
    const c = calls.call;
    return c ? { id: c.id, phase: c.phase, role: c.role, peerId: c.peer.id, muted: c.muted, cameraOff: c.cameraOff, remoteState: { ...c.remoteState }, quality: c.quality, stats: c.stats } : null;
  },
  get me() {
    return store.me;
  },
  get socketState() {
    return socket.state;
  },
  notifications: openNotifications,
};

function signedIn(user) {
  try {
    localStorage.setItem(SIGNED_IN_KEY, '1');
  } catch {
    // No storage: the session cookie still works for this page.
  }
  store.me = user;
  startShell();
}

function startShell() {
  if (shell) shell.destroy();
  const r = router.current;
  if (r.name === 'signin' || r.name === 'signup') history.replaceState(null, '', '/');
  shell = new Shell(root, { store, socket, calls, onSignOut: signOut });
  shell.mount();
  socket.start();
}

function showAuth(notice = null) {
  if (shell) {
    shell.destroy();
    shell = null;
  }
  const r = router.current;
  const mode = r.name === 'signup' ? 'signup' : 'signin';
  if (r.name !== mode) history.replaceState(null, '', `/${mode}`);
  renderAuth(root, mode, signedIn, notice);
}

function forget() {
  try {
    localStorage.removeItem(SIGNED_IN_KEY);
    sessionStorage.removeItem('duet.call');
  } catch {
    // Nothing stored.
  }
  store.reset();
}

async function signOut() {
  if (calls.call) calls.hangup();
  socket.stop();
  try {
    await api.logout();
  } catch {
    // Already signed out on the server, or unreachable: the local session ends either way.
  }
  forget();
  showAuth();
}

socket.on('signedout', () => {
  if (calls.call) calls.hangup();
  forget();
  showAuth(errorText('unauthorized'));
});

router.on('route', (r) => {
  if (!shell && (r.name === 'signin' || r.name === 'signup')) showAuth();
  else if (!shell) showAuth();
});

async function boot() {
  let hinted = false;
  try {
    hinted = localStorage.getItem(SIGNED_IN_KEY) === '1';
  } catch {
    hinted = false;
  }
  if (!hinted) {
    showAuth();
    return;
  }
  // The server may be restarting: keep asking instead of showing the sign-in page.
  for (let attempt = 0; ; attempt++) {
    try {
      const { user } = await api.me();
      store.me = user;
      startShell();
      return;
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        forget();
        showAuth();
        return;
      }
      root.replaceChildren(h('main', { class: 'splash', role: 'status' }, h('img', { src: '/favicon.svg', alt: '', width: 48, height: 48 }), h('p', {}, t('conn.reconnecting'))));
      await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** attempt)));
    }
  }
}

boot();
