// Call history: the list (missed calls marked) and one call's details, including the link
// quality each side reported with Call/Report.

import { h, avatar } from './dom.js';
import { icon } from './icons.js';
import { api } from '../api.js';
import { t, shortTime, fullTime, duration } from '../i18n.js';
import { qualityOf } from '../stats.js';

const PAGE = 30;

/** Missed from my side: an incoming call I never answered. */
export function isMissed(r) {
  return r.direction === 'incoming' && (r.status === 'missed' || r.status === 'cancelled' || (r.status === 'failed' && !r.answeredAt));
}

function peerId(r) {
  return r.direction === 'outgoing' ? r.calleeId : r.callerId;
}

function statusText(r) {
  if (isMissed(r)) return t('calls.missed');
  if (r.direction === 'outgoing' && r.status === 'missed') return t('calls.status.noAnswer');
  return t(`calls.status.${r.status}`);
}

function kindText(r) {
  return r.media && r.media.video ? t('calls.video') : t('calls.audio');
}

/** The sidebar list of calls, newest first, with older pages on request. */
export function createHistoryList(store, { selectedId }) {
  const list = h('ul', { class: 'history-list', 'aria-label': t('calls.title') });
  const more = h('button', { class: 'btn btn-ghost btn-block', type: 'button', hidden: true }, t('calls.more'));
  const empty = h('p', { class: 'list-empty', hidden: true }, t('calls.empty'));
  const el = h('div', { class: 'history' }, list, empty, more);
  let records = [];
  let hasMore = false;
  let loading = false;

  function row(r) {
    const pid = peerId(r);
    const user = store.user(pid) || { id: pid, displayName: `#${pid}` };
    const missed = isMissed(r);
    const dirIcon = missed ? 'missed' : r.direction === 'outgoing' ? 'outgoing' : 'incoming';
    const parts = [statusText(r)];
    if (r.durationMs) parts.push(duration(r.durationMs));
    const label = `${r.direction === 'outgoing' ? t('calls.outgoing') : t('calls.incoming')} · ${kindText(r)}`;
    return h(
      'li',
      {},
      h(
        'a',
        {
          class: `history-item${missed ? ' is-missed' : ''}${r.id === selectedId ? ' is-selected' : ''}`,
          href: `/calls/${r.id}`,
          'data-link': true,
          'aria-current': r.id === selectedId ? 'page' : null,
          dataset: { status: r.status, callId: r.id },
        },
        avatar(user, { size: 'md' }),
        h(
          'span',
          { class: 'item-main' },
          h('span', { class: 'item-title' }, user.displayName || user.username),
          h('span', { class: 'item-sub' }, icon(dirIcon, 'icon-sm'), icon(r.media && r.media.video ? 'video' : 'phone', 'icon-sm'), h('span', { class: 'sr-only' }, `${label}: `), parts.join(' · ')),
        ),
        h('time', { class: 'item-time', datetime: r.createdAt }, shortTime(r.createdAt)),
      ),
    );
  }

  function render() {
    list.replaceChildren(...records.map(row));
    empty.hidden = records.length > 0 || loading;
    more.hidden = !hasMore;
  }

  async function load(reset) {
    if (loading) return;
    loading = true;
    try {
      const before = !reset && records.length ? records[records.length - 1].id : undefined;
      const page = await api.calls({ limit: PAGE, before });
      records = reset ? page : records.concat(page.filter((p) => !records.some((r) => r.id === p.id)));
      hasMore = page.length === PAGE;
    } catch {
      // Left as it was; the next change reloads.
    } finally {
      loading = false;
      render();
    }
  }

  more.addEventListener('click', () => load(false));
  const offUsers = store.on('users', render);
  load(true);

  return {
    el,
    reload: () => load(true),
    select(id) {
      selectedId = id;
      render();
    },
    destroy: offUsers,
  };
}

function reportCard(title, stats) {
  if (!stats) return null;
  const q = qualityOf(stats);
  const route = [stats.localCandidateType, stats.remoteCandidateType].filter(Boolean).join(' → ') || '–';
  const rows = [
    [t('calls.report.ice'), stats.iceState || '–'],
    [t('calls.report.route'), route],
    [t('calls.report.rtt'), stats.rttMs != null ? `${stats.rttMs} ms` : '–'],
    [t('calls.report.bitrate'), stats.bitrateKbps != null ? `${stats.bitrateKbps} kbit/s` : '–'],
    [t('calls.report.loss'), stats.packetLoss != null ? `${(stats.packetLoss * 100).toFixed(1)} %` : '–'],
  ];
  return h(
    'div',
    { class: 'report-card' },
    h('h3', {}, title, ' ', h('span', { class: `quality-badge q-${q}` }, t(`call.quality.${q}`))),
    h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
  );
}

function howEnded(store, r) {
  if (!r.endReason) return '–';
  const by = r.endedBy ? store.nameOf(r.endedBy) : '';
  const peerName = store.nameOf(peerId(r));
  switch (r.endReason) {
    case 'hangup':
      return by ? t('calls.reason.hangup', { name: by }) : t('calls.reason.hangup.anon');
    case 'rejected':
      return t('calls.reason.rejected', { name: by || peerName });
    case 'peer_lost':
      return t('calls.reason.peer_lost', { name: by || peerName });
    case 'logout':
      return t('calls.reason.logout', { name: by || peerName });
    case 'offline':
    case 'busy':
      return t(`calls.reason.${r.endReason}`, { name: store.nameOf(r.calleeId) });
    default:
      return t(`calls.reason.${r.endReason}`);
  }
}

/** One call's details in the main pane. */
export function createCallDetail(store, callId, { onCall, backButton }) {
  const body = h('div', { class: 'detail-body' }, h('p', { class: 'muted' }, '…'));
  const el = h('section', { class: 'detail', 'aria-labelledby': 'detail-title' }, h('header', { class: 'pane-head' }, backButton, h('h2', { id: 'detail-title' }, t('calls.detail'))), body);

  api
    .call(callId)
    .then((r) => {
      const pid = peerId(r);
      const user = store.user(pid) || { id: pid, displayName: `#${pid}` };
      const missed = isMissed(r);
      const reports = r.reports || {};
      const callerName = store.nameOf(r.callerId);
      const calleeName = store.nameOf(r.calleeId);
      const cards = [reportCard(t('calls.report.of', { name: callerName }), reports.caller), reportCard(t('calls.report.of', { name: calleeName }), reports.callee)].filter(Boolean);
      const facts = [
        [t('calls.direction'), r.direction === 'outgoing' ? t('calls.outgoing') : t('calls.incoming')],
        [t('calls.kind'), kindText(r)],
        [t('calls.outcome'), statusText(r)],
        [t('calls.started'), fullTime(r.createdAt)],
        [t('calls.answered'), fullTime(r.answeredAt)],
        [t('calls.ended'), fullTime(r.endedAt)],
        [t('calls.duration'), r.durationMs != null ? duration(r.durationMs) : '–'],
        [t('calls.how'), howEnded(store, r)],
      ];
      body.replaceChildren(
        h(
          'div',
          { class: 'detail-who' },
          avatar(user, { size: 'lg' }),
          h('div', {}, h('p', { class: 'detail-name' }, user.displayName || user.username), h('p', { class: `detail-status${missed ? ' is-missed' : ''}`, dataset: { status: r.status } }, statusText(r))),
          h(
            'div',
            { class: 'detail-actions' },
            h('button', { class: 'btn btn-icon', type: 'button', 'aria-label': t('call.audioWith', { name: user.displayName }), title: t('call.audio'), onclick: () => onCall(user, false) }, icon('phone')),
            h('button', { class: 'btn btn-icon', type: 'button', 'aria-label': t('call.videoWith', { name: user.displayName }), title: t('call.video'), onclick: () => onCall(user, true) }, icon('video')),
          ),
        ),
        h('dl', { class: 'facts facts-wide' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        h('h3', { class: 'section-title' }, t('calls.quality')),
        cards.length ? h('div', { class: 'report-cards' }, cards) : h('p', { class: 'muted' }, t('calls.quality.none')),
      );
    })
    .catch(() => {
      body.replaceChildren(h('p', { class: 'muted' }, t('calls.notFound')));
    });

  return { el, destroy() {} };
}
