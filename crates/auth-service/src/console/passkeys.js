// The console's passkey buttons (WebAuthn in the browser; the only script of the console,
// served from /admin/static/ under `script-src 'self'`). Each button carries the CSRF token of
// its page in `data-csrf`; the server checks it in `X-CSRF-Token`.
'use strict';

async function post(url, csrf, body) {
  const r = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (_) { /* an empty body */ }
  if (!r.ok) throw new Error(data.detail || ('The server answered ' + r.status + '.'));
  return data;
}

function say(text) {
  const out = document.getElementById('passkey-status');
  if (out) { out.textContent = text; out.hidden = false; }
}

async function register(button) {
  const csrf = button.dataset.csrf;
  const nameField = document.getElementById('passkey-name');
  const name = nameField && nameField.value.trim() ? nameField.value.trim() : undefined;
  const started = await post('/admin/mfa/webauthn/register/start/', csrf, {name});
  const created = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(started.publicKey),
  });
  await post('/admin/mfa/webauthn/register/finish/', csrf, {ticket: started.ticket, credential: created.toJSON(), name});
  window.location.assign('/admin/mfa/?done=passkey');
}

async function signIn(button) {
  const csrf = button.dataset.csrf;
  const mfaToken = button.dataset.mfaToken || undefined;
  const started = await post('/admin/login/webauthn/start/', csrf, {mfa_token: mfaToken});
  const asserted = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(started.publicKey),
  });
  const done = await post('/admin/login/webauthn/finish/', csrf,
    {ticket: started.ticket, credential: asserted.toJSON(), mfa_token: mfaToken});
  window.location.assign(done.redirect);
}

for (const [id, action] of [['add-passkey', register], ['use-passkey', signIn]]) {
  const button = document.getElementById(id);
  if (!button) continue;
  if (!window.PublicKeyCredential) { button.disabled = true; continue; }
  button.addEventListener('click', () => {
    button.disabled = true;
    action(button).catch((e) => { say(e.message || String(e)); button.disabled = false; });
  });
}
