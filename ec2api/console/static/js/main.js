// Sign-in and navigation between pages. Credentials live in `session` only; they are stored (sealed
// by a passphrase, see remember.js) only when the user asks to be remembered.
import { client, loadConfig } from './api.js';
import { $, status } from './dom.js';
import { instancesPage } from './instances.js';
import { networksPage } from './networks.js';
import { securityGroupsPage } from './security_groups.js';
import { volumesPage } from './volumes.js';
import { accountsPage, isAdministrator, poolPage } from './admin.js';
import { imagesPage } from './images.js';
import { addressesPage, keyPairsPage } from './lists.js';
import { MIN_PASSPHRASE, forget, remember, remembered, unlock } from './remember.js';

const PAGES = { instances: instancesPage, images: imagesPage, keypairs: keyPairsPage, addresses: addressesPage,
  pool: poolPage, accounts: accountsPage, networks: networksPage, 'security-groups': securityGroupsPage,
  volumes: volumesPage };
let session = null;       // { api, pages, current }

function cryptoAvailable() {
  if (window.crypto && crypto.subtle) return true;
  status('This browser offers no Web Crypto here: open the console over HTTPS or on localhost.', true);
  return false;
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  if (!cryptoAvailable()) return;
  const accessKeyId = form.access_key_id.value.trim();
  const secret = form.secret.value;
  const passphrase = form.remember.checked ? form.passphrase.value : null;
  if (passphrase !== null && passphrase.length < MIN_PASSPHRASE) {
    status(`The passphrase needs at least ${MIN_PASSPHRASE} characters.`, true);
    return;
  }
  form.reset();              // the secret leaves the form at once; it lives on only in the client
  showRememberFields();
  try {
    await startSession(accessKeyId, secret);
    if (passphrase !== null) {
      await remember(accessKeyId, secret, passphrase);
      status(`This browser remembers ${accessKeyId}, sealed by your passphrase.`);
    }
  } catch (error) {
    status(`Sign-in failed: ${error.message}`, true);
  }
}

async function unlockRemembered(event) {
  event.preventDefault();
  const form = event.target;
  if (!cryptoAvailable()) return;
  const passphrase = form.passphrase.value;
  form.reset();
  try {
    const { accessKeyId, secret } = await unlock(passphrase);
    await startSession(accessKeyId, secret);
  } catch (error) {
    status(`Sign-in failed: ${error.message}`, true);
  }
}

function forgetRemembered() {
  forget();
  showSignInForms();
  status('This browser no longer remembers a key.');
}

// The key is proved by one call before anything is shown.
async function startSession(accessKeyId, secret) {
  const api = client(await loadConfig(), accessKeyId, secret);
  await api.call('DescribeRegions');
  const administrator = await isAdministrator(api);
  const pages = Object.fromEntries(Object.entries(PAGES).map(([name, make]) => [name, make(api, { administrator })]));
  $('#zone-heading').textContent = administrator ? 'Zone / host' : 'Zone';
  session = { api, pages, current: null };
  $('#sign-in').hidden = true;
  $('#unlock').hidden = true;
  $('#nav').hidden = false;
  $('#who').textContent = administrator ? `${api.accessKeyId} (administrator)` : api.accessKeyId;
  for (const button of document.querySelectorAll('nav .admin-only')) button.hidden = !administrator;
  status('');
  await show('instances');
}

// A remembered key is offered for unlocking; the full form stays one click away.
function showSignInForms() {
  const record = remembered();
  $('#unlock').hidden = !record;
  $('#unlock-who').textContent = record ? record.accessKeyId : '';
  $('#sign-in').hidden = false;
}

function showRememberFields() {
  $('#passphrase-field').hidden = !$('#sign-in').remember.checked;
  $('#sign-in').passphrase.required = $('#sign-in').remember.checked;
}

function signOut() {
  if (session && session.current) session.pages[session.current].hide();
  // Pages that keep forms and choices of their own empty them.
  if (session) for (const page of Object.values(session.pages)) page.clear?.();
  session = null;
  for (const name of Object.keys(PAGES)) $(`#page-${name}`).hidden = true;
  // Nothing of this account's may stay on screen for the next one to sign in.
  for (const body of document.querySelectorAll('tbody')) body.replaceChildren();
  for (const select of document.querySelectorAll('#launch select')) select.replaceChildren();
  $('#console-output').textContent = '';
  for (const plot of document.querySelectorAll('svg.plot')) plot.replaceChildren();
  $('#pool-summary').textContent = '';
  for (const button of document.querySelectorAll('nav .admin-only')) button.hidden = true;
  $('#nav').hidden = true;
  $('#who').textContent = '';
  showSignInForms();
  status('Signed out.');
}

async function show(name) {
  if (session.current) {
    session.pages[session.current].hide();
    $(`#page-${session.current}`).hidden = true;
  }
  session.current = name;
  $(`#page-${name}`).hidden = false;
  for (const button of document.querySelectorAll('nav [data-page]')) {
    button.classList.toggle('current', button.dataset.page === name);
  }
  try {
    await session.pages[name].show();
  } catch (error) {
    status(error.message, true);
  }
}

$('#sign-in').addEventListener('submit', signIn);
$('#sign-in').remember.addEventListener('change', showRememberFields);
$('#unlock').addEventListener('submit', unlockRemembered);
$('#forget').addEventListener('click', forgetRemembered);
showSignInForms();
$('#sign-out').addEventListener('click', signOut);
for (const button of document.querySelectorAll('nav [data-page]')) {
  button.addEventListener('click', () => session && show(button.dataset.page));
}
