import * as zmq from 'zeromq';
import { TransportError } from './TransportError.js';

/** A CURVE key pair, both keys Z85-encoded (40 characters). */
export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

/**
 * CURVE on the binding (server) side: traffic is encrypted and clients must know `publicKey` to connect.
 * Clients are not authenticated individually (that needs a ZAP handler, not provided): any client holding
 * the server's public key may connect.
 */
export interface CurveServerOptions {
  publicKey: string;
  secretKey: string;
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

export function applyCurveServer(socket: zmq.Socket, curve: CurveServerOptions): void {
  socket.curveServer = true;
  socket.curveSecretKey = checkKey(curve.secretKey, 'curve.secretKey');
  socket.curvePublicKey = checkKey(curve.publicKey, 'curve.publicKey');
}

export function applyCurveClient(socket: zmq.Socket, curve: CurveClientOptions): void {
  const own = curve.publicKey && curve.secretKey ? { publicKey: curve.publicKey, secretKey: curve.secretKey } : generateCurveKeyPair();
  socket.curveServerKey = checkKey(curve.serverPublicKey, 'curve.serverPublicKey');
  socket.curvePublicKey = checkKey(own.publicKey, 'curve.publicKey');
  socket.curveSecretKey = checkKey(own.secretKey, 'curve.secretKey');
}
