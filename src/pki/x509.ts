// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata
// polyfill loaded before the library itself; keeping both here makes every pki file that goes
// through this module safe, whichever file of the module is imported first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto is backed by OpenSSL, so keys and signatures made here are the same ones the
// `tls` module checks.
x509.cryptoProvider.set(webcrypto);

export { x509 };
export const subtle = webcrypto.subtle;

// The project compiles without the DOM lib, so the WebCrypto types come from Node's typings.
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
