// Strings of the app in English and Simplified Chinese. English is the default; Chinese is used
// when the browser's preferred languages put a Simplified Chinese variant before any English one.

const en = {
  'app.name': 'duet',
  'app.tagline': 'Private one-to-one calls',

  // Sign in and sign up
  'auth.signin': 'Sign in',
  'auth.signup': 'Create account',
  'auth.username': 'Username',
  'auth.username.hint': '3–32 letters, digits, “_”, “.” or “-”',
  'auth.password': 'Password',
  'auth.password.hint': 'At least 8 characters',
  'auth.displayName': 'Display name (optional)',
  'auth.toSignup': 'New here? Create an account',
  'auth.toSignin': 'Already have an account? Sign in',
  'auth.working': 'One moment…',
  'auth.signout': 'Sign out',

  // Server errors, by machine code
  'error.bad_credentials': 'That username and password do not match.',
  'error.username_taken': 'That username is taken. Try another one.',
  'error.invalid_username': 'Usernames are 3–32 characters: letters, digits, “_”, “.” or “-”.',
  'error.weak_password': 'The password needs at least 8 characters.',
  'error.password_too_long': 'That password is too long.',
  'error.invalid_display_name': 'Display names are 1–64 characters.',
  'error.rate_limited': 'Too many attempts. Wait a few minutes and try again.',
  'error.rate_limited.wait': 'Too many attempts. Try again in {minutes} min.',
  'error.account_disabled': 'This account has been disabled.',
  'error.unauthorized': 'Your session has ended. Please sign in again.',
  'error.network': 'Cannot reach the server. Check your connection.',
  'error.unavailable': 'The server is unavailable right now. Try again shortly.',
  'error.too_long': 'That message is too long (4000 characters at most).',
  'error.offline': '{name} is offline.',
  'error.busy': '{name} is busy in another call.',
  'error.already_in_call': 'You are already in a call (maybe in another tab).',
  'error.unknown_user': 'That user no longer exists.',
  'error.generic': 'Something went wrong ({code}).',

  // Connection
  'conn.connecting': 'Connecting…',
  'conn.online': 'Connected',
  'conn.reconnecting': 'Connection lost. Reconnecting…',
  'conn.restarting': 'The server is restarting. Reconnecting shortly…',

  // Contacts and presence
  'contacts.title': 'Contacts',
  'contacts.search': 'Search contacts',
  'contacts.empty': 'No contacts yet. Search by name to find people on this server.',
  'contacts.noMatch': 'No contact matches “{q}”.',
  'contacts.add': 'Add',
  'contacts.addName': 'Add {name} to contacts',
  'contacts.added': '{name} is now in your contacts.',
  'contacts.addFailed': 'Could not add {name}: {reason}',
  'contacts.remove': 'Remove from contacts',
  'contacts.removeName': 'Remove {name} from contacts',
  'contacts.removed': '{name} was removed from your contacts.',
  'contacts.kept': '{name} stays in your contacts: you have called or written to each other, or this server lists everyone.',
  'contacts.removeFailed': 'Could not remove {name}: {reason}',
  'contacts.notContact': 'Not in your contacts',
  'directory.title': 'In the directory',
  'directory.searching': 'Searching the directory…',
  'directory.none': 'No one else in the directory matches “{q}”.',
  'directory.more': 'Showing the first {n} matches. Type more of the name to narrow them down.',
  'directory.failed': 'Could not search the directory: {reason}',
  'contacts.you': 'you',
  'status.available': 'Available',
  'status.in_call': 'In a call',
  'status.offline': 'Offline',
  'unread': '{n} unread',

  // Navigation
  'nav.chats': 'Chats',
  'nav.calls': 'Calls',
  'nav.settings': 'Settings',
  'nav.back': 'Back',

  // Chat
  'chat.lobby': 'Lobby',
  'chat.lobby.desc': 'Everyone who is signed in',
  'chat.placeholder': 'Write a message',
  'chat.placeholder.to': 'Message {name}',
  'chat.send': 'Send',
  'chat.empty': 'No messages yet. Say hello!',
  'chat.loadingOlder': 'Loading older messages…',
  'chat.start': 'This is the start of the conversation.',
  'chat.messages': 'Messages',
  'chat.today': 'Today',
  'chat.yesterday': 'Yesterday',
  'chat.failed': 'Not sent: {reason}',
  'chat.pick': 'Pick a contact to chat with, or talk in the lobby.',

  // Call history
  'calls.title': 'Call history',
  'calls.empty': 'No calls yet.',
  'calls.more': 'Show older calls',
  'calls.outgoing': 'Outgoing',
  'calls.incoming': 'Incoming',
  'calls.missed': 'Missed',
  'calls.audio': 'Audio call',
  'calls.video': 'Video call',
  'calls.status.ringing': 'Ringing',
  'calls.status.active': 'In progress',
  'calls.status.completed': 'Completed',
  'calls.status.missed': 'Missed',
  'calls.status.noAnswer': 'No answer',
  'calls.status.rejected': 'Declined',
  'calls.status.busy': 'Busy',
  'calls.status.cancelled': 'Cancelled',
  'calls.status.failed': 'Failed',
  'calls.reason.hangup': 'Hung up by {name}',
  'calls.reason.hangup.anon': 'Hung up',
  'calls.reason.cancelled': 'Cancelled by the caller',
  'calls.reason.rejected': 'Declined by {name}',
  'calls.reason.timeout': 'No answer',
  'calls.reason.peer_lost': 'Connection of {name} lost',
  'calls.reason.logout': '{name} signed out',
  'calls.reason.server_error': 'Server error',
  'calls.reason.offline': '{name} was offline',
  'calls.reason.busy': '{name} was busy',
  'calls.detail': 'Call details',
  'calls.with': 'With',
  'calls.direction': 'Direction',
  'calls.kind': 'Kind',
  'calls.started': 'Started',
  'calls.answered': 'Answered',
  'calls.ended': 'Ended',
  'calls.duration': 'Duration',
  'calls.outcome': 'Outcome',
  'calls.how': 'How it ended',
  'calls.quality': 'Link quality',
  'calls.quality.none': 'No link report for this call.',
  'calls.report.of': 'Reported by {name}',
  'calls.report.ice': 'Connection',
  'calls.report.route': 'Route',
  'calls.report.rtt': 'Round trip',
  'calls.report.bitrate': 'Bitrate',
  'calls.report.loss': 'Packet loss',
  'calls.callBack': 'Call back',
  'calls.pick': 'Pick a call to see its details.',
  'calls.notFound': 'This call is not in your history.',

  // Calls
  'call.audio': 'Audio call',
  'call.video': 'Video call',
  'call.audioWith': 'Audio call with {name}',
  'call.videoWith': 'Video call with {name}',
  'call.calling': 'Calling {name}…',
  'call.ringing': 'Ringing {name}…',
  'call.incoming': '{name} is calling',
  'call.incoming.video': 'Incoming video call',
  'call.incoming.audio': 'Incoming audio call',
  'call.accept': 'Accept',
  'call.acceptVideo': 'Accept with video',
  'call.acceptAudio': 'Accept audio only',
  'call.reject': 'Decline',
  'call.cancel': 'Cancel',
  'call.hangup': 'Hang up',
  'call.connecting': 'Connecting…',
  'call.connected': 'Connected',
  'call.reconnecting': 'Reconnecting the call…',
  'call.peerReconnecting': '{name} is reconnecting…',
  'call.peerBack': '{name} is back.',
  'call.resumed': 'Call resumed.',
  'call.relayRetry': 'Retrying through the relay…',
  'call.mute': 'Mute',
  'call.unmute': 'Unmute',
  'call.cameraOff': 'Turn camera off',
  'call.cameraOn': 'Turn camera on',
  'call.share': 'Share screen',
  'call.stopShare': 'Stop sharing',
  'call.devices': 'Camera and microphone',
  'call.camera': 'Camera',
  'call.microphone': 'Microphone',
  'call.chat': 'Chat',
  'call.closeChat': 'Close chat',
  'call.you': 'You',
  'call.peerMuted': '{name} is muted',
  'call.peerCameraOff': '{name} turned the camera off',
  'call.peerSharing': '{name} is sharing the screen',
  'call.youMuted': 'You are muted',
  'call.ended': 'Call ended',
  'call.ended.duration': 'Call ended · {duration}',
  'call.end.rejected': '{name} declined the call.',
  'call.end.busy': '{name} is busy.',
  'call.end.offline': '{name} is offline. They will see a missed call.',
  'call.end.timeout.caller': '{name} did not answer.',
  'call.end.timeout.callee': 'Missed call from {name}.',
  'call.end.cancelled.callee': 'Missed call from {name}.',
  'call.end.cancelled.caller': 'Call cancelled.',
  'call.end.hangup.me': 'You hung up.',
  'call.end.hangup.peer': '{name} hung up.',
  'call.end.peer_lost': 'The connection to {name} was lost.',
  'call.end.logout': '{name} signed out.',
  'call.end.server_error': 'The call ended because of a server error.',
  'call.end.rejected.elsewhere': 'Declined on another device.',
  'call.end.failed': 'Could not connect the call.',
  'call.elsewhere': 'Answered on another device.',
  'call.movedElsewhere': 'The call goes on in another tab or on another device.',
  'call.noMedia': 'No camera or microphone could be used; you can still hear and see {name}.',
  'call.noCamera': 'The camera is not available; continuing with audio only.',
  'call.shareFailed': 'Screen sharing did not start.',
  'call.deviceFailed': 'That device could not be used.',
  'call.quality': 'Link quality: {level}',
  'call.quality.good': 'good',
  'call.quality.fair': 'fair',
  'call.quality.poor': 'poor',
  'call.quality.unknown': 'measuring',
  'call.timer': 'Call time',
  'call.resumeMedia': 'Start sound and video',

  // Notifications
  'notify.incoming': '{name} is calling you',
  'notify.body.video': 'Video call – click to answer',
  'notify.body.audio': 'Audio call – click to answer',
  'notify.ask': 'Get a notification when someone calls while this tab is in the background.',
  'notify.enable': 'Turn on notifications',
  'notify.dismiss': 'Not now',
  'notify.denied': 'Notifications are blocked in this browser.',
  'notify.on': 'Notifications are on.',

  // Settings
  'settings.title': 'Settings',
  'settings.hideAddress': 'Hide my address',
  'settings.hideAddress.desc': 'Route my calls through the server’s relay, so the other person never sees my network address. Uses more server bandwidth and may add delay.',
  'settings.notifications': 'Call notifications',
  'settings.account': 'Signed in as {name}',
  'settings.close': 'Close',
  'settings.check': 'Check my network for calls',
  'settings.language': 'Language follows your browser (English or 简体中文).',

  'time.justNow': 'just now',
};

const zh = {
  'app.name': 'duet',
  'app.tagline': '私密的一对一通话',

  'auth.signin': '登录',
  'auth.signup': '注册账号',
  'auth.username': '用户名',
  'auth.username.hint': '3–32 个字母、数字、“_”、“.” 或 “-”',
  'auth.password': '密码',
  'auth.password.hint': '至少 8 个字符',
  'auth.displayName': '显示名称（可选）',
  'auth.toSignup': '第一次使用？注册账号',
  'auth.toSignin': '已有账号？登录',
  'auth.working': '请稍候…',
  'auth.signout': '退出登录',

  'error.bad_credentials': '用户名或密码不正确。',
  'error.username_taken': '该用户名已被使用，请换一个。',
  'error.invalid_username': '用户名为 3–32 个字符：字母、数字、“_”、“.” 或 “-”。',
  'error.weak_password': '密码至少需要 8 个字符。',
  'error.password_too_long': '密码太长。',
  'error.invalid_display_name': '显示名称为 1–64 个字符。',
  'error.rate_limited': '尝试次数过多，请几分钟后再试。',
  'error.rate_limited.wait': '尝试次数过多，请 {minutes} 分钟后再试。',
  'error.account_disabled': '该账号已被停用。',
  'error.unauthorized': '登录已失效，请重新登录。',
  'error.network': '无法连接服务器，请检查网络。',
  'error.unavailable': '服务器暂时不可用，请稍后再试。',
  'error.too_long': '消息太长（最多 4000 个字符）。',
  'error.offline': '{name} 不在线。',
  'error.busy': '{name} 正在另一通话中。',
  'error.already_in_call': '你已在通话中（可能在另一个标签页）。',
  'error.unknown_user': '该用户已不存在。',
  'error.generic': '出错了（{code}）。',

  'conn.connecting': '正在连接…',
  'conn.online': '已连接',
  'conn.reconnecting': '连接已断开，正在重新连接…',
  'conn.restarting': '服务器正在重启，稍后将自动重新连接…',

  'contacts.title': '联系人',
  'contacts.search': '搜索联系人',
  'contacts.empty': '还没有联系人。输入名称即可搜索本服务器上的用户。',
  'contacts.noMatch': '没有与“{q}”匹配的联系人。',
  'contacts.add': '添加',
  'contacts.addName': '将 {name} 添加为联系人',
  'contacts.added': '{name} 已添加为你的联系人。',
  'contacts.addFailed': '无法添加 {name}：{reason}',
  'contacts.remove': '从联系人中移除',
  'contacts.removeName': '将 {name} 从联系人中移除',
  'contacts.removed': '已将 {name} 从你的联系人中移除。',
  'contacts.kept': '{name} 仍在你的联系人中：你们曾经通话或互发消息，或者本服务器列出所有用户。',
  'contacts.removeFailed': '无法移除 {name}：{reason}',
  'contacts.notContact': '不在你的联系人中',
  'directory.title': '用户目录',
  'directory.searching': '正在搜索用户目录…',
  'directory.none': '用户目录中没有其他与“{q}”匹配的人。',
  'directory.more': '仅显示前 {n} 个结果。输入更完整的名称可缩小范围。',
  'directory.failed': '无法搜索用户目录：{reason}',
  'contacts.you': '你',
  'status.available': '在线',
  'status.in_call': '通话中',
  'status.offline': '离线',
  'unread': '{n} 条未读',

  'nav.chats': '聊天',
  'nav.calls': '通话',
  'nav.settings': '设置',
  'nav.back': '返回',

  'chat.lobby': '大厅',
  'chat.lobby.desc': '所有已登录的人',
  'chat.placeholder': '输入消息',
  'chat.placeholder.to': '发消息给 {name}',
  'chat.send': '发送',
  'chat.empty': '还没有消息，打个招呼吧！',
  'chat.loadingOlder': '正在加载更早的消息…',
  'chat.start': '这是对话的开始。',
  'chat.messages': '消息',
  'chat.today': '今天',
  'chat.yesterday': '昨天',
  'chat.failed': '未发送：{reason}',
  'chat.pick': '选择一位联系人聊天，或在大厅发言。',

  'calls.title': '通话记录',
  'calls.empty': '还没有通话。',
  'calls.more': '显示更早的通话',
  'calls.outgoing': '呼出',
  'calls.incoming': '呼入',
  'calls.missed': '未接',
  'calls.audio': '语音通话',
  'calls.video': '视频通话',
  'calls.status.ringing': '响铃中',
  'calls.status.active': '进行中',
  'calls.status.completed': '已完成',
  'calls.status.missed': '未接',
  'calls.status.noAnswer': '无人接听',
  'calls.status.rejected': '已拒绝',
  'calls.status.busy': '忙线',
  'calls.status.cancelled': '已取消',
  'calls.status.failed': '失败',
  'calls.reason.hangup': '{name} 挂断',
  'calls.reason.hangup.anon': '已挂断',
  'calls.reason.cancelled': '呼叫方已取消',
  'calls.reason.rejected': '{name} 拒绝了通话',
  'calls.reason.timeout': '无人接听',
  'calls.reason.peer_lost': '{name} 的连接中断',
  'calls.reason.logout': '{name} 退出了登录',
  'calls.reason.server_error': '服务器错误',
  'calls.reason.offline': '{name} 当时不在线',
  'calls.reason.busy': '{name} 当时忙线',
  'calls.detail': '通话详情',
  'calls.with': '对方',
  'calls.direction': '方向',
  'calls.kind': '类型',
  'calls.started': '开始',
  'calls.answered': '接通',
  'calls.ended': '结束',
  'calls.duration': '时长',
  'calls.outcome': '结果',
  'calls.how': '结束方式',
  'calls.quality': '连接质量',
  'calls.quality.none': '此通话没有连接报告。',
  'calls.report.of': '{name} 的报告',
  'calls.report.ice': '连接',
  'calls.report.route': '路径',
  'calls.report.rtt': '往返时延',
  'calls.report.bitrate': '码率',
  'calls.report.loss': '丢包率',
  'calls.callBack': '回拨',
  'calls.pick': '选择一通电话查看详情。',
  'calls.notFound': '你的记录中没有这通电话。',

  'call.audio': '语音通话',
  'call.video': '视频通话',
  'call.audioWith': '与 {name} 语音通话',
  'call.videoWith': '与 {name} 视频通话',
  'call.calling': '正在呼叫 {name}…',
  'call.ringing': '{name} 的设备正在响铃…',
  'call.incoming': '{name} 来电',
  'call.incoming.video': '视频来电',
  'call.incoming.audio': '语音来电',
  'call.accept': '接听',
  'call.acceptVideo': '视频接听',
  'call.acceptAudio': '仅语音接听',
  'call.reject': '拒绝',
  'call.cancel': '取消',
  'call.hangup': '挂断',
  'call.connecting': '正在接通…',
  'call.connected': '已接通',
  'call.reconnecting': '正在重新连接通话…',
  'call.peerReconnecting': '{name} 正在重新连接…',
  'call.peerBack': '{name} 已恢复连接。',
  'call.resumed': '通话已恢复。',
  'call.relayRetry': '正在通过中继重试…',
  'call.mute': '静音',
  'call.unmute': '取消静音',
  'call.cameraOff': '关闭摄像头',
  'call.cameraOn': '打开摄像头',
  'call.share': '共享屏幕',
  'call.stopShare': '停止共享',
  'call.devices': '摄像头和麦克风',
  'call.camera': '摄像头',
  'call.microphone': '麦克风',
  'call.chat': '聊天',
  'call.closeChat': '关闭聊天',
  'call.you': '你',
  'call.peerMuted': '{name} 已静音',
  'call.peerCameraOff': '{name} 关闭了摄像头',
  'call.peerSharing': '{name} 正在共享屏幕',
  'call.youMuted': '你已静音',
  'call.ended': '通话已结束',
  'call.ended.duration': '通话已结束 · {duration}',
  'call.end.rejected': '{name} 拒绝了通话。',
  'call.end.busy': '{name} 正忙。',
  'call.end.offline': '{name} 不在线，对方会看到一个未接来电。',
  'call.end.timeout.caller': '{name} 没有接听。',
  'call.end.timeout.callee': '{name} 的未接来电。',
  'call.end.cancelled.callee': '{name} 的未接来电。',
  'call.end.cancelled.caller': '已取消呼叫。',
  'call.end.hangup.me': '你挂断了通话。',
  'call.end.hangup.peer': '{name} 挂断了通话。',
  'call.end.peer_lost': '与 {name} 的连接已中断。',
  'call.end.logout': '{name} 退出了登录。',
  'call.end.server_error': '服务器出错，通话已结束。',
  'call.end.rejected.elsewhere': '已在另一台设备上拒绝。',
  'call.end.failed': '无法接通通话。',
  'call.elsewhere': '已在另一台设备上接听。',
  'call.movedElsewhere': '通话已在另一个标签页或设备上继续。',
  'call.noMedia': '无法使用摄像头或麦克风；你仍然可以听到和看到 {name}。',
  'call.noCamera': '摄像头不可用，将仅使用语音。',
  'call.shareFailed': '未能开始共享屏幕。',
  'call.deviceFailed': '无法使用该设备。',
  'call.quality': '连接质量：{level}',
  'call.quality.good': '良好',
  'call.quality.fair': '一般',
  'call.quality.poor': '较差',
  'call.quality.unknown': '测量中',
  'call.timer': '通话时长',
  'call.resumeMedia': '开始播放声音和画面',

  'notify.incoming': '{name} 正在呼叫你',
  'notify.body.video': '视频通话 – 点击接听',
  'notify.body.audio': '语音通话 – 点击接听',
  'notify.ask': '当此标签页在后台时，有来电将通知你。',
  'notify.enable': '开启通知',
  'notify.dismiss': '以后再说',
  'notify.denied': '此浏览器已禁止通知。',
  'notify.on': '通知已开启。',

  'settings.title': '设置',
  'settings.hideAddress': '隐藏我的地址',
  'settings.hideAddress.desc': '通过服务器中继转发我的通话，对方不会看到我的网络地址。会占用更多服务器带宽，可能增加延迟。',
  'settings.notifications': '来电通知',
  'settings.account': '当前账号：{name}',
  'settings.close': '关闭',
  'settings.check': '检查我的网络是否适合通话',
  'settings.language': '界面语言跟随浏览器（English 或 简体中文）。',

  'time.justNow': '刚刚',
};

/** Picks the language from the browser's ordered preferences: the first English or Simplified
 *  Chinese entry wins; Traditional Chinese variants are not Simplified, so they are skipped. */
export function pickLanguage(languages) {
  for (const raw of languages || []) {
    const tag = String(raw).toLowerCase();
    if (tag === 'en' || tag.startsWith('en-')) return 'en';
    if (tag === 'zh' || tag.startsWith('zh-cn') || tag.startsWith('zh-sg') || tag.startsWith('zh-hans')) return 'zh-CN';
  }
  return 'en';
}

export const lang = pickLanguage(navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language]);
const dict = lang === 'zh-CN' ? zh : en;

/** The text for `key`, with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = dict[key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (params[k] ?? `{${k}}`));
}

const timeFmt = new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' });
const dateFmt = new Intl.DateTimeFormat(lang, { month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** A short time for lists: the clock time today, "Yesterday" or a date before that. */
export function shortTime(iso) {
  const d = new Date(iso);
  const now = new Date();
  if (sameDay(d, now)) return timeFmt.format(d);
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return `${t('chat.yesterday')} ${timeFmt.format(d)}`;
  return `${dateFmt.format(d)} ${timeFmt.format(d)}`;
}

export function clockTime(iso) {
  return timeFmt.format(new Date(iso));
}

export function fullTime(iso) {
  return iso ? fullFmt.format(new Date(iso)) : '–';
}

/** A day heading for chat: "Today", "Yesterday" or the date. */
export function dayLabel(iso) {
  const d = new Date(iso);
  const now = new Date();
  if (sameDay(d, now)) return t('chat.today');
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return t('chat.yesterday');
  return new Intl.DateTimeFormat(lang, { dateStyle: 'full' }).format(d);
}

/** 75000 → "1:15", 3725000 → "1:02:05": the call timer's format. */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A spoken-friendly duration: "1 min 15 s" / "1 分 15 秒". */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts = [];
  if (lang === 'zh-CN') {
    if (h) parts.push(`${h} 小时`);
    if (m) parts.push(`${m} 分`);
    if (sec || !parts.length) parts.push(`${sec} 秒`);
    return parts.join(' ');
  }
  if (h) parts.push(`${h} h`);
  if (m) parts.push(`${m} min`);
  if (sec || !parts.length) parts.push(`${sec} s`);
  return parts.join(' ');
}

/** Human words for a server error code, falling back to the server's own message. */
export function errorText(code, params = {}) {
  const key = `error.${code}`;
  if (dict[key] || en[key]) return t(key, params);
  return params.message || t('error.generic', { code });
}
