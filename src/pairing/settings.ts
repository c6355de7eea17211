export interface PairingSettings {
  /** How long a request waits for the admin; finished requests stay one more TTL for pickup. */
  ttlMs: number;
  /** Validity of an issued slave certificate. */
  certValidityMs: number;
  maxPendingPerHost: number;
  /** Per remote address: one machine cannot fill the admin's list. */
  maxPendingPerSource: number;
  maxPendingTotal: number;
}

const MINUTE_MS = 60 * 1000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export const DEFAULT_PAIRING_SETTINGS: PairingSettings = Object.freeze({
  ttlMs: 10 * MINUTE_MS,
  certValidityMs: 365 * DAY_MS,
  maxPendingPerHost: 3,
  maxPendingPerSource: 10,
  maxPendingTotal: 100,
});
