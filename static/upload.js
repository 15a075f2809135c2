// signpost upload page: preview, sign (the image-meta fragment), send straight to the bucket
// with XHR, confirm. Without this script the form still uploads.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('formBlob'), input = $('myImage'), btn = $('btnSave'), meta = $('image-meta');
  const preview = $('imagePreview'), caption = $('fileName'), status = $('status');
  const cards = $('cards'), done = $('done'), drop = $('drop'), alt = $('alt');
  if (!form || !input || !btn || !meta) return;
  const maxBytes = +form.dataset.maxBytes, types = form.dataset.types.split(',');
  const blank = preview.src, label = btn.textContent;
  let current = null, batch = [], timer = 0, urls = [];

  const size = (n) => (n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB').replace('.0 ', ' ');
  const el = (tag, props) => Object.assign(document.createElement(tag), props);
  const say = (text, retry) => {
    status.replaceChildren();
    status.hidden = !text;
    if (!text) return;
    const p = el('p', { className: 'error', role: 'alert', textContent: text });
    if (retry) p.append(' ', el('button', { type: 'button', textContent: 'Retry', onclick: retry }));
    status.append(p);
  };
  const check = (f) =>
    !types.includes(f.type) ? `${f.name}: ${f.type || 'this kind of file'} is not accepted (${types.join(', ')}).`
    : f.size > maxBytes ? `${f.name} is ${size(f.size)}, larger than the ${size(maxBytes)} limit.`
    : !f.size ? `${f.name} is empty.` : '';
  // The preview, and the natural size the policy will carry.
  const measure = (f) => new Promise((ok) => {
    const url = URL.createObjectURL(f), img = new Image();
    urls.push(url);
    img.onload = () => ok({ url, w: img.naturalWidth, h: img.naturalHeight });
    img.onerror = () => ok({ url, w: 0, h: 0 });
    img.src = url;
  });
  const describe = (f, m) => {
    const o = { filename: f.name, content_type: f.type, size: f.size };
    if (m && m.w && m.h) Object.assign(o, { width: m.w, height: m.h });
    if (alt && alt.value.trim()) o.alt = alt.value;
    return o;
  };
  const post = async (path, body) => {
    const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return [r, await r.json()];
  };
  const apiError = (r, j, what) => (j.error && j.error.message) || `${what} failed (${r.status}).`;

  const cors = 'The storage service cannot be reached from this page (CORS, or it is down). Run `signpost check`; for an external bucket, `signpost cors` fixes CORS.';
  // The store's XML error in plain words.
  function storeError(status, xml) {
    const tag = (t) => (new RegExp(`<${t}>([^<]*)</${t}>`).exec(xml) || [])[1] || '';
    const code = tag('Code') || status, msg = tag('Message');
    return code === 'EntityTooLarge' ? 'The storage service refused the file: it is too large.'
      : /expired/i.test(msg) ? 'The signed form expired before the upload finished.'
      : status === 503 ? 'The storage service is busy right now.'
      : `The storage service refused the upload (${code}${msg ? ': ' + msg : ''}).`;
  }

  // Sign, send, confirm: `{ url }`, `{ error, retry }`, or `{ blocked }` when the store's
  // answer is out of this page's reach and the upload is not there.
  async function send(file, m, progress) {
    let r, j;
    try {
      [r, j] = await post('/api/presign', describe(file, m));
    } catch {
      return { error: 'signpost cannot be reached right now.', retry: true };
    }
    if (!r.ok) return { error: apiError(r, j, 'Signing'), retry: r.status >= 500 || r.status === 429 };
    const key = j.key, data = new FormData();
    for (const [k, v] of Object.entries(j.fields)) data.append(k, v);
    data.append('file', file);
    const x = await new Promise((ok) => {
      const x = new XMLHttpRequest();
      x.open('POST', j.url);
      x.upload.onprogress = (e) => e.lengthComputable && progress(Math.round((100 * e.loaded) / e.total));
      x.onload = x.onerror = x.onabort = x.ontimeout = () => ok(x);
      x.send(data);
    });
    if (x.status && x.status >= 300) return { error: storeError(x.status, x.responseText), retry: true };
    progress(100);
    const etag = (x.status && x.getResponseHeader('ETag') || '').replace(/"/g, '');
    try {
      // Without an answer the upload may still be there: ask by key alone.
      [r, j] = await post('/api/uploads/confirm', etag ? { key, etag } : { key });
    } catch {
      return { error: 'Uploaded, but signpost cannot be reached to confirm it.', retry: true };
    }
    if (r.ok) return { url: j.url };
    if (!x.status && r.status === 404) return { blocked: true };
    return { error: apiError(r, j, 'Confirmation'), retry: r.status >= 500 };
  }

  // The description is signed into the fields (x-amz-meta-alt), never posted beside them.
  if (alt) alt.removeAttribute('name');
  input.multiple = true;
  const select = meta.querySelector('select');
  if (select) select.closest('label').hidden = true;
  btn.disabled = true;

  // Sign the form for the chosen file: swap in a fresh image-meta partial.
  async function sign() {
    clearTimeout(timer);
    btn.disabled = true;
    const c = current;
    let r, html;
    try {
      r = await fetch('/fragments/image-meta?' + new URLSearchParams(describe(c.file, c.m)), { headers: { 'HX-Request': 'true' } });
      html = await r.text();
    } catch {
      say('signpost cannot be reached right now. Check your connection, then choose the file again.');
      return false;
    }
    if (current !== c) return false;
    if (!r.ok) {
      status.innerHTML = html; // the server's escaped error fragment (role="alert")
      status.hidden = false;
      return false;
    }
    meta.innerHTML = html;
    say('');
    btn.disabled = false;
    const at = Date.parse(meta.querySelector('[data-resign-at]').dataset.resignAt);
    timer = setTimeout(sign, Math.max(1000, at - Date.now()));
    return true;
  }
  const stale = () => {
    const s = meta.querySelector('[data-resign-at]');
    return !s || Date.parse(s.dataset.resignAt) <= Date.now();
  };

  async function choose(list) {
    const files = [...list];
    urls.forEach(URL.revokeObjectURL);
    urls = [];
    clearTimeout(timer);
    current = null;
    batch = [];
    say('');
    cards.replaceChildren();
    cards.hidden = done.hidden = true;
    btn.textContent = label;
    btn.disabled = true;
    preview.src = blank;
    if (!files.length) return (caption.textContent = 'No image chosen yet.');
    if (files.length > 1) {
      caption.textContent = `${files.length} images chosen.`;
      batch = files.map(card);
      cards.hidden = false;
      btn.textContent = `Upload ${files.length} images`;
      btn.disabled = false;
      return;
    }
    const file = files[0], bad = check(file);
    caption.textContent = file.name;
    if (bad) return say(bad);
    const c = (current = { file });
    c.m = await measure(file);
    if (current !== c) return;
    preview.src = c.m.url;
    caption.textContent = `${file.name} · ${c.m.w} × ${c.m.h} · ${size(file.size)}`;
    await sign();
  }

  // Save one image; the signed form posts itself when XHR cannot reach the store.
  async function saveOne() {
    const c = current;
    say('');
    btn.disabled = true;
    const r = await send(c.file, c.m, (p) => (btn.textContent = `Uploading… ${p}%`));
    btn.textContent = label;
    if (current !== c) return;
    if (r.url) return location.assign(r.url);
    if (r.blocked && (!stale() || (await sign()))) return form.submit();
    btn.disabled = false;
    say(r.error || cors, saveOne);
  }

  function card(file) {
    const c = { file, li: el('li', { className: 'card' }), bar: el('progress', { max: 100, value: 0 }), st: el('span', { className: 'state' }) };
    const img = el('img', { alt: '' });
    c.li.append(img, el('b', { textContent: file.name }), ` ${size(file.size)} `, c.bar, c.st);
    cards.append(c.li);
    c.ready = measure(file).then((m) => { c.m = m; img.src = m.url; });
    const bad = check(file);
    bad ? fail(c, bad) : set(c, 'waiting');
    return c;
  }
  function set(c, state, text) {
    c.li.dataset.state = state;
    c.st.textContent = text || state;
  }
  function fail(c, why, retry) {
    c.failed = true;
    set(c, 'failed', why);
    if (retry) {
      const b = el('button', { type: 'button', textContent: 'Retry' });
      b.onclick = () => { c.failed = false; run([c]); };
      c.st.append(' ', b);
    }
  }

  async function upload(c) {
    set(c, 'uploading', 'signing…');
    c.bar.value = 0;
    await c.ready;
    const r = await send(c.file, c.m, (p) => set(c, 'uploading', (c.bar.value = p) + '%'));
    if (r.blocked) return fail(c, cors, true);
    if (!r.url) return fail(c, r.error, r.retry);
    c.done = true;
    set(c, 'done', 'done ');
    c.st.append(el('a', { href: r.url, textContent: 'view' }));
  }

  async function run(list) {
    btn.disabled = true;
    const queue = list.filter((c) => !c.failed && !c.done);
    const worker = async () => { while (queue.length) await upload(queue.shift()); };
    await Promise.all([worker(), worker(), worker()]);
    done.hidden = !batch.every((c) => c.done);
    btn.disabled = batch.every((c) => c.done || c.failed);
  }

  input.addEventListener('change', () => choose(input.files));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (batch.length) return run(batch);
    if (current) saveOne();
  });
  addEventListener('pageshow', (e) => { if (e.persisted && current && stale()) sign(); });

  // Drop anywhere on the page; the zone shows it. The zone opens the picker too.
  const over = (on) => drop.classList.toggle('over', on);
  addEventListener('dragover', (e) => { e.preventDefault(); over(true); });
  addEventListener('dragleave', (e) => { if (!e.relatedTarget) over(false); });
  addEventListener('drop', (e) => {
    e.preventDefault();
    over(false);
    const files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) return;
    try { input.files = files; } catch {}
    choose(files);
  });
  drop.tabIndex = 0;
  drop.setAttribute('role', 'button');
  drop.setAttribute('aria-label', 'Choose images, or drop them here');
  drop.onclick = () => input.click();
  drop.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') e.preventDefault(), input.click(); };
  caption.textContent = 'Drop images here, or click to choose.';
})();
