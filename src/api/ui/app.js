// The drover console: signs in with a bearer token kept in this tab's
// session storage (never in a URL or cookie), loads each view as an HTML
// fragment the daemon renders and escapes, follows a running run through its
// server-sent events, and sends every change through the /v1 API.
'use strict';
(() => {
  const KEY = 'drover.token';
  const RUN_ID = /^[A-Za-z0-9-]{1,64}$/;
  const $ = (id) => document.getElementById(id);
  let me = null;
  let follow = null;
  let pending = null;

  const token = () => sessionStorage.getItem(KEY);

  function say(text, error) {
    const s = $('status');
    s.textContent = text || '';
    s.classList.toggle('error', !!error);
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ Authorization: 'Bearer ' + token() }, opts.headers || {});
    opts.cache = 'no-store';
    opts.credentials = 'omit';
    const res = await fetch(path, opts);
    if (res.status === 401) {
      signOut('The daemon did not accept this token; sign in again.');
      throw new Error('unauthorized');
    }
    return res;
  }

  async function problem(res) {
    try {
      const body = await res.json();
      return body.message || res.statusText;
    } catch (e) {
      return res.status + ' ' + res.statusText;
    }
  }

  function stopFollow() {
    if (follow) follow.abort();
    follow = null;
    clearTimeout(pending);
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    me = null;
    stopFollow();
    $('view').replaceChildren();
    $('nav').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    say('');
  }

  async function signIn(value) {
    sessionStorage.setItem(KEY, value);
    let res;
    try {
      res = await api('/v1/whoami');
    } catch (e) {
      return;
    }
    if (!res.ok) {
      signOut(await problem(res));
      return;
    }
    me = await res.json();
    $('signin').hidden = true;
    $('nav').hidden = false;
    $('who').hidden = false;
    $('who-name').textContent = me.name;
    $('who-role').textContent = me.role;
    $('nav-audit').hidden = !me.audit;
    route();
  }

  // Replaces the view with a fragment; the daemon escaped every value in it.
  async function show(path) {
    const res = await api(path);
    if (!res.ok) {
      $('view').replaceChildren();
      say(await problem(res), true);
      return false;
    }
    $('view').innerHTML = await res.text();
    return true;
  }

  function current() {
    const hash = location.hash || '#/runs';
    const [path, query] = hash.slice(2).split('?');
    return { parts: path.split('/'), query: new URLSearchParams(query || '') };
  }

  async function route() {
    if (!me) return;
    stopFollow();
    say('');
    const { parts, query } = current();
    document.querySelectorAll('#nav a').forEach((a) => {
      a.classList.toggle('active', a.dataset.view === parts[0]);
    });
    if (parts[0] === 'signout') {
      history.replaceState(null, '', '#/runs');
      signOut('Signed out.');
      return;
    }
    if (parts[0] === 'runs' && parts[1]) {
      await showRun(parts[1]);
    } else if (parts[0] === 'runbooks') {
      await show('/ui/f/runbooks');
    } else if (parts[0] === 'audit') {
      await show('/ui/f/audit');
    } else {
      const q = new URLSearchParams();
      for (const k of ['status', 'runbook']) if (query.get(k)) q.set(k, query.get(k));
      await show('/ui/f/runs?' + q.toString());
    }
  }

  async function showRun(id) {
    if (!RUN_ID.test(id)) {
      say('That is not a run id.', true);
      return;
    }
    if (!(await show('/ui/f/runs/' + encodeURIComponent(id)))) return;
    const section = $('run-view');
    if (section && section.dataset.live === 'yes') startFollow(id);
  }

  // Re-renders the run page soon (several events in a burst render once).
  function refresh(id) {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const { parts } = current();
      if (parts[0] !== 'runs' || parts[1] !== id) return;
      const res = await api('/ui/f/runs/' + encodeURIComponent(id));
      if (!res.ok) return;
      $('view').innerHTML = await res.text();
      const section = $('run-view');
      if (!follow && section && section.dataset.live === 'yes') {
        // The stream ended before the run's end was stored: look again.
        pending = setTimeout(() => refresh(id), 1000);
      }
    }, 200);
  }

  // Reads the run's server-sent events (fetch, so the token goes in a header).
  function startFollow(id) {
    const ctl = new AbortController();
    follow = ctl;
    (async () => {
      try {
        const res = await api('/v1/runs/' + encodeURIComponent(id) + '/events', {
          headers: { Accept: 'text/event-stream' },
          signal: ctl.signal,
        });
        if (!res.ok || !res.body) return;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            buffer = buffer.slice(end + 2);
            refresh(id);
          }
        }
      } catch (e) {
        if (e.name === 'AbortError') return;
        say('Live updates stopped: ' + e.message, true);
      }
      if (follow === ctl) {
        follow = null;
        refresh(id);
      }
    })();
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function decide(id, action) {
    const path = '/v1/runs/' + encodeURIComponent(id) + (action === 'cancel' ? '/cancel' : '/approvals');
    const body = action === 'cancel' ? null : JSON.stringify({ decision: action });
    const res = await api(path, {
      method: 'POST',
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body,
    });
    if (!res.ok) {
      say(await problem(res), true);
      return;
    }
    say(action === 'cancel' ? 'Cancel requested.' : action === 'approve' ? 'Approved.' : 'Rejected.');
    refresh(id);
  }

  async function download(id) {
    const res = await api('/v1/runs/' + encodeURIComponent(id) + '/report');
    if (!res.ok) {
      say(await problem(res), true);
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = 'drover-report-' + id + '.html';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say('Evidence report downloaded.');
  }

  async function trigger(form) {
    const params = {};
    form.querySelectorAll('input[data-param]').forEach((input) => {
      if (input.value.trim() !== '') params[input.dataset.param] = input.value.trim();
    });
    const body = {
      runbook: form.dataset.runbook,
      params,
      dry_run: form.querySelector('input.dry-run').checked,
    };
    const res = await api('/v1/runs', {
      method: 'POST',
      // A double click or a retried request starts one run, not two.
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': randomKey() },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      say(await problem(res), true);
      return;
    }
    const created = await res.json();
    location.hash = '#/runs/' + created.id;
  }

  document.addEventListener('click', (event) => {
    const target = event.target.closest('[data-action], a[data-report]');
    if (!target) return;
    event.preventDefault();
    const section = $('run-view');
    if (!section) return;
    const id = section.dataset.run;
    if (target.dataset.report) download(id);
    else decide(id, target.dataset.action);
  });

  document.addEventListener('submit', (event) => {
    const form = event.target;
    event.preventDefault();
    if (form.id === 'signin') {
      const value = $('token').value.trim();
      $('token').value = '';
      if (value) signIn(value);
    } else if (form.classList.contains('trigger')) {
      trigger(form);
    }
  });

  document.addEventListener('change', (event) => {
    const form = event.target.closest('#run-filters');
    if (!form) return;
    const q = new URLSearchParams();
    for (const k of ['status', 'runbook']) if (form.elements[k].value) q.set(k, form.elements[k].value);
    location.hash = '#/runs' + (q.toString() ? '?' + q.toString() : '');
  });

  window.addEventListener('hashchange', route);

  if (token()) signIn(token());
  else signOut('');
})();
