// signpost upload page. One image: preview it, ask the server to sign the form for it
// (the image-meta fragment), and let the form post straight to the bucket. Several images
// (or a drop): a card each, signed one by one, sent with XHR, three at a time, then
// confirmed by the server. Without this script the form still uploads.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('formBlob'), input = $('myImage'), btn = $('btnSave'), meta = $('image-meta');
  const preview = $('imagePreview'), caption = $('fileName'), status = $('status');
  const cards = $('cards'), done = $('done'), drop = $('drop');
  if (!form || !input || !btn || !meta) return;
  const maxBytes = +form.dataset.maxBytes, types = form.dataset.types.split(',');
  const blank = preview.src, label = btn.textContent;
  let current = null, batch = [], timer = 0, urls = [];

  const size = (n) => (n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB').replace('.0 ', ' ');
  const el = (tag, props) => Object.assign(document.createElement(tag), props);
  const say = (text) => {
    status.replaceChildren();
    status.hidden = !text;
    if (text) status.append(el('p', { className: 'error', role: 'alert', textContent: text }));
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
    if (m.w && m.h) Object.assign(o, { width: m.w, height: m.h });
    return o;
  };

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
  const storeMessage = (t) => (/<Message>([^<]*)<\/Message>/.exec(t || '') || [])[1];

  async function upload(c) {
    set(c, 'uploading', 'signing…');
    c.bar.value = 0;
    await c.ready;
    let r, j;
    try {
      r = await fetch('/api/presign', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(describe(c.file, c.m)) });
      j = await r.json();
    } catch {
      return fail(c, 'signpost cannot be reached right now.', true);
    }
    if (!r.ok) return fail(c, (j.error && j.error.message) || `Signing failed (${r.status}).`, r.status >= 500 || r.status === 429);
    const data = new FormData();
    for (const [k, v] of Object.entries(j.fields)) data.append(k, v);
    data.append('file', c.file);
    const x = await new Promise((ok) => {
      const x = new XMLHttpRequest();
      x.open('POST', j.url);
      x.upload.onprogress = (e) => {
        if (e.lengthComputable) set(c, 'uploading', (c.bar.value = Math.round((100 * e.loaded) / e.total)) + '%');
      };
      x.onload = x.onerror = x.onabort = x.ontimeout = () => ok(x);
      x.send(data);
    });
    if (!x.status) return fail(c, 'The storage service refused this upload from the page (CORS, or it is down). Run `signpost check`; for an external bucket, `signpost cors` fixes CORS.', true);
    if (x.status >= 300) return fail(c, storeMessage(x.responseText) || `The storage service answered ${x.status}.`, true);
    c.bar.value = 100;
    set(c, 'uploading', 'confirming…');
    const etag = x.getResponseHeader('ETag') || (/<ETag>([^<]*)<\/ETag>/.exec(x.responseText) || [])[1] || '';
    try {
      r = await fetch('/api/uploads/confirm', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ key: j.key, etag: etag.replace(/&quot;/g, '"') }) });
      j = await r.json();
    } catch {
      return fail(c, 'Uploaded, but signpost cannot be reached to confirm it.', true);
    }
    if (!r.ok) return fail(c, (j.error && j.error.message) || `Confirmation failed (${r.status}).`, r.status >= 500);
    c.done = true;
    set(c, 'done', 'done ');
    c.st.append(el('a', { href: j.url, textContent: 'view' }));
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
  form.addEventListener('submit', async (e) => {
    if (batch.length) return e.preventDefault(), run(batch);
    if (!current) return e.preventDefault();
    if (stale()) {
      e.preventDefault();
      if (await sign()) form.submit();
      return;
    }
    setTimeout(() => (btn.disabled = true));
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
