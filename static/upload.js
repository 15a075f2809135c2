// signpost upload page: preview, sign (the image-meta fragment), send straight to the bucket
// with XHR, confirm. Without this script the form still uploads.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('formBlob'), input = $('myImage'), btn = $('btnSave'), meta = $('image-meta');
  const preview = $('imagePreview'), caption = $('fileName'), status = $('status');
  const cards = $('cards'), done = $('done'), drop = $('drop'), alt = $('alt');
  if (!form || !input || !btn || !meta) return;
  const maxBytes = +form.dataset.maxBytes, types = form.dataset.types.split(',');
  const label = btn.textContent, altBox = alt && alt.closest('.describe');
  // The description goes to the server as `alt`, which signs it: posted once, as signed.
  if (alt) alt.removeAttribute('name');
  let current = null, batch = [], timer = 0, urls = [], running = false;

  const size = (n) => (n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB').replace('.0 ', ' ');
  const el = (tag, props) => Object.assign(document.createElement(tag), props);
  const altText = () => (alt ? alt.value.trim() : '');
  const say = (text, retry) => {
    status.replaceChildren();
    status.hidden = !text;
    if (!text) return;
    const p = el('p', { className: 'error', role: 'alert', textContent: text });
    status.append(p);
    if (!retry) return;
    const b = el('button', { type: 'button', textContent: 'Retry', onclick: retry });
    p.append(' ', b);
    b.focus();
  };
  const check = (f) =>
    !types.includes(f.type) ? `${f.name}: ${f.type || 'this kind of file'} is not accepted (${types.join(', ')}).`
    : f.size > maxBytes ? `${f.name} is ${size(f.size)}, larger than the ${size(maxBytes)} limit.`
    : !f.size ? `${f.name} is empty.` : '';
  const unreadable = (f) => `${f.name} is not an image this browser can read.`;
  // The preview, and the natural size the policy will carry; null when the browser cannot
  // read the file as an image (nothing is signed for it).
  const measure = (f) => new Promise((ok) => {
    const url = URL.createObjectURL(f), img = new Image();
    urls.push(url);
    img.onload = () => ok(img.naturalWidth ? { url, w: img.naturalWidth, h: img.naturalHeight } : null);
    img.onerror = () => ok(null);
    img.src = url;
  });
  const describe = (f, m, text) => {
    const o = { filename: f.name, content_type: f.type, size: f.size, width: m.w, height: m.h };
    if (text) o.alt = text;
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
  async function send(file, m, text, progress) {
    let r, j;
    try {
      [r, j] = await post('/api/presign', describe(file, m, text));
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

  input.multiple = true;
  const select = meta.querySelector('select');
  if (select) select.closest('label').hidden = true;
  btn.disabled = true;

  // Sign the form for the chosen file and its description: swap in a fresh image-meta partial.
  async function sign() {
    clearTimeout(timer);
    btn.disabled = true;
    const c = current, text = altText();
    let r, html;
    try {
      r = await fetch('/fragments/image-meta?' + new URLSearchParams(describe(c.file, c.m, text)), { headers: { 'HX-Request': 'true' } });
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
    c.signed = text;
    say('');
    btn.disabled = false;
    const at = Date.parse(meta.querySelector('[data-resign-at]').dataset.resignAt);
    timer = setTimeout(sign, Math.max(1000, at - Date.now()));
    return true;
  }
  const stale = () => {
    const s = meta.querySelector('[data-resign-at]');
    return !s || Date.parse(s.dataset.resignAt) <= Date.now() || current.signed !== altText();
  };
  // A new description is signed again, a moment after the typing stops.
  if (alt) alt.addEventListener('input', () => {
    if (!current || !current.m) return;
    btn.disabled = true;
    clearTimeout(timer);
    timer = setTimeout(sign, 400);
  });

  // How many files the button will upload: none that failed or are done.
  function count() {
    const n = batch.filter((c) => !c.failed && !c.done).length;
    btn.textContent = n ? `Upload ${n} image${n > 1 ? 's' : ''}` : label;
    btn.disabled = running || !n;
  }

  async function choose(list) {
    const files = [...list];
    urls.forEach(URL.revokeObjectURL);
    urls = [];
    clearTimeout(timer);
    current = null;
    batch = [];
    say('');
    cards.replaceChildren();
    cards.hidden = done.hidden = preview.hidden = true;
    btn.textContent = label;
    btn.disabled = true;
    // Each card has its own description.
    if (altBox) altBox.hidden = files.length > 1;
    if (!files.length) return (caption.textContent = hint);
    if (files.length > 1) {
      caption.textContent = `${files.length} images chosen.`;
      batch = files.map(card);
      cards.hidden = false;
      return count();
    }
    const file = files[0], bad = check(file);
    caption.textContent = file.name;
    if (bad) return say(bad);
    const c = (current = { file });
    c.m = await measure(file);
    if (current !== c) return;
    if (!c.m) return say(unreadable(file));
    preview.src = c.m.url;
    preview.hidden = false;
    caption.textContent = `${file.name} · ${c.m.w} × ${c.m.h} · ${size(file.size)}`;
    await sign();
  }

  // Save one image; the signed form posts itself when XHR cannot reach the store.
  async function saveOne() {
    const c = current;
    say('');
    btn.disabled = true;
    const r = await send(c.file, c.m, altText(), (p) => (btn.textContent = `Uploading… ${p}%`));
    btn.textContent = label;
    if (current !== c) return;
    if (r.url) return location.assign(r.url);
    if (r.blocked && (!stale() || (await sign()))) return form.submit();
    btn.disabled = false;
    say(r.error || cors, saveOne);
  }

  function card(file) {
    const c = { file, li: el('li', { className: 'card', tabIndex: -1 }), bar: el('progress', { max: 100, value: 0 }), st: el('span', { className: 'state' }) };
    const img = el('img', { alt: '' }), bad = check(file);
    c.bar.setAttribute('aria-label', `${file.name}: upload progress`);
    c.desc = el('input', { maxLength: 250, autocomplete: 'off' });
    const d = el('label', { className: 'alt', textContent: 'Description (for screen readers) ' });
    d.append(c.desc);
    c.li.append(img, el('b', { textContent: file.name }), ` ${size(file.size)} `, c.bar, c.st);
    if (!bad) c.li.append(d);
    cards.append(c.li);
    if (bad) {
      c.ready = Promise.resolve();
      fail(c, bad);
      return c;
    }
    set(c, 'checking', 'checking…');
    c.ready = measure(file).then((m) => {
      c.m = m;
      if (!m) {
        d.remove();
        return fail(c, unreadable(file));
      }
      img.src = m.url;
      if (c.li.dataset.state === 'checking') set(c, 'waiting');
    });
    return c;
  }
  function set(c, state, text) {
    c.li.dataset.state = state;
    c.st.textContent = text || state;
  }
  function fail(c, why, retry) {
    c.failed = true;
    set(c, 'failed', why);
    c.desc.disabled = false;
    if (retry) {
      const b = el('button', { type: 'button', textContent: 'Retry' });
      b.setAttribute('aria-label', `Retry ${c.file.name}`);
      // The button goes with its state: keep the keyboard's place on the card.
      b.onclick = () => { c.failed = false; c.li.focus(); run([c]); };
      c.st.append(' ', b);
    }
    count();
  }

  async function upload(c) {
    set(c, 'uploading', 'signing…');
    c.bar.value = 0;
    await c.ready;
    if (!c.m) return;
    c.desc.disabled = true;
    const r = await send(c.file, c.m, c.desc.value.trim(), (p) => set(c, 'uploading', (c.bar.value = p) + '%'));
    if (r.blocked) return fail(c, cors, true);
    if (!r.url) return fail(c, r.error, r.retry);
    c.done = true;
    set(c, 'done', 'done ');
    c.st.append(el('a', { href: r.url, textContent: 'view' }));
  }

  async function run(list) {
    running = true;
    btn.disabled = true;
    const queue = list.filter((c) => !c.failed && !c.done);
    const worker = async () => { while (queue.length) await upload(queue.shift()); };
    await Promise.all([worker(), worker(), worker()]);
    running = false;
    done.hidden = !batch.every((c) => c.done);
    count();
  }

  // Files from a drop, a paste or the camera, as if chosen (so the form can post them too).
  const take = (files) => {
    try { input.files = files; } catch {}
    choose(files);
  };
  input.addEventListener('change', () => choose(input.files));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (batch.length) return run(batch);
    if (current && current.m) saveOne();
  });
  addEventListener('pageshow', (e) => { if (e.persisted && current && current.m && stale()) sign(); });

  // Drop anywhere on the page; the zone shows it.
  const over = (on) => drop.classList.toggle('over', on);
  addEventListener('dragover', (e) => { e.preventDefault(); over(true); });
  addEventListener('dragleave', (e) => { if (!e.relatedTarget) over(false); });
  addEventListener('drop', (e) => {
    e.preventDefault();
    over(false);
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) take(files);
  });
  // Paste an image anywhere on the page (text pastes are left alone).
  addEventListener('paste', (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    if (!files || !files.length) return;
    e.preventDefault();
    take(files);
  });

  // The camera, beside the form: the signed form keeps one file input, its last field.
  const cam = el('input', { type: 'file', id: 'camera', accept: 'image/*', className: 'sr' });
  cam.setAttribute('capture', 'environment');
  cam.addEventListener('change', () => cam.files.length && take(cam.files));
  const shoot = el('label', { className: 'camera', htmlFor: 'camera', textContent: 'Take a photo' });
  shoot.append(cam);
  form.after(shoot);

  // Nothing is dropped on a touch screen: there the picker and the camera do.
  const hint = matchMedia('(pointer: coarse)').matches ? 'Choose images, or take a photo.' : 'Drop images here, or paste one.';
  caption.textContent = hint;
})();
