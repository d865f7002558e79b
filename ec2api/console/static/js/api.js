// The EC2 Query API, signed in the page. The secret lives only in this object's closure.
import { rfc3986, signedHeaders, signRequest } from './sigv4.js';

const VERSION = '2016-11-15';

export class ApiError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

export async function loadConfig() {
  const response = await fetch('config.json', { cache: 'no-store' });
  return response.json();
}

export function client(config, accessKeyId, secret) {
  const url = new URL(config.api, document.baseURI).href;
  async function call(action, params = {}) {
    const pairs = Object.entries({ Action: action, Version: VERSION, ...params })
      .filter(([, value]) => value !== undefined && value !== '');
    const body = pairs.map(([k, v]) => `${rfc3986(k)}=${rfc3986(String(v))}`).join('&');
    const headers = await signedHeaders({ url, body, region: config.region, service: 'ec2', accessKeyId, secret });
    const response = await fetch(url, { method: 'POST', headers, body, credentials: 'omit' });
    const doc = new DOMParser().parseFromString(await response.text(), 'application/xml');
    if (!response.ok) {
      throw new ApiError(text(doc.documentElement, 'Errors/Error/Code') || String(response.status),
        text(doc.documentElement, 'Errors/Error/Message'));
    }
    return doc.documentElement;
  }
  // Any other request to the API's server (`relative` to the API's URL, such as upload/NAME), with
  // its body streamed unsigned: every header in `headers` (lowercase names) is signed. The response
  // is returned as it is, whatever its status.
  async function send(method, relative, { headers = {}, body, signal } = {}) {
    const target = new URL(relative, url).href;
    const signed = await signRequest({
      method, url: target, headers: { 'x-amz-content-sha256': UNSIGNED_PAYLOAD, ...headers },
      payloadHash: UNSIGNED_PAYLOAD, region: config.region, service: 'ec2', accessKeyId, secret,
    });
    return fetch(target, { method, headers: signed, body, signal, credentials: 'omit', cache: 'no-store' });
  }
  return { call, send, accessKeyId };
}

const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

// The error of a failed response that carries an EC2 error document (none for HEAD).
export async function responseError(response) {
  const doc = new DOMParser().parseFromString(await response.text(), 'application/xml');
  return new ApiError(text(doc.documentElement, 'Errors/Error/Code') || `HTTP ${response.status}`,
    text(doc.documentElement, 'Errors/Error/Message') || response.statusText);
}

// Every page of a paged Describe call, following NextToken.
export async function allPages(api, action, params, collect) {
  let token;
  do {
    const root = await api.call(action, { ...params, NextToken: token });
    collect(root);
    token = text(root, 'nextToken');
  } while (token);
}

// XML helpers that ignore namespaces: EC2 documents carry one, error documents none.
export function child(element, name) {
  if (!element) return null;
  for (const node of element.children) if (node.localName === name) return node;
  return null;
}

export function path(element, slashed) {
  return slashed.split('/').reduce((node, name) => child(node, name), element);
}

export function text(element, slashed) {
  const node = path(element, slashed);
  return node ? node.textContent : '';
}

// The <item>s of a set such as reservationSet.
export function items(element, slashed) {
  const set = path(element, slashed);
  return set ? Array.from(set.children).filter((node) => node.localName === 'item') : [];
}
