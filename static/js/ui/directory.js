// The sidebar's second section while searching: people of the server's directory who match the
// query but are not contacts (on a big server the contact list is not everyone, PROTOCOL.md 2.1).
// The server is asked once typing pauses, and an answer to an older query is dropped, so a slow
// reply never replaces a newer one. Opening a result opens the chat, as for a contact.

import { h, avatar } from './dom.js';
import { icon } from './icons.js';
import { t, errorText } from '../i18n.js';
import { router } from '../router.js';

const DEBOUNCE_MS = 250;
const LIMIT = 20;

const matches = (u, q) => u.displayName.toLowerCase().includes(q) || u.username.toLowerCase().includes(q);

/**
 * @param {import('../store.js').Store} store
 * @param {{onAdd: (user: object) => Promise<boolean>}} opts  onAdd adds the user to the contacts
 *   and resolves with whether that worked (it tells the user either way)
 */
export function createDirectory(store, { onAdd }) {
  const list = h('ul', { class: 'directory-list', 'aria-labelledby': 'directory-title' });
  const status = h('p', { class: 'list-empty', role: 'status' });
  const el = h('section', { class: 'directory', 'aria-labelledby': 'directory-title', hidden: true }, h('h3', { class: 'list-heading', id: 'directory-title' }, t('directory.title')), list, status);

  let query = ''; // as typed (trimmed)
  let timer = null;
  let asked = 0; // numbers the requests, to drop stale answers
  let pending = false;
  let results = []; // the newest answer, contacts included (they are filtered when shown)
  let answered = ''; // the query `results` answer
  let error = null;
  const adding = new Set();

  async function ask(q, n) {
    try {
      const found = await store.search(q, LIMIT);
      if (n !== asked) return;
      results = found;
      answered = q;
      error = null;
    } catch (e) {
      if (n !== asked) return;
      error = e;
    }
    pending = false;
    render();
  }

  /** Called on every keystroke with the search box's text. */
  function search(text) {
    const q = text.trim();
    if (q === query) return;
    query = q;
    clearTimeout(timer);
    // Whatever is still on its way answers an older query now.
    const n = ++asked;
    error = null;
    if (!q) {
      pending = false;
      results = [];
      answered = '';
      render();
      return;
    }
    pending = true;
    render();
    timer = setTimeout(() => ask(q, n), DEBOUNCE_MS);
  }

  async function add(u) {
    if (adding.has(u.id)) return;
    adding.add(u.id);
    render();
    const ok = await onAdd(u);
    adding.delete(u.id);
    render();
    // The row moved to the contact list above: keyboard focus follows it.
    if (ok) document.querySelector(`.contact-list [data-user-id="${u.id}"] .contact-open`)?.focus();
  }

  function row(u, current) {
    const name = u.displayName || u.username;
    return h(
      'li',
      { class: `contact directory-item status-${u.status}`, dataset: { key: String(u.id), directoryId: String(u.id), status: u.status } },
      h(
        'a',
        { class: 'contact-open', href: `/chat/${u.id}`, 'data-link': true, 'aria-current': current === u.id ? 'page' : null },
        avatar(u, { size: 'md', status: u.status }),
        h('span', { class: 'item-main' }, h('span', { class: 'item-title' }, name), h('span', { class: 'item-sub' }, `@${u.username}`, ' · ', h('span', { class: 'presence-text' }, t(`status.${u.status}`)))),
      ),
      h(
        'div',
        { class: 'contact-actions' },
        h('button', { class: 'btn btn-small add-btn', type: 'button', 'aria-label': t('contacts.addName', { name }), title: t('contacts.addName', { name }), 'aria-disabled': adding.has(u.id) ? 'true' : null, onclick: () => add(u) }, icon('userPlus', 'icon-sm'), t('contacts.add')),
      ),
    );
  }

  function render() {
    el.hidden = !query;
    if (!query) {
      list.replaceChildren();
      status.textContent = '';
      return;
    }
    const r = router.current;
    const current = r.name === 'chat' ? r.withId : null;
    // Keep keyboard focus where it was across the re-render.
    const active = document.activeElement;
    const focusKey = active && list.contains(active) ? `${active.closest('[data-key]')?.dataset.key}|${active.className}` : null;

    // While a newer answer is on its way, the older one narrowed to the new query stays up.
    const q = query.toLowerCase();
    const shown = results.filter((u) => !store.isContact(u.id) && matches(u, q)).map((u) => store.user(u.id) || u);
    list.replaceChildren(...shown.map((u) => row(u, current)));
    let text = '';
    if (error) text = t('directory.failed', { reason: errorText(error.code, { message: error.message }) });
    else if (pending && !shown.length) text = t('directory.searching');
    else if (!shown.length && answered) text = t('directory.none', { q: query });
    else if (results.length === LIMIT && answered === query) text = t('directory.more', { n: LIMIT });
    // Unchanged text is left alone, so a presence update does not make screen readers repeat it.
    if (status.textContent !== text) status.textContent = text;

    if (focusKey) {
      const [key, which] = focusKey.split('|');
      const li = list.querySelector(`[data-key="${CSS.escape(key)}"]`);
      const target = li && ([...li.querySelectorAll('a, button')].find((b) => b.className === which) || li.querySelector('a'));
      if (target) target.focus();
    }
  }

  return {
    el,
    search,
    render,
    destroy() {
      clearTimeout(timer);
      asked += 1;
    },
  };
}
