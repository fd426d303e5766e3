// A small DOM builder: h('button', {class: 'x', onclick: fn, 'aria-label': '…'}, 'text', child).
// Text is always set as text, never parsed as HTML, so user content cannot inject markup.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'html') el.innerHTML = v; // only for our own constant markup (icons)
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function initials(name) {
  const parts = String(name || '?').trim().split(/[\s._-]+/).filter(Boolean);
  if (!parts.length) return '?';
  const first = [...parts[0]][0] || '?';
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (first + second).toUpperCase();
}

/** A colored circle with initials; the color follows the user id so it stays the same. */
export function avatar(user, { size = 'md', status = null } = {}) {
  const name = user ? user.displayName || user.username : '?';
  const hue = user ? (user.id * 137) % 360 : 220;
  const el = h('span', { class: `avatar avatar-${size}`, 'aria-hidden': 'true', style: `--hue:${hue}` }, initials(name));
  if (status) el.append(h('span', { class: `presence presence-${status}` }));
  return el;
}

/** Text only screen readers read. */
export function srOnly(text) {
  return h('span', { class: 'sr-only' }, text);
}
