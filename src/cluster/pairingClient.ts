import { DianeError, ExitCode } from '../errors.js';
import { makeCsr } from '../pki/index.js';
import { pinnedJsonRequest } from './httpsJson.js';
import { fetchMasterCa, parseMasterUrl, rolloverPinBundle } from './masterCa.js';
import { PAIR_PATH, PAIR_TRUST_PATH, type PairBody, PairTrustReply } from './pairingWire.js';
import type { SlaveCredentials } from './slaveCredentials.js';

export interface PairingProgress {
  pairingCode: string;
  keyFingerprint: string;
  expiresAt: Date;
}

export interface PairOptions {
  masterUrl: string;
  hostId: string;
  /** The CA fingerprint the admin read from `diane info`; without it, `confirmCa` decides. */
  caFingerprint?: string;
  /** The master's join token, from the pair command `diane info` prints there. */
  joinToken?: string;
  confirmCa: (fingerprint: string) => Promise<boolean>;
  onPending: (progress: PairingProgress) => void;
  onWaiting?: (remainingMs: number) => void;
  pollIntervalMs?: number;
  now?: () => number;
}

/**
 * The slave side of enrollment: pin the master's CA, make a key and CSR locally (the private
 * key never leaves this machine), submit, and poll with the request id until the admin
 * decides. Resolves with the credentials to save; denial and expiry are errors with their own
 * exit codes.
 */
export async function pairWithMaster(opts: PairOptions): Promise<SlaveCredentials> {
  const master = parseMasterUrl(opts.masterUrl);
  const presented = await fetchMasterCa(master.endpoint);
  const { fingerprint } = presented;
  let caPem = presented.caPem;
  if (opts.caFingerprint !== undefined) {
    const pin = opts.caFingerprint.toLowerCase();
    if (pin !== fingerprint) {
      const bundle = await rolloverBundle(master, presented.caPem, pin);
      if (!bundle) {
        throw new DianeError(
          `the master's CA fingerprint is ${fingerprint}, not ${opts.caFingerprint}: refusing to pair (nothing was sent)`,
          ExitCode.pki,
        );
      }
      caPem = bundle;
    }
  } else if (!(await opts.confirmCa(fingerprint))) {
    throw new DianeError('the master CA was not confirmed; nothing was sent', ExitCode.failure);
  }

  const { csrPem, keyPem } = await makeCsr(opts.hostId);
  const body: PairBody = { host_id: opts.hostId, csr: csrPem };
  if (opts.joinToken !== undefined) body.join_token = opts.joinToken;
  const submitted = await pinnedJsonRequest({ url: new URL(PAIR_PATH, master), method: 'POST', body, caPem });
  if (submitted.status !== 201) {
    throw new DianeError(
      `the master refused the pairing request: ${String(submitted.body.error ?? submitted.status)}`,
    );
  }
  const requestId = String(submitted.body.request_id);
  const expiresAt = new Date(String(submitted.body.expires_at));
  opts.onPending({
    pairingCode: String(submitted.body.pairing_code),
    keyFingerprint: String(submitted.body.key_fingerprint),
    expiresAt,
  });

  const now = opts.now ?? Date.now;
  const statusUrl = new URL(`${PAIR_PATH}/${requestId}`, master);
  for (;;) {
    await sleep(opts.pollIntervalMs ?? 1000);
    opts.onWaiting?.(Math.max(0, expiresAt.getTime() - now()));
    let reply: Awaited<ReturnType<typeof pinnedJsonRequest>>;
    try {
      reply = await pinnedJsonRequest({ url: statusUrl, method: 'GET', caPem });
    } catch {
      // A master restart or a network blip: the request survives on the master; keep polling.
      if (now() > expiresAt.getTime() + 60_000)
        throw new DianeError('Pairing request expired', ExitCode.pairingExpired);
      continue;
    }
    const status = reply.body.status;
    if (reply.status === 200 && status === 'pending') continue;
    if (status === 'approved') {
      return {
        host_id: opts.hostId,
        master_url: master.origin,
        ws_url: String(reply.body.ws_url),
        // More masters are named at start (`diane slave start --master`); pairing talks to one.
        masters: [master.origin],
        client_cert: String(reply.body.client_cert),
        client_key: keyPem,
        ca_cert: caPem,
        issued_at: new Date().toISOString(),
        expires_at: String(reply.body.expires_at),
      };
    }
    if (status === 'denied')
      throw new DianeError('The master denied this pairing request', ExitCode.pairingDenied);
    if (status === 'expired') throw new DianeError('Pairing request expired', ExitCode.pairingExpired);
    throw new DianeError(`unexpected pairing status from the master: ${String(reply.body.error ?? status)}`);
  }
}

/** The presented CA plus the pinned next CA, when the master is in a rollover to the pinned one. */
async function rolloverBundle(master: URL, presentedPem: string, pin: string): Promise<string | undefined> {
  let reply: Awaited<ReturnType<typeof pinnedJsonRequest>>;
  try {
    reply = await pinnedJsonRequest({
      url: new URL(PAIR_TRUST_PATH, master),
      method: 'GET',
      caPem: presentedPem,
    });
  } catch {
    return undefined;
  }
  const parsed = PairTrustReply.safeParse(reply.body);
  if (reply.status !== 200 || !parsed.success) return undefined;
  return rolloverPinBundle(presentedPem, pin, parsed.data);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
