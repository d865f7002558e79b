// The read-mostly pages: key pairs (create and import) and elastic IPs.
import { items, text } from './api.js';
import { $, fillTable, status } from './dom.js';

// Late answers after the page is left (or the user signed out) are dropped, never shown.
export function addressesPage(api) {
  let active = false;
  return {
    async show() {
      active = true;
      const root = await api.call('DescribeAddresses');
      if (!active) return;
      fillTable('#addresses', items(root, 'addressesSet').map((address) => [text(address, 'publicIp'),
        text(address, 'allocationId'), text(address, 'instanceId'), text(address, 'privateIpAddress')]));
    },
    hide() { active = false; },
  };
}

export function keyPairsPage(api) {
  let downloadUrl = null;
  let active = false;

  async function list() {
    const root = await api.call('DescribeKeyPairs');
    if (!active) return;
    fillTable('#keypairs', items(root, 'keySet').map((key) => [text(key, 'keyName'), text(key, 'keyType'),
      text(key, 'keyFingerprint')]));
  }

  // The private key exists only in this reply: offer it once, as a file, then forget it.
  function offerDownload(name, material) {
    const link = $('#key-download');
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(new Blob([material], { type: 'application/x-pem-file' }));
    link.href = downloadUrl;
    link.download = `${name}.pem`;
    link.hidden = false;
    link.addEventListener('click', () => setTimeout(forgetDownload, 0), { once: true });
  }

  function forgetDownload() {
    const link = $('#key-download');
    link.hidden = true;
    link.removeAttribute('href');
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = null;
  }

  async function create(event) {
    event.preventDefault();
    const form = event.target;
    try {
      const root = await api.call('CreateKeyPair', { KeyName: form.name.value, KeyType: form.type.value });
      offerDownload(text(root, 'keyName'), text(root, 'keyMaterial'));
      status(`Created key pair ${text(root, 'keyName')}: download its private key now, it is not kept.`);
      form.name.value = '';
      await list();
    } catch (error) {
      status(error.message, true);
    }
  }

  async function importKey(event) {
    event.preventDefault();
    const form = event.target;
    try {
      await api.call('ImportKeyPair', { KeyName: form.name.value, PublicKeyMaterial: btoa(form.material.value) });
      status(`Imported key pair ${form.name.value}`);
      form.reset();
      await list();
    } catch (error) {
      status(error.message, true);
    }
  }

  return {
    async show() {
      active = true;
      $('#create-key').addEventListener('submit', create);
      $('#import-key').addEventListener('submit', importKey);
      await list();
    },
    hide() {
      active = false;
      $('#create-key').removeEventListener('submit', create);
      $('#import-key').removeEventListener('submit', importKey);
      forgetDownload();
    },
  };
}
