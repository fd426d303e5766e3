// The signed-in app: top bar, the sidebar (contacts or call history), the main pane (a chat or a
// call's details), toasts, banners and the settings dialog. On a phone-sized screen the sidebar
// and the main pane take turns.

import { h, avatar, srOnly } from './dom.js';
import { icon } from './icons.js';
import { createChat } from './chat.js';
import { createHistoryList, createCallDetail } from './history.js';
import { createDirectory } from './directory.js';
import { CallView } from './callview.js';
import { t, errorText } from '../i18n.js';
import { router } from '../router.js';
import { LOBBY } from '../store.js';
import { settings, saveSetting } from '../settings.js';
import { permission, askPermission } from '../notify.js';

const TOAST_MS = 6000;

export class Shell {
  constructor(root, { store, socket, calls, onSignOut }) {
    this.root = root;
    this.store = store;
    this.socket = socket;
    this.calls = calls;
    this.onSignOut = onSignOut;
    this.query = '';
    this.pane = null; // the component in the main pane
    this.history = null;
    this.offs = [];
  }

  mount() {
    const store = this.store;
    this.connPill = h('span', { class: 'conn-pill', role: 'status', 'aria-live': 'polite' });
    this.meChip = h('span', { class: 'me-chip' });
    const settingsBtn = h('button', { class: 'btn btn-icon btn-ghost', type: 'button', 'aria-label': t('nav.settings'), title: t('nav.settings'), onclick: () => this.openSettings() }, icon('sliders'));
    const signOutBtn = h('button', { class: 'btn btn-icon btn-ghost', type: 'button', 'aria-label': t('auth.signout'), title: t('auth.signout'), onclick: () => this.onSignOut() }, icon('signout'));
    const topbar = h(
      'header',
      { class: 'topbar' },
      h('a', { class: 'brand brand-small', href: '/', 'data-link': true, 'aria-label': t('app.name') }, h('img', { src: '/favicon.svg', alt: '', width: 28, height: 28 }), h('span', { class: 'brand-name' }, t('app.name'))),
      this.connPill,
      h('span', { class: 'spacer' }),
      this.meChip,
      settingsBtn,
      signOutBtn,
    );

    this.tabChats = h('a', { class: 'tab', href: '/', 'data-link': true }, t('nav.chats'));
    this.tabCalls = h('a', { class: 'tab', href: '/calls', 'data-link': true }, t('nav.calls'));
    const search = h('input', { id: 'contact-search', class: 'search-input', type: 'search', placeholder: t('contacts.search'), autocomplete: 'off', spellcheck: 'false' });
    // The box filters the contacts at once and, after a pause, searches the whole directory.
    this.directory = createDirectory(store, { onAdd: (u) => this.addContact(u) });
    search.addEventListener('input', () => {
      this.query = search.value.trim().toLowerCase();
      this.renderContacts();
      this.directory.search(search.value);
    });
    this.contactList = h('ul', { class: 'contact-list', 'aria-label': t('contacts.title') });
    this.contactEmpty = h('p', { class: 'list-empty', role: 'status' });
    this.chatsPanel = h(
      'div',
      { class: 'panel' },
      h('div', { class: 'search' }, icon('search', 'search-icon'), h('label', { class: 'sr-only', for: 'contact-search' }, t('contacts.search')), search),
      this.contactList,
      this.contactEmpty,
      this.directory.el,
    );
    this.callsPanel = h('div', { class: 'panel', hidden: true });
    this.notifyBanner = h('div', { class: 'notify-banner', hidden: true });
    this.sidebar = h('nav', { class: 'sidebar', 'aria-label': t('contacts.title') }, h('div', { class: 'tabs' }, this.tabChats, this.tabCalls), this.notifyBanner, this.chatsPanel, this.callsPanel);
    this.main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
    this.layout = h('div', { class: 'layout', dataset: { pane: 'list' } }, this.sidebar, this.main);
    this.app = h('div', { class: 'app' }, topbar, this.layout);
    this.banner = h('div', { class: 'banner', role: 'status', 'aria-live': 'polite', hidden: true });
    this.toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    this.callLayer = h('section', { class: 'call-layer', hidden: true });
    this.settingsDialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'settings-title' });
    this.root.replaceChildren(h('a', { class: 'skip-link', href: '#main' }, t('chat.messages')), this.banner, this.app, this.callLayer, this.toasts, this.settingsDialog);

    this.callView = new CallView(this.callLayer, this.calls, store, {
      // While a call screen is up, the rest of the app is out of reach of keyboard and screen
      // reader, as behind any modal dialog.
      onOpen: () => {
        this.lastFocus = document.activeElement;
        this.app.inert = true;
      },
      onClose: () => {
        this.app.inert = false;
        if (this.lastFocus && this.lastFocus.isConnected) this.lastFocus.focus();
      },
    });

    this.offs.push(
      store.on('users', () => {
        this.renderContacts();
        this.renderMe();
        this.renderPaneHeader();
      }),
      store.on('me', () => this.renderMe()),
      this.socket.on('state', (s) => this.renderConnection(s)),
      this.calls.on('ended', (c, text) => {
        if (text) this.toast(text, { missed: !!c.missed });
        if (this.history) this.history.reload();
      }),
      this.calls.on('notice', (text) => this.toast(text)),
      this.calls.on('open-call', () => this.callView.update(this.calls.call)),
      router.on('route', (r) => this.route(r)),
    );
    this.renderConnection(this.socket.state);
    this.renderMe();
    this.renderContacts();
    this.renderNotifyBanner();
    this.route(router.current);
    this.callView.update(this.calls.call);
  }

  destroy() {
    for (const off of this.offs) off();
    this.offs = [];
    if (this.pane) this.pane.destroy();
    if (this.history) this.history.destroy();
    this.directory.destroy();
    this.root.replaceChildren();
  }

  // ---- top bar and banners ----

  renderMe() {
    const me = this.store.me;
    if (!me) return;
    const live = this.store.user(me.id) || me;
    this.meChip.replaceChildren(avatar(live, { size: 'sm', status: live.status }), h('span', { class: 'me-name' }, live.displayName || live.username), srOnly(`, ${t(`status.${live.status}`)}`));
    const unread = this.store.contacts().reduce((n, u) => n + (u.unread || 0), 0);
    if (!this.calls.call || this.calls.call.phase !== 'incoming') document.title = unread ? `(${unread}) ${t('app.name')}` : t('app.name');
  }

  renderConnection(state) {
    const text = { connecting: t('conn.connecting'), open: t('conn.online'), reconnecting: t('conn.reconnecting'), restarting: t('conn.restarting'), closed: '' }[state] || '';
    this.connPill.textContent = state === 'open' ? '' : text;
    this.connPill.dataset.state = state;
    const problem = state === 'reconnecting' || state === 'restarting';
    this.banner.hidden = !problem;
    this.banner.textContent = problem ? text : '';
    this.banner.dataset.state = state;
  }

  renderNotifyBanner() {
    const b = this.notifyBanner;
    if (permission() !== 'default' || settings.notifyDismissed) {
      b.hidden = true;
      return;
    }
    b.hidden = false;
    b.replaceChildren(
      icon('bell'),
      h('p', {}, t('notify.ask')),
      h(
        'div',
        { class: 'notify-actions' },
        h('button', { class: 'btn btn-small btn-primary', type: 'button', onclick: async () => { await askPermission(); this.renderNotifyBanner(); } }, t('notify.enable')),
        h('button', { class: 'btn btn-small btn-ghost', type: 'button', onclick: () => { saveSetting('notifyDismissed', true); this.renderNotifyBanner(); } }, t('notify.dismiss')),
      ),
    );
  }

  toast(text, { missed = false } = {}) {
    const el = h('div', { class: `toast${missed ? ' toast-missed' : ''}` }, text);
    this.toasts.append(el);
    setTimeout(() => el.remove(), TOAST_MS);
  }

  // ---- sidebar ----

  callButtons(user) {
    const name = user.displayName || user.username;
    return h(
      'div',
      { class: 'contact-actions' },
      h('button', { class: 'btn btn-icon btn-ghost', type: 'button', 'aria-label': t('call.audioWith', { name }), title: t('call.audio'), onclick: () => this.calls.start(user, { video: false }) }, icon('phone')),
      h('button', { class: 'btn btn-icon btn-ghost', type: 'button', 'aria-label': t('call.videoWith', { name }), title: t('call.video'), onclick: () => this.calls.start(user, { video: true }) }, icon('video')),
    );
  }

  /** Adds `user` to my contacts and says how that went; resolves with whether it worked. */
  async addContact(user) {
    const name = user.displayName || user.username;
    try {
      await this.store.addContact(user.id);
      this.toast(t('contacts.added', { name }));
      return true;
    } catch (e) {
      this.toast(t('contacts.addFailed', { name, reason: errorText(e.code, { message: e.message }) }));
      return false;
    }
  }

  async removeContact(user) {
    const name = user.displayName || user.username;
    try {
      const kept = await this.store.removeContact(user.id);
      this.toast(t(kept ? 'contacts.kept' : 'contacts.removed', { name }));
    } catch (e) {
      this.toast(t('contacts.removeFailed', { name, reason: errorText(e.code, { message: e.message }) }));
    }
  }

  renderContacts() {
    const store = this.store;
    const r = router.current;
    const current = r.name === 'chat' ? r.withId : null;
    // Keep keyboard focus where it was across the re-render.
    const active = document.activeElement;
    const focusKey = active && this.contactList.contains(active) ? `${active.closest('[data-key]')?.dataset.key}|${active.getAttribute('aria-label') || active.className}` : null;

    const q = this.query;
    const contacts = store.contacts().filter((u) => !q || u.displayName.toLowerCase().includes(q) || u.username.toLowerCase().includes(q));
    const items = [];
    if (!q || t('chat.lobby').toLowerCase().includes(q)) {
      items.push(
        h(
          'li',
          { class: 'contact', dataset: { key: 'lobby' } },
          h(
            'a',
            { class: 'contact-open', href: '/chat/lobby', 'data-link': true, 'aria-current': current === LOBBY ? 'page' : null },
            h('span', { class: 'avatar avatar-md avatar-lobby', 'aria-hidden': 'true' }, icon('lobby')),
            h('span', { class: 'item-main' }, h('span', { class: 'item-title' }, t('chat.lobby')), h('span', { class: 'item-sub' }, t('chat.lobby.desc'))),
          ),
        ),
      );
    }
    for (const u of contacts) {
      const name = u.displayName || u.username;
      items.push(
        h(
          'li',
          { class: `contact status-${u.status}`, dataset: { key: String(u.id), userId: String(u.id), status: u.status } },
          h(
            'a',
            { class: 'contact-open', href: `/chat/${u.id}`, 'data-link': true, 'aria-current': current === u.id ? 'page' : null },
            avatar(u, { size: 'md', status: u.status }),
            h('span', { class: 'item-main' }, h('span', { class: 'item-title' }, name), h('span', { class: 'item-sub presence-text' }, t(`status.${u.status}`))),
            u.unread ? h('span', { class: 'unread-badge', 'aria-label': t('unread', { n: u.unread }) }, String(u.unread)) : null,
          ),
          this.callButtons(u),
        ),
      );
    }
    this.contactList.replaceChildren(...items);
    this.contactEmpty.textContent = contacts.length ? '' : q ? t('contacts.noMatch', { q: this.query }) : t('contacts.empty');
    if (focusKey) {
      const [key, which] = focusKey.split('|');
      const li = this.contactList.querySelector(`[data-key="${CSS.escape(key)}"]`);
      const target = li && ([...li.querySelectorAll('a, button')].find((el) => (el.getAttribute('aria-label') || el.className) === which) || li.querySelector('a'));
      if (target) target.focus();
    }
    this.directory.render();
  }

  // ---- main pane ----

  backButton() {
    return h('button', { class: 'btn btn-icon btn-ghost back-btn', type: 'button', 'aria-label': t('nav.back'), title: t('nav.back'), onclick: () => router.go(router.current.name === 'call' ? '/calls' : '/') }, icon('back'));
  }

  chatHeader(withId) {
    if (withId === LOBBY) {
      return h('header', { class: 'pane-head' }, this.backButton(), h('span', { class: 'avatar avatar-md avatar-lobby', 'aria-hidden': 'true' }, icon('lobby')), h('div', { class: 'pane-title' }, h('h2', {}, t('chat.lobby')), h('p', { class: 'pane-sub' }, t('chat.lobby.desc'))));
    }
    const u = this.store.user(withId) || { id: withId, displayName: `#${withId}`, username: '', status: 'offline' };
    this.headerName = h('h2', {}, u.displayName || u.username);
    this.headerStatus = h('p', { class: 'pane-sub presence-text' });
    this.headerAvatar = avatar(u, { size: 'md', status: u.status });
    this.headerActions = h('div', { class: 'contact-actions' });
    this.headerDrawn = null; // for whom the buttons were drawn: contact or not, and the name
    const head = h('header', { class: 'pane-head' }, this.backButton(), this.headerAvatar, h('div', { class: 'pane-title' }, this.headerName, this.headerStatus), this.headerActions);
    this.renderHeaderDetails(u);
    return head;
  }

  /** The header's status line and buttons: call, and add to or remove from the contacts. */
  renderHeaderDetails(u) {
    // Until the contact list has arrived (a reload on a chat's address), say nothing about them.
    const known = this.store.user(u.id) !== null;
    const contact = this.store.isContact(u.id);
    const name = u.displayName || u.username;
    // Presence is only sent for contacts, so for anyone else the status is as of the search.
    const status = t(`status.${u.status}`);
    this.headerStatus.textContent = !known ? '' : contact ? status : `${status} · ${t('contacts.notContact')}`;
    const drawn = `${known}|${contact}|${name}`;
    if (drawn === this.headerDrawn) return;
    const hadFocus = this.headerActions.contains(document.activeElement);
    let toggle = null;
    if (contact) {
      toggle = h('button', { class: 'btn btn-icon btn-ghost contact-toggle', type: 'button', 'aria-label': t('contacts.removeName', { name }), title: t('contacts.remove'), onclick: () => this.removeContact(u) }, icon('userMinus'));
    } else if (known) {
      toggle = h('button', { class: 'btn btn-small contact-toggle', type: 'button', 'aria-label': t('contacts.addName', { name }), title: t('contacts.addName', { name }), onclick: () => this.addContact(u) }, icon('userPlus', 'icon-sm'), t('contacts.add'));
    }
    this.headerActions.replaceChildren(...this.callButtons(u).children, ...(toggle ? [toggle] : []));
    this.headerDrawn = drawn;
    // Removing (or adding) swaps the button under the keyboard user's finger: keep them there.
    if (hadFocus && toggle) toggle.focus();
  }

  renderPaneHeader() {
    const r = router.current;
    if (r.name !== 'chat' || r.withId === LOBBY || !this.headerStatus) return;
    const u = this.store.user(r.withId);
    if (!u) return;
    this.headerName.textContent = u.displayName || u.username;
    const fresh = avatar(u, { size: 'md', status: u.status });
    this.headerAvatar.replaceWith(fresh);
    this.headerAvatar = fresh;
    this.renderHeaderDetails(u);
  }

  route(r) {
    if (r.name === 'signin' || r.name === 'signup') {
      router.go('/', { replace: true });
      return;
    }
    const onCalls = r.name === 'calls' || r.name === 'call';
    this.tabChats.setAttribute('aria-current', onCalls ? 'false' : 'page');
    this.tabCalls.setAttribute('aria-current', onCalls ? 'page' : 'false');
    this.chatsPanel.hidden = onCalls;
    this.callsPanel.hidden = !onCalls;
    if (onCalls && !this.history) {
      this.history = createHistoryList(this.store, { selectedId: r.callId || null });
      this.callsPanel.replaceChildren(this.history.el);
    } else if (onCalls) {
      this.history.select(r.callId || null);
      if (r.name === 'calls') this.history.reload();
    }

    // On a phone the list and the content take turns; the route says which one shows.
    this.layout.dataset.pane = r.name === 'chat' || r.name === 'call' ? 'main' : 'list';

    if (this.pane) this.pane.destroy();
    this.pane = null;
    this.headerStatus = null;
    this.store.openChat = null;
    if (r.name === 'chat' || r.name === 'home') {
      const withId = r.name === 'chat' ? r.withId : LOBBY;
      if (withId !== LOBBY && !this.store.user(withId) && this.store.users.size) {
        router.go('/', { replace: true });
        return;
      }
      this.store.openChat = withId;
      this.pane = createChat(this.store, withId, { header: this.chatHeader(withId) });
    } else if (r.name === 'call') {
      this.pane = createCallDetail(this.store, r.callId, { onCall: (u, video) => this.calls.start(u, { video }), backButton: this.backButton() });
    } else {
      this.pane = { el: h('div', { class: 'placeholder-pane' }, icon('phone', 'icon-xl'), h('p', {}, t('calls.pick'))), destroy() {} };
    }
    this.main.replaceChildren(this.pane.el);
    this.renderContacts();
  }

  // ---- settings ----

  openSettings() {
    const d = this.settingsDialog;
    const me = this.store.me;
    const hide = h('input', { type: 'checkbox', id: 'set-hide', checked: settings.hideAddress, 'aria-describedby': 'set-hide-desc' });
    hide.addEventListener('change', () => this.calls.setHideAddress(hide.checked));
    const perm = permission();
    const notifyRow =
      perm === 'default'
        ? h('button', { class: 'btn btn-small', type: 'button', onclick: async () => { await askPermission(); this.renderNotifyBanner(); this.openSettings(); } }, t('notify.enable'))
        : h('p', { class: 'muted' }, perm === 'granted' ? t('notify.on') : t('notify.denied'));
    d.replaceChildren(
      h(
        'form',
        { method: 'dialog', class: 'dialog-body' },
        h('header', { class: 'dialog-head' }, h('h2', { id: 'settings-title' }, t('settings.title')), h('button', { class: 'btn btn-icon btn-ghost', value: 'close', 'aria-label': t('settings.close'), title: t('settings.close') }, icon('close'))),
        h('p', { class: 'muted' }, t('settings.account', { name: me ? `${me.displayName} (@${me.username})` : '' })),
        h('div', { class: 'setting' }, h('div', { class: 'setting-text' }, h('label', { for: 'set-hide' }, icon('shield', 'icon-sm'), ' ', t('settings.hideAddress')), h('p', { class: 'hint', id: 'set-hide-desc' }, t('settings.hideAddress.desc'))), h('span', { class: 'switch' }, hide)),
        h('div', { class: 'setting' }, h('div', { class: 'setting-text' }, h('span', { class: 'setting-label' }, icon('bell', 'icon-sm'), ' ', t('settings.notifications'))), notifyRow),
        // The server's network self-test page (a page of its own, so a full load).
        h('p', {}, h('a', { href: '/check' }, t('settings.check'))),
        h('p', { class: 'hint' }, t('settings.language')),
        h('div', { class: 'dialog-actions' }, h('button', { class: 'btn btn-primary', value: 'close' }, t('settings.close'))),
      ),
    );
    if (!d.open) d.showModal();
  }
}
