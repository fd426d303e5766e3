// The sign-in and sign-up pages. Registration does not log in on the server, so a successful
// sign-up signs in with the same credentials right after.

import { h } from './dom.js';
import { api } from '../api.js';
import { t, errorText } from '../i18n.js';

function field({ id, label, hint, type = 'text', autocomplete, required = true, minlength, maxlength, pattern }) {
  const hintId = hint ? `${id}-hint` : null;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name: id, type, autocomplete, required, minlength, maxlength, pattern, 'aria-describedby': hintId, spellcheck: 'false', autocapitalize: 'none' }),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
  );
}

function messageFor(e) {
  if (e.code === 'rate_limited' && e.retryAfter) return t('error.rate_limited.wait', { minutes: Math.max(1, Math.ceil(e.retryAfter / 60)) });
  return errorText(e.code, { message: e.message });
}

/** Renders the page for `mode` ("signin" or "signup") into `root`; `onSignedIn(user)` follows. */
export function renderAuth(root, mode, onSignedIn, notice = null) {
  const signup = mode === 'signup';
  const error = h('p', { class: 'form-error', role: 'alert', id: 'auth-error' });
  if (notice) error.textContent = notice;
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit' }, signup ? t('auth.signup') : t('auth.signin'));
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true, 'aria-describedby': 'auth-error' },
    field({ id: 'username', label: t('auth.username'), hint: signup ? t('auth.username.hint') : null, autocomplete: 'username', maxlength: 32 }),
    field({ id: 'password', label: t('auth.password'), hint: signup ? t('auth.password.hint') : null, type: 'password', autocomplete: signup ? 'new-password' : 'current-password' }),
    signup ? field({ id: 'displayName', label: t('auth.displayName'), autocomplete: 'nickname', required: false, maxlength: 64 }) : null,
    error,
    submit,
  );

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = form.username.value.trim();
    const password = form.password.value;
    const displayName = signup ? form.displayName.value.trim() : '';
    // The server is the judge of what is valid; these only save a round trip for empty fields.
    if (!username) {
      error.textContent = t('error.invalid_username');
      form.username.focus();
      return;
    }
    if (!password) {
      error.textContent = signup ? t('error.weak_password') : t('error.bad_credentials');
      form.password.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t('auth.working');
    error.textContent = '';
    try {
      if (signup) await api.register(username, password, displayName || undefined);
      const { user } = await api.login(username, password);
      onSignedIn(user);
    } catch (e) {
      error.textContent = messageFor(e);
      submit.disabled = false;
      submit.textContent = signup ? t('auth.signup') : t('auth.signin');
      const bad = e.code === 'weak_password' || e.code === 'bad_credentials' ? form.password : form.username;
      bad.setAttribute('aria-invalid', 'true');
      bad.focus();
    }
  });
  form.addEventListener('input', (ev) => ev.target.removeAttribute('aria-invalid'));

  root.replaceChildren(
    h(
      'main',
      { class: 'auth-page' },
      h(
        'div',
        { class: 'auth-card' },
        h('div', { class: 'brand' }, h('img', { src: '/favicon.svg', alt: '', width: 40, height: 40 }), h('div', {}, h('span', { class: 'brand-name' }, t('app.name')), h('span', { class: 'brand-tag' }, t('app.tagline')))),
        h('h1', {}, signup ? t('auth.signup') : t('auth.signin')),
        form,
        h('p', { class: 'auth-switch' }, h('a', { href: signup ? '/signin' : '/signup', 'data-link': true }, signup ? t('auth.toSignin') : t('auth.toSignup'))),
      ),
    ),
  );
  form.username.focus();
}
