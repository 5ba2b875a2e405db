// bosun dashboard: one hand-written script, no framework, no CDN. Every piece of data comes from
// the /v1 API with the token kept in this tab's sessionStorage (sent as Authorization: Bearer); the
// live feed is an EventSource opened with a one-time stream ticket, so the token never goes in a URL.

(() => {
  const TOKEN_KEY = 'bosun.token';
  const PAGE = 100;
  const STATUSES = ['synced', 'pending', 'retrying', 'failed'];
  /** What zooid was last seen serving (README "Live status"). */
  const LIVE_STATUSES = ['live', 'stale', 'not_served', 'unexpected', 'wrong_identity', 'unknown'];
  /** Served under the wrong key, or served when it should not be: bosun never repairs these. */
  const LOUD = ['wrong_identity', 'unexpected'];

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    es: null,
    /** Resume point of the live feed: the last event id seen (or the stream's ready cursor). */
    after: null,
    feedIds: new Set(),
    /** Each relay's newest line in the live feed, to fold a repeated failure into it. */
    feedByRelay: new Map(),
    reconnectMs: 1000,
    relaysStatus: '',
    /** '' (all), 'active' or 'inactive'. */
    relaysActive: '',
    relaysPages: [undefined],
    refreshTimer: 0,
    chartTimer: 0,
  };

  const byId = (id) => document.getElementById(id);
  const esc = (v) => String(v ?? '').replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path) {
    const res = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${state.token}`, accept: 'application/json' },
      cache: 'no-store',
    });
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) {
      const err = new ApiError(
        res.status,
        body?.error?.code ?? 'error',
        body?.error?.message ?? res.statusText,
      );
      if (res.status === 401) signOut(`Signed out: ${err.message}`);
      throw err;
    }
    return body;
  }

  // ---- time and small helpers ------------------------------------------------------------------

  function ago(iso) {
    if (!iso) return '–';
    const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
    const a = Math.abs(s);
    const t =
      a < 60
        ? `${a} s`
        : a < 3600
          ? `${Math.round(a / 60)} min`
          : a < 86400
            ? `${Math.round(a / 3600)} h`
            : `${Math.round(a / 86400)} d`;
    return s >= 0 ? `in ${t}` : `${t} ago`;
  }
  const when = (iso) =>
    iso ? `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(ago(iso))}</time>` : '–';
  const badge = (status) => `<span class="badge s-${esc(status)}">${esc(status)}</span>`;
  const liveBadge = (live) => {
    const status = live?.status ?? 'unknown';
    return `<span class="badge l-${esc(status)}" data-live="${esc(status)}" title="live: ${esc(status)}">${esc(status.replace('_', ' '))}</span>`;
  };
  /** An inactive relay is kept by zooid but not served: say so wherever its status shows. */
  const inactiveBadge = (r) => (r.config.inactive ? ' <span class="badge inactive">inactive</span>' : '');
  const relayLink = (id) => `<a href="#/relay/${encodeURIComponent(id)}">${esc(id)}</a>`;
  const targetLink = (name) => `<a href="#/target/${encodeURIComponent(name)}">${esc(name)}</a>`;
  /** A target's health: up, down, or unknown before its first probe or sync. */
  const healthBadge = (t) =>
    t?.up === true
      ? '<span class="badge s-synced" data-health="up">up</span>'
      : t?.up === false
        ? '<span class="badge s-failed" data-health="down">down</span>'
        : '<span class="badge s-pending" data-health="unknown">unknown</span>';
  const canWrite = () => state.me && state.me.role !== 'agent';
  const resyncButton = (id) =>
    canWrite() ? `<button type="button" class="small" data-resync="${esc(id)}">Resync now</button>` : '';
  /** A pending relay still waiting after this long is stale: a resync may help. */
  const STALE_MS = 60_000;
  /** In lists, Resync is offered only where it helps: failing, retrying or stale relays. */
  const needsResync = (r) =>
    r.sync.status === 'failed' ||
    r.sync.status === 'retrying' ||
    (r.sync.status === 'pending' && Date.now() - Date.parse(r.updated_at) > STALE_MS);
  /** Cells of a table that stacks into labelled lines on a phone (see `table.stack` in app.css). */
  const td = (label, html, cls = '') =>
    `<td data-label="${esc(label)}"${cls ? ` class="${cls}"` : ''}>${html}</td>`;

  // ---- sign-in ---------------------------------------------------------------------------------

  function showSignIn(message) {
    byId('dash').hidden = true;
    byId('signout').hidden = true;
    byId('who').textContent = '';
    byId('signin').hidden = false;
    byId('signin-error').textContent = message ?? '';
    document.documentElement.dataset.view = 'signin';
    byId('token').focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    closeFeed();
    state.after = null;
    state.feedIds.clear();
    state.feedByRelay.clear();
    byId('feed').textContent = '';
    showSignIn(message);
  }

  byId('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = byId('token');
    const token = input.value.trim();
    if (!token) return;
    state.token = token;
    try {
      await api('GET', '/v1/dashboard/overview');
    } catch (err) {
      state.token = null;
      byId('signin-error').textContent = err instanceof ApiError ? err.message : 'bosun did not answer';
      return;
    }
    input.value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  byId('signout').addEventListener('click', () => signOut(''));

  function start() {
    byId('signin').hidden = true;
    byId('dash').hidden = false;
    byId('signout').hidden = false;
    // The fleet first; the live feed and the chart follow once it is on screen.
    void route().finally(() => {
      if (state.token) openFeed();
    });
  }

  // ---- routing ---------------------------------------------------------------------------------

  function currentRoute() {
    const m = /^#\/(relay|target)\/(.+)$/.exec(location.hash);
    try {
      if (m?.[1] === 'relay') return { view: 'relay', id: decodeURIComponent(m[2]) };
      if (m?.[1] === 'target') return { view: 'target', name: decodeURIComponent(m[2]) };
      return { view: 'overview' };
    } catch {
      return { view: 'overview' }; // a malformed escape (#/relay/%E0%A4%A) names no relay
    }
  }

  async function route() {
    if (!state.token) return showSignIn();
    const r = currentRoute();
    if (r.view === 'relay') await renderRelay(r.id);
    else if (r.view === 'target') await renderTarget(r.name);
    else await renderOverview(true);
  }
  window.addEventListener('hashchange', route);

  function setView(name) {
    const main = byId('main');
    if (main.dataset.view !== name) {
      main.dataset.view = name;
      main.dataset.loaded = '';
      main.innerHTML = '';
    }
    document.documentElement.dataset.view = name;
    return main;
  }

  // ---- overview --------------------------------------------------------------------------------

  async function renderOverview(fresh) {
    const main = setView('overview');
    if (fresh || !byId('counts')) {
      main.innerHTML = `
        <h1 class="sr-only">Fleet overview</h1>
        <section aria-labelledby="counts-title"><h2 id="counts-title" class="caption">Relays by sync status</h2>
          <div id="counts" class="cards"></div></section>
        <section id="by-target-panel" class="panel" hidden><h2>Relays by zooid target</h2>
          <div id="by-target" class="scroll"></div></section>
        <section aria-labelledby="live-title"><h2 id="live-title" class="caption">Relays by live status (what zooid serves)</h2>
          <p id="live-banner" class="banner" role="alert" hidden></p>
          <div id="live-counts" class="cards"></div></section>
        <section class="panel chart">
          <h2>Sync attempts per minute, last hour</h2>
          <div id="chart" class="muted">loading…</div>
          <div class="legend"><span><i class="ok"></i>synced</span><span><i class="bad"></i>failed attempt</span>
            <span><i class="rate"></i>failure rate</span><span id="chart-summary"></span></div>
          <p class="hint">Each retry is one attempt: a relay that failed 7 times counts 7 here and 1 above.</p>
        </section>
        <section class="panel">
          <h2>Failing relays <span id="failing-count" class="badge s-failed">0</span></h2>
          <div id="failing" class="scroll"></div>
        </section>
        <section class="panel">
          <h2>Not live <span id="notlive-count" class="badge l-stale">0</span></h2>
          <div id="notlive" class="scroll"></div>
        </section>
        <section class="panel">
          <div class="toolbar"><h2>Relays</h2><span class="spacer"></span>
            <label>status <select id="status-filter"><option value="">all</option>${STATUSES.map(
              (s) => `<option>${s}</option>`,
            ).join('')}</select></label>
            <label>serving <select id="active-filter"><option value="">all</option><option>active</option>
              <option>inactive</option></select></label>
            <button type="button" class="small ghost" id="prev-page">‹ prev</button>
            <button type="button" class="small ghost" id="next-page">next ›</button>
          </div>
          <div id="relays" class="scroll"></div>
        </section>`;
      byId('status-filter').value = state.relaysStatus;
      byId('status-filter').addEventListener('change', (e) => {
        state.relaysStatus = e.target.value;
        state.relaysPages = [undefined];
        void loadRelays();
      });
      byId('active-filter').value = state.relaysActive;
      byId('active-filter').addEventListener('change', (e) => {
        state.relaysActive = e.target.value;
        state.relaysPages = [undefined];
        void loadRelays();
      });
      byId('prev-page').addEventListener('click', () => {
        if (state.relaysPages.length > 1) state.relaysPages.pop();
        void loadRelays();
      });
      byId('next-page').addEventListener('click', () => {
        const next = byId('relays').dataset.next;
        if (next) {
          state.relaysPages.push(next);
          void loadRelays();
        }
      });
      main.dataset.loaded = '';
    }
    try {
      await Promise.all([loadSummary(), loadRelays()]);
      if (byId('main').dataset.view === 'overview' && byId('main').dataset.loaded !== 'true') {
        byId('main').dataset.loaded = 'true';
        // The first render of the fleet, for bench/dashboard.ts (navigation start → data on screen).
        if (!performance.getEntriesByName('bosun:overview').length) performance.mark('bosun:overview');
      }
      if (fresh) void loadChart();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showError(err);
    }
  }

  async function loadSummary() {
    const o = await api('GET', '/v1/dashboard/overview');
    state.me = o.principal;
    byId('who').textContent =
      o.principal.role === 'tenant'
        ? `tenant ${o.principal.owner}`
        : o.principal.role === 'agent'
          ? `agent (fleet ${o.principal.fleet})`
          : 'admin';
    if (!byId('counts')) return;
    byId('counts').innerHTML = ['total', ...STATUSES, 'inactive']
      .map(
        (s) =>
          `<div class="card ${s}" data-status="${s}"><div class="n">${o.counts[s]}</div><div class="l">${s}</div></div>`,
      )
      .join('');
    const failingTotal = o.counts.failed + o.counts.retrying;
    byId('failing-count').textContent = String(failingTotal);
    byId('failing').innerHTML = o.failing.length
      ? `<table class="stack"><thead><tr><th>relay</th><th>status</th><th>error</th><th>attempts</th><th>next retry</th><th><span class="sr-only">action</span></th></tr></thead><tbody>${o.failing
          .map(
            (
              r,
            ) => `<tr data-relay="${esc(r.id)}">${td('relay', `${relayLink(r.id)}<div class="muted">${esc(r.config.host)}</div>`)}
              ${td('status', badge(r.sync.status) + inactiveBadge(r))}${td('error', esc(r.sync.error), 'err')}${td('attempts', r.sync.attempts)}
              ${td('next retry', r.sync.status === 'failed' ? '<span class="muted">none: waits for a resync</span>' : when(r.sync.next_attempt_at))}
              ${td('', resyncButton(r.id), 'action')}</tr>`,
          )
          .join(
            '',
          )}</tbody></table>${failingTotal > o.failing.length ? `<p class="muted">${failingTotal - o.failing.length} more: filter the relay list by status.</p>` : ''}`
      : '<p class="muted">No failing relays.</p>';
    renderByTarget(o.by_target, o.fleet?.targets ?? []);
    renderLive(o.live);
    renderFleet(o.fleet);
  }

  /** The relays' counts by target (admin): each target links to its page; pull-only fleets last. */
  function renderByTarget(rows, targets) {
    const panel = byId('by-target-panel');
    if (!panel) return;
    panel.hidden = !rows;
    if (!rows) return;
    const health = new Map(targets.map((t) => [t.name, t]));
    byId('by-target').innerHTML = rows.length
      ? `<table class="stack"><thead><tr><th>target</th><th>health</th><th>fleets</th><th>total</th>${STATUSES.map((s) => `<th>${s}</th>`).join('')}</tr></thead><tbody>${rows
          .map(
            (
              t,
            ) => `<tr data-target="${esc(t.target ?? 'none')}">${td('target', t.target === null ? 'none (pull)' : targetLink(t.target))}
              ${td('health', t.target === null ? '<span class="muted">agents pull</span>' : healthBadge(health.get(t.target)))}
              ${td('fleets', esc(t.fleets.join(', ')))}${td('total', t.total)}
              ${STATUSES.map((s) => td(s, t.target === null ? '' : t[s], `n-${s}`)).join('')}</tr>`,
          )
          .join('')}</tbody></table>`
      : '<p class="muted">No relays.</p>';
  }

  /** Live counts, a banner for what bosun never repairs, and the relays that are not live. */
  function renderLive(live) {
    if (!live || !byId('live-counts')) return;
    byId('live-counts').innerHTML = LIVE_STATUSES.map(
      (s) =>
        `<div class="card l-${s}" data-live="${s}"><div class="n">${live.counts[s] ?? 0}</div><div class="l">${esc(s.replace('_', ' '))}</div></div>`,
    ).join('');
    const loud = LOUD.map((s) => [s, live.counts[s] ?? 0]).filter(([, n]) => n > 0);
    const banner = byId('live-banner');
    banner.hidden = loud.length === 0;
    banner.textContent = loud.length
      ? `${loud.map(([s, n]) => `${n} ${s.replace('_', ' ')}`).join(', ')}: zooid serves something bosun did not ask for. bosun does not repair this; see README "Live status".`
      : '';
    const rows = live.not_live;
    byId('notlive-count').textContent = String(rows.length);
    byId('notlive').innerHTML = rows.length
      ? `<table class="stack"><thead><tr><th>relay</th><th>live</th><th>why</th><th>checked</th></tr></thead><tbody>${rows
          .map(
            (
              r,
            ) => `<tr data-relay="${esc(r.id)}">${td('relay', `${relayLink(r.id)}<div class="muted">${esc(r.config.host)}</div>`)}
              ${td('live', liveBadge(r.live) + inactiveBadge(r) + (r.deleted ? ' <span class="badge inactive">deleted</span>' : ''))}
              ${td('why', esc(r.live.error), 'err')}${td('checked', when(r.live.checked_at))}</tr>`,
          )
          .join('')}</tbody></table>`
      : '<p class="muted">Every checked relay is served as recorded.</p>';
  }

  async function loadRelays() {
    const after = state.relaysPages[state.relaysPages.length - 1];
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (after) q.set('after', after);
    if (state.relaysStatus) q.set('status', state.relaysStatus);
    if (state.relaysActive) q.set('inactive', String(state.relaysActive === 'inactive'));
    const page = await api('GET', `/v1/relays?${q}`);
    const el = byId('relays');
    if (!el) return;
    el.dataset.next = page.next ?? '';
    byId('next-page').disabled = !page.next;
    byId('prev-page').disabled = state.relaysPages.length <= 1;
    el.innerHTML = page.relays.length
      ? `<table class="stack"><thead><tr><th>relay</th><th>host</th><th>owner</th><th>fleet</th><th>target</th><th>version</th><th>status</th><th>live</th><th>last synced</th><th><span class="sr-only">action</span></th></tr></thead><tbody>${page.relays
          .map(
            (
              r,
            ) => `<tr data-relay="${esc(r.id)}">${td('relay', relayLink(r.id))}${td('host', esc(r.config.host))}${td('owner', esc(r.owner))}
              ${td('fleet', esc(r.fleet))}${td('target', targetText(r.sync))}${td('version', `${r.sync.synced_version}/${r.version}`)}${td('status', badge(r.sync.status) + inactiveBadge(r))}
              ${td('live', liveBadge(r.live))}${td('last synced', when(r.sync.last_synced_at))}${td('', needsResync(r) ? resyncButton(r.id) : '', 'action')}</tr>`,
          )
          .join('')}</tbody></table>`
      : '<p class="muted">No relays.</p>';
  }

  function renderFleet(fleet) {
    const panel = byId('fleet');
    panel.hidden = !fleet;
    if (!fleet) return;
    byId('targets').innerHTML = fleet.targets.length
      ? `<table><tbody>${fleet.targets
          .map(
            (t) =>
              `<tr data-target="${esc(t.name)}"><td>${targetLink(t.name)}<div class="mono muted">${esc(t.url)}</div></td><td>${healthBadge(t)}</td><td>${t.latencyMs === null || t.latencyMs === undefined ? '' : `${esc(t.latencyMs)} ms`}<div class="muted">${
                t.error ? esc(t.error) : t.checkedAt ? `checked ${esc(ago(t.checkedAt))}` : ''
              }</div></td></tr>`,
          )
          .join('')}</tbody></table>`
      : '<p class="muted">No zooid target: push sync is off (ZOOID_API_URL is not set).</p>';
    byId('agents').innerHTML =
      fleet.agents === null
        ? '<p class="muted">No agent stream server in this process.</p>'
        : fleet.agents.length
          ? `<table><thead><tr><th>token</th><th>fleet</th><th>connected</th><th>state</th></tr></thead><tbody>${fleet.agents
              .map(
                (a) => `<tr><td class="mono">${esc(a.token ?? a.id ?? '')}</td><td>${esc(a.fleet ?? '')}</td>
                  <td>${when(a.connectedAt ?? a.connected_at)}</td>
                  <td>${a.synced === undefined ? '' : a.synced ? badge('synced') : badge('pending')}</td></tr>`,
              )
              .join('')}</tbody></table>`
          : '<p class="muted">No agent connected.</p>';
  }

  async function loadChart() {
    clearTimeout(state.chartTimer);
    state.chartTimer = setTimeout(loadChart, 30_000);
    const el = byId('chart');
    if (!el) return;
    let stats;
    try {
      stats = await api('GET', '/v1/stats/syncs?window=1h');
    } catch (err) {
      el.textContent = err.message;
      return;
    }
    if (!byId('chart')) return;
    drawChart(byId('chart'), stats);
    if (!performance.getEntriesByName('bosun:chart').length) performance.mark('bosun:chart');
    byId('chart-summary').textContent =
      `${stats.synced} synced, ${stats.failed} failed attempts (${(stats.failure_rate * 100).toFixed(1)}%)`;
  }

  function drawChart(el, stats) {
    const W = 600;
    const H = 120;
    const pad = 18;
    const n = stats.buckets.length;
    const max = Math.max(1, ...stats.buckets.map((b) => b.synced + b.failed));
    const bw = W / n;
    const y = (v) => H - pad - (v / max) * (H - pad - 6);
    let bars = '';
    let line = '';
    stats.buckets.forEach((b, i) => {
      const x = i * bw;
      const ok = y(b.synced);
      const bad = y(b.synced + b.failed);
      bars += `<rect class="ok" x="${x.toFixed(1)}" y="${ok.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(H - pad - ok).toFixed(1)}"><title>${esc(b.start)}: ${b.synced} synced, ${b.failed} failed</title></rect>`;
      if (b.failed)
        bars += `<rect class="bad" x="${x.toFixed(1)}" y="${bad.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(ok - bad).toFixed(1)}"></rect>`;
      const total = b.synced + b.failed;
      const rate = total ? b.failed / total : 0;
      line += `${i ? 'L' : 'M'}${(x + bw / 2).toFixed(1)},${(H - pad - rate * (H - pad - 6)).toFixed(1)}`;
    });
    el.className = 'plot';
    // The SVG stretches to the panel's width; its labels are HTML so they keep their size on a phone.
    el.innerHTML = `<div class="y-axis" aria-hidden="true"><span>${max}</span><span>0</span></div>
      <svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="sync attempts per minute over the last hour: ${stats.synced} synced, ${stats.failed} failed">
      <line class="axis" x1="0" y1="${H - pad}" x2="${W}" y2="${H - pad}"></line>
      ${bars}<path class="rate" d="${line}"></path></svg>
      <div class="x-axis" aria-hidden="true"><span>−60 min</span><span>now</span></div>`;
  }

  // ---- relay page ------------------------------------------------------------------------------

  /**
   * A detail page's data, or null: a missing one (`statuses`) says why with a way back; another
   * error shows in the banner, except a 401, which asks for a token.
   */
  async function loadDetail(main, title, path, statuses) {
    try {
      return await api('GET', path);
    } catch (err) {
      if (err instanceof ApiError && statuses.includes(err.status)) {
        main.innerHTML = `<section class="panel"><h1>${esc(title)}</h1><p class="error">${esc(err.message)}</p><p><a href="#/">Back to the fleet</a></p></section>`;
        main.dataset.loaded = 'true';
      } else if (!(err instanceof ApiError && err.status === 401)) showError(err);
      return null;
    }
  }

  async function renderRelay(id) {
    const main = setView(`relay:${id}`);
    const d = await loadDetail(main, `Relay ${id}`, `/v1/dashboard/relays/${encodeURIComponent(id)}`, [404]);
    if (!d) return;
    if (currentRoute().id !== id) return;
    const r = d.relay;
    const s = r.sync;
    const diff =
      d.diff === null
        ? '<p class="muted">zooid has not acknowledged this relay yet.</p>'
        : d.diff.length === 0
          ? `<p>zooid has the current config (version ${d.acked.version}, acknowledged ${when(d.acked.at)}).</p>`
          : `<p class="muted">zooid acknowledged version ${d.acked.version} ${when(d.acked.at)}; bosun has version ${r.version}.</p>
             <table class="diff"><thead><tr><th>field</th><th>acknowledged</th><th>current</th></tr></thead><tbody>${d.diff
               .map(
                 (
                   e,
                 ) => `<tr><td class="mono">${esc(e.path)}</td><td class="acked mono">${'acked' in e ? esc(JSON.stringify(e.acked)) : '<i>absent</i>'}</td>
                 <td class="current mono">${'current' in e ? esc(JSON.stringify(e.current)) : '<i>absent</i>'}</td></tr>`,
               )
               .join('')}</tbody></table>`;
    main.innerHTML = `
      <section class="panel">
        <div class="toolbar"><a href="#/">← fleet</a><span class="spacer"></span>${resyncButton(r.id)}</div>
        <h1>${esc(r.id)} ${badge(s.status)}${inactiveBadge(r)}</h1>
        <dl class="meta">
          <dt>host</dt><dd>${esc(r.config.host)}</dd>
          <dt>owner</dt><dd>${esc(r.owner)}</dd>
          <dt>fleet</dt><dd>${esc(r.fleet)}</dd>
          <dt>target</dt><dd id="relay-target">${targetText(s)}</dd>
          <dt>serving</dt><dd>${r.config.inactive ? 'no: inactive (zooid keeps it but does not serve it)' : 'yes: active'}</dd>
          <dt>version</dt><dd>${r.version} (zooid has ${s.synced_version})</dd>
          <dt>last synced</dt><dd>${when(s.last_synced_at)}</dd>
          <dt>attempts</dt><dd>${s.attempts}</dd>
          <dt>next retry</dt><dd>${s.status === 'failed' ? 'none: waits for a resync' : when(s.next_attempt_at)}</dd>
          <dt>error</dt><dd class="error">${esc(s.error) || '<span class="muted">none</span>'}</dd>
          <dt>live</dt><dd>${liveBadge(r.live)} <span class="muted">checked ${when(r.live?.checked_at)}</span></dd>
          <dt>live error</dt><dd class="error" id="live-error">${esc(r.live?.error) || '<span class="muted">none</span>'}</dd>
        </dl>
        ${
          r.live?.diff
            ? `<table id="live-diff" class="diff"><thead><tr><th>field</th><th>recorded</th><th>served by zooid</th></tr></thead><tbody>${Object.entries(
                r.live.diff,
              )
                .map(
                  ([field, d]) =>
                    `<tr><td class="mono">${esc(field)}</td><td class="current mono">${esc(JSON.stringify(d.want))}</td><td class="acked mono">${esc(JSON.stringify(d.got))}</td></tr>`,
                )
                .join('')}</tbody></table>`
            : ''
        }
      </section>
      <section class="panel"><h2>Last acknowledged config vs current</h2><div id="diff">${diff}</div></section>
      <section class="panel"><h2>Sync history</h2><div class="scroll">${
        d.history.length
          ? `<table id="history" class="stack"><thead><tr><th>#</th><th>when</th><th>activity</th><th>version</th><th>detail</th><th>by</th></tr></thead><tbody>${collapseRepeats(
              d.history,
            )
              .map(
                ({
                  a,
                  repeat,
                  oldest,
                }) => `<tr>${td('#', repeat > 1 ? `${oldest.id}–${a.id}` : a.id)}${td('when', when(a.created_at))}
                ${td('activity', `${esc(a.type)}${repeat > 1 ? ` <span class="repeat">×${repeat}</span>` : ''}`, `t-${esc(a.type)}`)}
                ${td('version', esc(a.payload.version ?? ''))}${td('detail', esc(detail(a)), a.type === 'fail_relay_sync' ? 'err' : '')}${td('by', esc(a.actor), 'muted')}</tr>`,
              )
              .join('')}</tbody></table>`
          : '<p class="muted">No activity.</p>'
      }</div></section>
      <section class="panel"><h2>Config</h2><p class="muted">The relay's secret key is never shown.</p>
        <pre class="config" tabindex="0" aria-label="relay config">${esc(JSON.stringify(r.config, null, 2))}</pre></section>`;
    main.dataset.loaded = 'true';
  }

  /**
   * Where zooid holds the relay, and the move push sync is making while its fleet pushes to another
   * target (create there, then delete here).
   */
  function targetText(s) {
    if (s.moving) return `${esc(s.moving.from)} → ${esc(s.moving.to)} (moving)`;
    return s.target ? esc(s.target) : '<span class="muted">none</span>';
  }

  // ---- target page -----------------------------------------------------------------------------

  async function renderTarget(name) {
    const main = setView(`target:${name}`);
    const path = `/v1/dashboard/targets/${encodeURIComponent(name)}`;
    const d = await loadDetail(main, `Target ${name}`, path, [404, 403]);
    if (!d) return;
    if (currentRoute().name !== name) return;
    const t = d.target;
    const c = d.counts;
    main.innerHTML = `
      <section class="panel">
        <div class="toolbar"><a href="#/">← fleet</a></div>
        <h1>Target ${esc(t.name)} ${healthBadge(t)}</h1>
        <dl class="meta">
          <dt>url</dt><dd class="mono">${esc(t.url)}</dd>
          <dt>pubkey</dt><dd class="mono">${esc(t.pubkey) || '<span class="muted">none</span>'} <span class="muted">(in its API_WHITELIST)</span></dd>
          <dt>health</dt><dd id="target-health">${
            t.up === undefined || t.up === null ? 'not probed yet' : t.up ? 'up' : 'down'
          }${t.checkedAt ? ` <span class="muted">probed ${when(t.checkedAt)}${t.latencyMs === null || t.latencyMs === undefined ? '' : `, ${esc(t.latencyMs)} ms`}</span>` : ''}</dd>
          <dt>syncs failing in a row</dt><dd id="target-sync-failures">${esc(t.syncFailures ?? 0)}</dd>
          <dt>error</dt><dd class="error" id="target-error">${esc(t.error) || '<span class="muted">none</span>'}</dd>
          <dt>fleets</dt><dd id="target-fleets">${d.fleets.length ? esc(d.fleets.join(', ')) : '<span class="muted">none with relays</span>'}</dd>
        </dl>
      </section>
      <section aria-labelledby="target-counts-title"><h2 id="target-counts-title" class="caption">Its relays by sync status</h2>
        <div id="counts" class="cards">${['total', ...STATUSES]
          .map(
            (s) =>
              `<div class="card ${s}" data-status="${s}"><div class="n">${c[s]}</div><div class="l">${s}</div></div>`,
          )
          .join('')}</div></section>
      <section class="panel">
        <h2>Failing relays <span id="failing-count" class="badge s-failed">${c.failed + c.retrying}</span></h2>
        <div id="failing" class="scroll">${
          d.failing.length
            ? `<table class="stack"><thead><tr><th>relay</th><th>fleet</th><th>status</th><th>error</th><th>attempts</th><th>next attempt</th><th><span class="sr-only">action</span></th></tr></thead><tbody>${d.failing
                .map(
                  (
                    r,
                  ) => `<tr data-relay="${esc(r.id)}">${td('relay', `${relayLink(r.id)}<div class="muted">${esc(r.config.host)}</div>`)}
                    ${td('fleet', esc(r.fleet))}${td('status', badge(r.sync.status) + inactiveBadge(r))}${td('error', esc(r.sync.error), 'err')}
                    ${td('attempts', r.sync.attempts)}${td('next attempt', r.sync.status === 'failed' ? '<span class="muted">none: waits for a resync</span>' : when(r.sync.next_attempt_at))}
                    ${td('', resyncButton(r.id), 'action')}</tr>`,
                )
                .join('')}</tbody></table>`
            : '<p class="muted">No failing relays on this target.</p>'
        }</div>
      </section>`;
    main.dataset.loaded = 'true';
  }

  function detail(a) {
    const p = a.payload ?? {};
    if (a.type === 'move_relay') return `moved from ${p.from ?? '?'} to ${p.to ?? '?'}`;
    if (a.type === 'fail_relay_sync')
      return `${p.error ?? ''} (attempt ${p.attempts ?? '?'}, ${p.status ?? ''})`;
    if (a.type === 'update_relay' && Array.isArray(p.fields)) return `changed ${p.fields.join(', ')}`;
    if (a.type === 'observe_relay')
      return `${p.from ?? '?'} → ${p.to ?? '?'}${p.error ? `: ${p.error}` : ''}`;
    return '';
  }

  /**
   * Retries of one change fail the same way, each with its own activity: a failure with the same
   * version and error as the one just before it (of the same relay) is a repeat, shown once with a
   * count instead of flooding the feed and the history.
   */
  const repeatKey = (a) =>
    a.type === 'fail_relay_sync' ? `${a.relay_id}\n${a.payload?.version}\n${a.payload?.error}` : null;

  /** Newest-first activities with runs of repeats folded into their newest: `{a, repeat, oldest}`. */
  function collapseRepeats(activities) {
    const out = [];
    for (const a of activities) {
      const last = out[out.length - 1];
      const key = repeatKey(a);
      if (key !== null && last && repeatKey(last.a) === key) {
        last.repeat++;
        last.oldest = a;
      } else out.push({ a, repeat: 1, oldest: a });
    }
    return out;
  }

  /** A failure in the feed: `failed ×7, next retry in 53 s` (or `gave up`), then the error. */
  function failLine(a, repeat) {
    const p = a.payload ?? {};
    const next =
      p.status === 'failed'
        ? 'gave up: waits for a resync'
        : p.next_attempt_at
          ? `next retry ${ago(p.next_attempt_at)}`
          : '';
    return `failed${repeat > 1 ? ` <span class="repeat">×${repeat}</span>` : ''}${next ? `, ${esc(next)}` : ''} · ${esc(p.error ?? '')} · attempt ${esc(p.attempts ?? '?')}`;
  }

  // ---- actions ---------------------------------------------------------------------------------

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-resync]');
    if (!button) return;
    const id = button.dataset.resync;
    button.disabled = true;
    button.textContent = 'Queued…';
    try {
      await api('POST', `/v1/relays/${encodeURIComponent(id)}/sync`);
    } catch (err) {
      button.disabled = false;
      button.textContent = 'Resync now';
      if (!(err instanceof ApiError && err.status === 401)) showError(err);
    }
  });

  function showError(err) {
    const main = byId('main');
    const p = document.createElement('p');
    p.className = 'error panel';
    p.textContent = err instanceof Error ? err.message : String(err);
    main.prepend(p);
    setTimeout(() => p.remove(), 8000);
  }

  // ---- live feed -------------------------------------------------------------------------------

  function setLive(s) {
    const el = byId('live');
    el.dataset.state = s;
    el.textContent = s;
  }

  function closeFeed() {
    if (state.es) state.es.close();
    state.es = null;
  }

  async function openFeed() {
    closeFeed();
    if (!state.token) return;
    let ticket;
    try {
      ticket = (await api('POST', '/v1/activities/stream-ticket')).ticket;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      return retryFeed();
    }
    const q = new URLSearchParams({ ticket });
    if (state.after !== null) q.set('after', String(state.after));
    else q.set('tail', '50');
    const es = new EventSource(`/v1/activities/stream?${q}`);
    state.es = es;
    es.onmessage = (e) => {
      state.after = Number(e.lastEventId);
      onActivity(JSON.parse(e.data), es);
    };
    es.addEventListener('ready', (e) => {
      const { cursor } = JSON.parse(e.data);
      if (state.after === null || cursor > state.after) state.after = cursor;
      state.reconnectMs = 1000;
      setLive('live');
    });
    // A dropped or ended stream (and tickets are single-use): reconnect with a fresh ticket.
    es.onerror = () => {
      if (state.es !== es) return;
      closeFeed();
      retryFeed();
    };
  }

  function retryFeed() {
    if (!state.token) return;
    setLive('reconnecting');
    setTimeout(openFeed, state.reconnectMs);
    state.reconnectMs = Math.min(state.reconnectMs * 2, 30_000);
  }

  function onActivity(a, es) {
    if (state.feedIds.has(a.id)) return;
    state.feedIds.add(a.id);
    const feed = byId('feed');
    const key = repeatKey(a);
    const before = state.feedByRelay.get(a.relay_id);
    let repeat = 1;
    if (key !== null && before?.isConnected && before.dataset.key === key) {
      // The same failure again: the relay's line moves to the top with its count.
      repeat = Number(before.dataset.repeat) + 1;
      state.feedIds.delete(Number(before.dataset.id));
      before.remove();
    }
    const li = document.createElement('li');
    li.dataset.id = String(a.id);
    li.dataset.type = a.type;
    li.dataset.relay = a.relay_id;
    li.dataset.key = key ?? '';
    li.dataset.repeat = String(repeat);
    state.feedByRelay.set(a.relay_id, li);
    if (es.readyState === EventSource.OPEN && byId('live').dataset.state === 'live') li.className = 'fresh';
    const t = new Date(a.created_at);
    const version = a.payload?.version ? `v${esc(a.payload.version)}` : '';
    const what = a.type === 'fail_relay_sync' ? failLine(a, repeat) : esc(detail(a));
    li.innerHTML = `<time datetime="${esc(a.created_at)}" title="${esc(a.created_at)}">${esc(t.toLocaleTimeString([], { hour12: false }))}</time>
      <span><span class="t-${esc(a.type)}">${esc(a.type)}</span> ${relayLink(a.relay_id)}</span>
      <span class="detail">${[version, what, esc(a.actor)].filter(Boolean).join(' · ')}</span>`;
    feed.prepend(li);
    while (feed.children.length > 200) {
      const last = feed.lastElementChild;
      state.feedIds.delete(Number(last.dataset.id));
      if (state.feedByRelay.get(last.dataset.relay) === last) state.feedByRelay.delete(last.dataset.relay);
      last.remove();
    }
    scheduleRefresh(a);
  }

  /** Live activities refresh what is on screen, at most a few times a second. */
  let dirtyChart = false;
  function scheduleRefresh(a) {
    const r = currentRoute();
    if (r.view === 'relay' && r.id !== a.relay_id) return;
    if (a.type === 'complete_relay_sync' || a.type === 'fail_relay_sync') dirtyChart = true;
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = 0;
      const now = currentRoute();
      if (now.view === 'relay') void renderRelay(now.id);
      else if (now.view === 'target') void renderTarget(now.name);
      else {
        void renderOverview(false);
        if (dirtyChart) {
          dirtyChart = false;
          clearTimeout(state.chartTimer);
          state.chartTimer = setTimeout(loadChart, 2000);
        }
      }
    }, 500);
  }

  // Relative times drift: redraw them every 15 s without refetching anything.
  setInterval(() => {
    for (const t of document.querySelectorAll('main time[datetime]'))
      t.textContent = ago(t.getAttribute('datetime'));
  }, 15_000);

  if (state.token) start();
  else showSignIn();
})();
