// Client-side routes. The server answers every extension-less path with index.html, so these
// URLs can be bookmarked and reloaded.
//
//   /signin  /signup           the auth pages
//   /                          the contact list (the lobby beside it on wide screens)
//   /chat/lobby  /chat/<id>    a conversation
//   /calls  /calls/<callId>    call history and one call's details

import { Emitter } from './emitter.js';

export function parse(pathname) {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'signin' || parts[0] === 'signup') return { name: parts[0] };
  if (parts[0] === 'chat' && parts[1] === 'lobby') return { name: 'chat', withId: 0 };
  if (parts[0] === 'chat' && /^\d+$/.test(parts[1] || '')) return { name: 'chat', withId: Number(parts[1]) };
  if (parts[0] === 'calls' && parts[1]) return { name: 'call', callId: parts[1] };
  if (parts[0] === 'calls') return { name: 'calls' };
  return { name: 'home' };
}

class Router extends Emitter {
  constructor() {
    super();
    window.addEventListener('popstate', () => this.emit('route', this.current));
    // Same-origin links marked data-link navigate without a page load.
    document.addEventListener('click', (ev) => {
      const a = ev.target.closest && ev.target.closest('a[data-link]');
      if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      this.go(a.getAttribute('href'));
    });
  }

  get current() {
    return parse(location.pathname);
  }

  go(path, { replace = false } = {}) {
    if (path !== location.pathname) {
      if (replace) history.replaceState(null, '', path);
      else history.pushState(null, '', path);
    }
    this.emit('route', this.current);
  }
}

export const router = new Router();
