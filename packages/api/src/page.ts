/**
 * The gateway's built-in page: one stack converging live. Plain HTML and JS (no build step),
 * served at `/`; open `/?token=TOKEN&stack=NAME_OR_ID`. It resolves the stack through the
 * socket's read-only API forwarding, replays the stack's events from sequence 1, follows them
 * live and, after a disconnect, resumes from the last sequence it saw.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Kiln — stack progress</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }
  h1 { font-size: 1.4em; margin: 0 0 .3em; }
  form { margin-bottom: 1em; }
  input { font: inherit; padding: .2em .4em; }
  #conn { font-size: .9em; color: #666; }
  .bar { height: 1.4em; background: #eee; border-radius: .3em; overflow: hidden; margin: .8em 0 .3em; }
  #progress-bar { height: 100%; width: 0; background: #3a8; }
  #progress-bar.failed { background: #c44; }
  ul { padding: 0; list-style: none; }
  #counts li { display: inline-block; margin-right: 1.2em; }
  #counts b { font-size: 1.3em; }
  #events li { font-family: ui-monospace, monospace; font-size: .85em; padding: .1em 0; border-bottom: 1px solid #f0f0f0; }
  .FAILED { color: #c22; } .COMPLETE { color: #283; } .IN_PROGRESS { color: #a70; }
</style>
</head>
<body>
<h1>Stack <span id="stack-name">—</span> <small id="stack-status"></small></h1>
<form id="pick"><input id="token" placeholder="token" size="16"> <input id="stack" placeholder="stack name or id" size="24"> <button>Watch</button></form>
<div id="conn">not connected</div>
<div class="bar"><div id="progress-bar"></div></div>
<div id="progress-text">0 / 0 resources ready</div>
<ul id="counts"></ul>
<h2>Recent events</h2>
<ul id="events"></ul>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  $('token').value = params.get('token') || '';
  $('stack').value = params.get('stack') || '';
  const resources = new Map(); // resource name -> latest status
  let total = 0, stackId = null, lastSeq = 0, ws = null, retry = 0, stopped = false, generation = 0, live = false;

  const kind = (s) => /FAILED/.test(s) ? 'FAILED' : /(COMPLETE|READY|ACTIVE)$/.test(s) ? 'COMPLETE' : 'IN_PROGRESS';

  function render() {
    const counts = {};
    let done = 0, failed = 0;
    for (const s of resources.values()) {
      counts[s] = (counts[s] || 0) + 1;
      if (s === 'DELETE_COMPLETE') continue;
      if (kind(s) === 'COMPLETE') done++;
      if (kind(s) === 'FAILED') failed++;
    }
    const n = Math.max(total, resources.size);
    $('progress-bar').style.width = (n ? Math.round((100 * done) / n) : 0) + '%';
    $('progress-bar').className = failed ? 'failed' : '';
    $('progress-text').textContent = done + ' / ' + n + ' resources ready' + (failed ? ', ' + failed + ' failed' : '');
    const ul = $('counts');
    ul.replaceChildren(...Object.keys(counts).sort().map((s) => {
      const li = document.createElement('li');
      li.dataset.status = s;
      li.className = kind(s);
      li.innerHTML = '<b></b> ';
      li.firstChild.textContent = counts[s];
      li.append(s);
      return li;
    }));
  }

  function addEvent(ev) {
    if (ev.seq <= lastSeq) return; // a resumed replay never shows an event twice
    lastSeq = ev.seq;
    if (ev.resource !== undefined) resources.set(ev.resource, ev.status);
    else $('stack-status').textContent = ev.status;
    const li = document.createElement('li');
    li.className = kind(ev.status);
    li.textContent = '#' + ev.seq + ' ' + ev.time.slice(11, 19) + ' ' + (ev.resource || '(stack)') + ' ' + ev.status + (ev.reason ? ' — ' + ev.reason : '');
    const list = $('events');
    list.prepend(li);
    if (live) $('conn').textContent = 'live, last event #' + ev.seq;
    while (list.children.length > 50) list.lastChild.remove();
    render();
  }

  function connect() {
    const token = $('token').value, ref = $('stack').value;
    if (!token || !ref) return;
    const mine = ++generation; // a socket replaced by a new watch must not reconnect
    const sock = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/events');
    ws = sock;
    sock.onopen = () => sock.send(JSON.stringify({ type: 'auth', token }));
    sock.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === 'welcome') {
        retry = 0;
        $('conn').textContent = 'connected as ' + msg.tenant;
        sock.send(JSON.stringify({ type: 'request', id: 'show', op: 'stack.show', body: { stack: ref } }));
      } else if (msg.type === 'reply' && msg.id === 'show') {
        if (!msg.ok) { $('conn').textContent = msg.error.message; stopped = true; sock.close(); return; }
        stackId = msg.result.id;
        total = msg.result.resources.total;
        $('stack-name').textContent = msg.result.name;
        $('stack-status').textContent = msg.result.status;
        render();
        sock.send(JSON.stringify({ type: 'subscribe', filter: { stack: stackId }, from_seq: lastSeq + 1 }));
      } else if (msg.type === 'event') addEvent(msg.event);
      else if (msg.type === 'caught_up') { live = true; $('conn').textContent = 'live, last event #' + lastSeq; }
      else if (msg.type === 'error') $('conn').textContent = 'error: ' + msg.error.message;
    };
    sock.onclose = (e) => {
      if (mine !== generation) return;
      if (stopped || e.code === 4001) { $('conn').textContent = 'closed: ' + (e.reason || e.code); return; }
      live = false;
      $('conn').textContent = 'reconnecting (' + (e.reason || e.code) + ')';
      setTimeout(connect, Math.min(5000, 200 * 2 ** retry++));
    };
  }

  $('pick').onsubmit = (e) => {
    e.preventDefault();
    generation++;
    if (ws) ws.close();
    resources.clear(); total = 0; lastSeq = 0; stopped = false;
    $('events').replaceChildren();
    connect();
  };
  connect();
})();
</script>
</body>
</html>
`;
