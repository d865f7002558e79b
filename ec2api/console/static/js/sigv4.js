// AWS Signature Version 4 with Web Crypto, for POST form requests to the EC2 Query API.
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
  const target = new URL(url);
  const timestamp = amzDate(now);
  const date = timestamp.slice(0, 8);
  const headers = {
    'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
    host: target.host,
    'x-amz-date': timestamp,
  };
  const names = Object.keys(headers).sort();
  const canonicalRequest = [
    'POST',
    canonicalPath(target.pathname),
    '',
    names.map((name) => `${name}:${headers[name]}\n`).join(''),
    names.join(';'),
    await sha256Hex(body),
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', timestamp, scope, await sha256Hex(canonicalRequest)].join('\n');
  let key = await hmac('AWS4' + secret, date);
  for (const part of [region, service, 'aws4_request']) key = await hmac(key, part);
  const signature = hex(await hmac(key, stringToSign));
  return {
    'Content-Type': headers['content-type'],
    'X-Amz-Date': timestamp,
    Authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}
