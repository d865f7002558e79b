// "Remember me": only when asked, the key is kept in this browser's local storage, its secret
// encrypted with AES-GCM under a key derived from a passphrase the user chooses (PBKDF2-SHA-256).
// Nothing stored can be used without the passphrase, which is never stored; the derived key is not
// extractable. The access key id and the origin are bound to the ciphertext as associated data.
const STORAGE_KEY = 'reservoir.console.remembered';
const ITERATIONS = 600000;        // OWASP's 2023 figure for PBKDF2-HMAC-SHA256
export const MIN_PASSPHRASE = 8;

const bytes = (value) => new TextEncoder().encode(value);
const toBase64 = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)));
const fromBase64 = (value) => Uint8Array.from(atob(value), (char) => char.charCodeAt(0));

async function derive(passphrase, salt, iterations) {
  const material = await crypto.subtle.importKey('raw', bytes(passphrase), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, material,
    { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

function associatedData(accessKeyId) {
  return bytes(`${location.origin}\n${accessKeyId}`);
}

// The remembered access key id, or null; the secret stays sealed.
export function remembered() {
  try {
    const record = JSON.parse(localStorage.getItem(STORAGE_KEY));
    return record && typeof record.accessKeyId === 'string' ? record : null;
  } catch {
    return null;
  }
}

export async function remember(accessKeyId, secret, passphrase) {
  if (passphrase.length < MIN_PASSPHRASE) throw new Error(`The passphrase needs at least ${MIN_PASSPHRASE} characters.`);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await derive(passphrase, salt, ITERATIONS);
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: associatedData(accessKeyId) },
    key, bytes(secret));
  localStorage.setItem(STORAGE_KEY, JSON.stringify({
    accessKeyId, iterations: ITERATIONS, salt: toBase64(salt), iv: toBase64(iv), sealed: toBase64(sealed),
  }));
}

// The secret, if the passphrase opens it; a wrong passphrase (or a tampered record) throws.
export async function unlock(passphrase) {
  const record = remembered();
  if (!record) throw new Error('No key is remembered in this browser.');
  const key = await derive(passphrase, fromBase64(record.salt), record.iterations);
  try {
    const secret = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64(record.iv),
      additionalData: associatedData(record.accessKeyId) }, key, fromBase64(record.sealed));
    return { accessKeyId: record.accessKeyId, secret: new TextDecoder().decode(secret) };
  } catch {
    throw new Error('That passphrase does not open the remembered key.');
  }
}

export function forget() {
  localStorage.removeItem(STORAGE_KEY);
}
