// Sign-in and navigation between pages. Credentials live in `session` only, never in storage.
import { client, loadConfig } from './api.js';
import { $, status } from './dom.js';
import { instancesPage } from './instances.js';
import { accountsPage, isAdministrator, poolPage } from './admin.js';
import { addressesPage, imagesPage, keyPairsPage } from './lists.js';

const PAGES = { instances: instancesPage, images: imagesPage, keypairs: keyPairsPage, addresses: addressesPage,
  pool: poolPage, accounts: accountsPage };
let session = null;       // { api, pages, current }

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  if (!window.crypto || !crypto.subtle) {
    status('This browser offers no Web Crypto here: open the console over HTTPS or on localhost.', true);
    return;
  }
  try {
    const api = client(await loadConfig(), form.access_key_id.value.trim(), form.secret.value);
    await api.call('DescribeRegions');     // proves the key before showing anything
    const administrator = await isAdministrator(api);
    form.reset();
    const pages = Object.fromEntries(Object.entries(PAGES).map(([name, make]) => [name, make(api)]));
    session = { api, pages, current: null };
    $('#sign-in').hidden = true;
    $('#nav').hidden = false;
    $('#who').textContent = administrator ? `${api.accessKeyId} (administrator)` : api.accessKeyId;
    for (const button of document.querySelectorAll('nav .admin-only')) button.hidden = !administrator;
    status('');
    await show('instances');
  } catch (error) {
    status(`Sign-in failed: ${error.message}`, true);
  }
}

function signOut() {
  if (session && session.current) session.pages[session.current].hide();
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
  $('#sign-in').hidden = false;
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
$('#sign-out').addEventListener('click', signOut);
for (const button of document.querySelectorAll('nav [data-page]')) {
  button.addEventListener('click', () => session && show(button.dataset.page));
}
