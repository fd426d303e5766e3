// A conversation: the lobby (withId 0) or one contact. History loads newest first and older pages
// arrive as the user scrolls up; new messages stick to the bottom unless the user scrolled away.

import { h, avatar } from './dom.js';
import { icon } from './icons.js';
import { t, clockTime, dayLabel, errorText } from '../i18n.js';
import { LOBBY } from '../store.js';

const NEAR_TOP_PX = 120;
const NEAR_BOTTOM_PX = 80;

/**
 * @param {import('../store.js').Store} store
 * @param {number} withId
 * @param {{compact?: boolean, header?: HTMLElement}} opts  compact: the drawer inside a call
 */
export function createChat(store, withId, { compact = false, header = null } = {}) {
  const lobby = withId === LOBBY;
  const name = lobby ? t('chat.lobby') : store.nameOf(withId);
  const list = h('ol', { class: 'messages-list' });
  const older = h('p', { class: 'messages-older', hidden: true }, t('chat.loadingOlder'));
  const start = h('p', { class: 'messages-start', hidden: true }, t('chat.start'));
  const empty = h('p', { class: 'messages-empty', hidden: true }, t('chat.empty'));
  const spacer = h('div', { class: 'messages-spacer' });
  const scroller = h(
    'div',
    { class: 'messages', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': `${t('chat.messages')} – ${name}`, tabindex: '0' },
    // Pushes a short conversation to the bottom, next to the composer, as chats read.
    spacer,
    older,
    start,
    empty,
    list,
  );
  const inputId = `composer-${compact ? 'call-' : ''}${withId}`;
  const input = h('textarea', {
    id: inputId,
    class: 'composer-input',
    rows: 1,
    maxlength: 4000,
    placeholder: lobby ? t('chat.placeholder') : t('chat.placeholder.to', { name }),
    autocomplete: 'off',
  });
  const sendBtn = h('button', { class: 'btn btn-icon btn-primary', type: 'submit', 'aria-label': t('chat.send'), title: t('chat.send') }, icon('send'));
  const error = h('p', { class: 'composer-error', role: 'alert' });
  const form = h('form', { class: 'composer' }, h('label', { class: 'sr-only', for: inputId }, lobby ? t('chat.placeholder') : t('chat.placeholder.to', { name })), input, sendBtn);
  const el = h('section', { class: `chat${compact ? ' chat-compact' : ''}`, 'aria-label': name }, header, scroller, error, form);

  let rendered = new Set();
  let lastDay = null;
  let lastFrom = null;

  function bubble(m) {
    const mine = m.fromId === store.me?.id;
    const from = store.user(m.fromId) || { id: m.fromId, displayName: m.username || `#${m.fromId}`, username: m.username };
    const showName = lobby && !mine && lastFrom !== m.fromId;
    lastFrom = m.fromId;
    return h(
      'li',
      { class: `msg${mine ? ' msg-mine' : ''}`, dataset: { id: String(m.id) } },
      lobby && !mine ? (showName ? avatar(from, { size: 'sm' }) : h('span', { class: 'avatar-gap' })) : null,
      h(
        'div',
        { class: 'msg-body' },
        showName ? h('span', { class: 'msg-from' }, from.displayName || from.username) : null,
        h('p', { class: 'msg-text' }, m.message),
        h('time', { class: 'msg-time', datetime: m.sentAt }, clockTime(m.sentAt)),
      ),
    );
  }

  /** Rebuilds the list (on first load and after older messages arrive). */
  function renderAll() {
    const c = store.conversation(withId);
    list.replaceChildren();
    rendered = new Set();
    lastDay = null;
    lastFrom = null;
    for (const m of c.messages) appendMessage(m);
    empty.hidden = !(c.loaded && c.messages.length === 0);
    spacer.hidden = !empty.hidden;
    start.hidden = !(c.loaded && !c.hasMore && c.messages.length > 0);
  }

  function appendMessage(m) {
    if (rendered.has(m.id)) return;
    rendered.add(m.id);
    const day = dayLabel(m.sentAt);
    if (day !== lastDay) {
      list.append(h('li', { class: 'day', role: 'presentation' }, h('span', {}, day)));
      lastDay = day;
      lastFrom = null;
    }
    list.append(bubble(m));
  }

  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  const toBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
  };

  async function loadOlder() {
    const c = store.conversation(withId);
    if (!c.loaded || !c.hasMore || c.loading) return;
    older.hidden = false;
    const before = scroller.scrollHeight - scroller.scrollTop;
    try {
      const added = await store.loadOlder(withId);
      if (added) {
        renderAll();
        // Keep what the user was looking at in place.
        scroller.scrollTop = scroller.scrollHeight - before;
      }
    } catch {
      // Tried again on the next scroll.
    } finally {
      older.hidden = true;
      start.hidden = !(c.loaded && !c.hasMore && c.messages.length > 0);
    }
  }

  /** Loads older pages until the list can scroll (or there is nothing older). */
  async function fill() {
    const c = store.conversation(withId);
    while (c.hasMore && scroller.scrollHeight <= scroller.clientHeight + NEAR_TOP_PX && el.isConnected) {
      const n = await store.loadOlder(withId).catch(() => 0);
      if (!n) break;
      renderAll();
      toBottom();
    }
  }

  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < NEAR_TOP_PX) loadOlder();
  });

  input.addEventListener('keydown', (ev) => {
    // Enter sends; Shift+Enter starts a new line (and IME composition is left alone).
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener('input', () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
    error.textContent = '';
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    sendBtn.disabled = true;
    try {
      await store.sendMessage(withId, text);
      input.value = '';
      input.style.height = 'auto';
      error.textContent = '';
    } catch (e) {
      error.textContent = t('chat.failed', { reason: e.code === 'disconnected' ? t('conn.reconnecting') : errorText(e.code) });
    } finally {
      sendBtn.disabled = false;
      input.focus();
    }
  });

  const offMessage = store.on('message', (m, key) => {
    if (key !== withId) return;
    const stick = nearBottom() || m.fromId === store.me?.id;
    appendMessage(m);
    empty.hidden = true;
    spacer.hidden = false;
    if (stick) toBottom();
    if (document.visibilityState === 'visible' && el.isConnected && m.fromId !== store.me?.id) store.markRead(withId);
  });
  const offConversation = store.on('conversation', (id) => {
    if (id !== withId) return;
    const stick = nearBottom();
    renderAll();
    if (stick) toBottom();
  });

  store
    .loadConversation(withId)
    .then(() => {
      renderAll();
      toBottom();
      fill();
    })
    .catch(() => {
      error.textContent = t('error.network');
    });
  store.markRead(withId);

  return {
    el,
    focus: () => input.focus(),
    destroy() {
      offMessage();
      offConversation();
    },
  };
}
