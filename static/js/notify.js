// System notifications for calls that ring while the tab is hidden. Permission is asked only
// when the user presses a button for it (browsers ignore or penalize asking on page load).

import { t } from './i18n.js';

const supported = 'Notification' in window;
const open = new Map(); // callId → Notification

export function permission() {
  return supported ? Notification.permission : 'unsupported';
}

export async function askPermission() {
  if (!supported) return 'unsupported';
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

/** Shows "X is calling you" if the tab is hidden and we may; clicking it opens the call. */
export function notifyIncoming(call, onOpen) {
  if (!supported || Notification.permission !== 'granted' || document.visibilityState !== 'hidden') return;
  if (open.has(call.id)) return;
  const name = call.peer.displayName || call.peer.username;
  const n = new Notification(t('notify.incoming', { name }), {
    body: t(call.media.video ? 'notify.body.video' : 'notify.body.audio'),
    tag: `duet-call-${call.id}`,
    icon: '/favicon.svg',
    requireInteraction: true,
    renotify: true,
  });
  n.onclick = () => {
    window.focus();
    n.close();
    onOpen();
  };
  n.onclose = () => open.delete(call.id);
  open.set(call.id, n);
}

/** Takes the call's notification away (answered elsewhere, cancelled, timed out, answered). */
export function closeNotification(callId) {
  const n = open.get(callId);
  if (n) {
    open.delete(callId);
    n.close();
  }
}

/** For tests and debugging: the ids of calls with a notification showing. */
export function openNotifications() {
  return [...open.keys()];
}
