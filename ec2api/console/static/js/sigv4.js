// AWS Signature Version 4 with Web Crypto: POST form requests to the EC2 Query API, and any other
// request (the uploads' PUT, HEAD and DELETE).
const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function sha256Hex(text) {
  return hex(await crypto.subtle.digest('SHA-256', encoder.encode(text)));
}

async function hmac(key, text) {
  const raw = typeof key === 'string' ? encoder.encode(key) : key;
  const imported = await crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', imported, encoder.encode(text)));
}

// encodeURIComponent leaves !'()* alone; SigV4 and the form body want RFC 3986.
export function rfc3986(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

// The path as sent, each segment encoded once more, as the AWS SDKs sign it.
function canonicalPath(pathname) {
  return pathname.split('/').map(rfc3986).join('/') || '/';
}

export function amzDate(now) {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
}

// The headers to send with `body` to `url`: Content-Type, X-Amz-Date and Authorization.
export async function signedHeaders({ url, body, region, service, accessKeyId, secret, now = new Date() }) {
  const signed = await signRequest({
    method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    payloadHash: await sha256Hex(body), region, service, accessKeyId, secret, now,
  });
  return { 'Content-Type': signed['content-type'], 'X-Amz-Date': signed['x-amz-date'], Authorization: signed.authorization };
}

// Any request: `headers` (lowercase names) are all signed, with Host and X-Amz-Date added;
// `payloadHash` is the body's hex SHA-256, or UNSIGNED-PAYLOAD for a body streamed unsigned.
// Returns the headers to send, lowercase, Host left out (the browser sets it).
export async function signRequest({ method, url, headers = {}, payloadHash, region, service, accessKeyId, secret,
  now = new Date() }) {
  const target = new URL(url);
  const timestamp = amzDate(now);
  const date = timestamp.slice(0, 8);
  const all = { ...headers, host: target.host, 'x-amz-date': timestamp };
  const names = Object.keys(all).sort();
  const query = Array.from(target.searchParams, ([k, v]) => [rfc3986(k), rfc3986(v)])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const canonicalRequest = [
    method,
    canonicalPath(target.pathname),
    query,
    names.map((name) => `${name}:${String(all[name]).trim()}\n`).join(''),
    names.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', timestamp, scope, await sha256Hex(canonicalRequest)].join('\n');
  let key = await hmac('AWS4' + secret, date);
  for (const part of [region, service, 'aws4_request']) key = await hmac(key, part);
  const signature = hex(await hmac(key, stringToSign));
  delete all.host;
  all.authorization = `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return all;
}
