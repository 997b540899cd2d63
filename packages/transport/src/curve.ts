import * as zmq from 'zeromq';
import { TransportError } from './TransportError.js';

/** A CURVE key pair, both keys Z85-encoded (40 characters). */
export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

/**
 * CURVE on the binding (server) side: traffic is encrypted and clients must know `publicKey` to connect.
 * With `allowedClientKeys`, a ZAP handler (RFC 27, in this process) also authenticates each client by its
 * public key: a client whose key is not listed never completes the handshake, so it receives nothing
 * and can push nothing.
 */
export interface CurveServerOptions {
  publicKey: string;
  secretKey: string;
  /** Z85 public keys of the clients (workers) allowed to connect. Default: any client holding the server key. */
  allowedClientKeys?: string[];
}

/** CURVE on the connecting (client) side. */
export interface CurveClientOptions {
  /** The server's public key; a wrong key means the handshake never completes and nothing is delivered. */
  serverPublicKey: string;
  /** This client's key pair. Default: a fresh pair per socket (clients are not authenticated anyway). */
  publicKey?: string;
  secretKey?: string;
}

/** A new CURVE key pair (libzmq's zmq_curve_keypair). */
export function generateCurveKeyPair(): CurveKeyPair {
  if (!zmq.capability.curve) {
    throw new TransportError('REJECTED', 'this libzmq build has no CURVE support; use the prebuilt zeromq binaries');
  }
  return zmq.curveKeyPair();
}

const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

function checkKey(key: string | undefined, field: string): string {
  if (typeof key !== 'string' || !Z85_KEY.test(key)) {
    throw new TransportError('REJECTED', `${field} must be a 40-character Z85 CURVE key (see generateCurveKeyPair())`);
  }
  return key;
}

const Z85_CHARS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85 encoding (ZeroMQ RFC 32) of a multiple of 4 bytes: how CURVE keys are written. */
export function z85Encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i] << 24) >>> 0) + (bytes[i + 1] << 16) + (bytes[i + 2] << 8) + bytes[i + 3];
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85_CHARS[value % 85]);
      value = Math.floor(value / 85);
    }
    out += chunk.join('');
  }
  return out;
}

/**
 * The process' ZAP handler: one REP socket on inproc://zeromq.zap.01 (libzmq asks it about every CURVE
 * handshake of this context). Each server socket with an allow-list gets its own ZAP domain; handshakes
 * of other domains (servers without an allow-list) are allowed, as before.
 */
class ZapHandler {
  private static instance?: ZapHandler;
  private readonly socket = new zmq.Reply();
  private readonly domains = new Map<string, Set<string>>();
  readonly ready: Promise<void>;
  private serial = 0;
  /** Handshakes refused so far (tests, logs). */
  refused = 0;

  private constructor() {
    this.ready = this.bind();
    void this.ready.then(() => this.loop()).catch(() => undefined);
  }

  /** Binds the ZAP endpoint; a handler closed a moment ago may still hold it (libzmq closes asynchronously). */
  private async bind(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.socket.bind('inproc://zeromq.zap.01');
        return;
      } catch (error) {
        if (attempt >= 40 || !/in use/i.test(error instanceof Error ? error.message : '')) throw error;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  static get(): ZapHandler {
    ZapHandler.instance ??= new ZapHandler();
    return ZapHandler.instance;
  }

  static current(): ZapHandler | undefined {
    return ZapHandler.instance;
  }

  register(keys: string[]): string {
    const domain = `scaleot-${process.pid}-${++this.serial}`;
    this.domains.set(domain, new Set(keys.map((k) => checkKey(k, 'curve.allowedClientKeys[]'))));
    return domain;
  }

  release(domain: string): void {
    this.domains.delete(domain);
    if (this.domains.size === 0 && ZapHandler.instance === this) {
      ZapHandler.instance = undefined;
      this.socket.close();
    }
  }

  private async loop(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        const [version, requestId, domainFrame, , , mechanism, credential] = frames;
        const domain = domainFrame?.toString() ?? '';
        const allowed = this.domains.get(domain);
        const key = mechanism?.toString() === 'CURVE' && credential?.length === 32 ? z85Encode(credential) : '';
        const ok = !allowed || allowed.has(key);
        if (!ok) this.refused++;
        await this.socket.send([version ?? '1.0', requestId ?? '', ok ? '200' : '400', ok ? 'OK' : 'client key not allowed', ok ? key : '', '']);
      }
    } catch {
      // Closed.
    }
  }
}

const zapDomains = new WeakMap<zmq.Socket, string>();

export function applyCurveServer(socket: zmq.Socket, curve: CurveServerOptions): void {
  socket.curveServer = true;
  socket.curveSecretKey = checkKey(curve.secretKey, 'curve.secretKey');
  socket.curvePublicKey = checkKey(curve.publicKey, 'curve.publicKey');
  if (curve.allowedClientKeys) {
    const domain = ZapHandler.get().register(curve.allowedClientKeys);
    socket.zapDomain = domain;
    zapDomains.set(socket, domain);
  }
}

/** Resolves once the ZAP handler (if any) listens: call before binding a server with an allow-list. */
export async function curveServerReady(): Promise<void> {
  await ZapHandler.current()?.ready;
}

/** Handshakes the ZAP handler refused in this process. */
export function refusedCurveHandshakes(): number {
  return ZapHandler.current()?.refused ?? 0;
}

/** Drops a closed server socket's allow-list (the ZAP handler stops with the last one). */
export function releaseCurveServer(socket: zmq.Socket): void {
  const domain = zapDomains.get(socket);
  if (domain) ZapHandler.current()?.release(domain);
  zapDomains.delete(socket);
}

export function applyCurveClient(socket: zmq.Socket, curve: CurveClientOptions): void {
  const own = curve.publicKey && curve.secretKey ? { publicKey: curve.publicKey, secretKey: curve.secretKey } : generateCurveKeyPair();
  socket.curveServerKey = checkKey(curve.serverPublicKey, 'curve.serverPublicKey');
  socket.curvePublicKey = checkKey(own.publicKey, 'curve.publicKey');
  socket.curveSecretKey = checkKey(own.secretKey, 'curve.secretKey');
}
