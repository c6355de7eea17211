export interface PairingSettings {
  /** How long a request waits for the admin; finished requests stay one more TTL (at least
   * ten minutes) for pickup and for the admin to be told how they ended. */
  ttlMs: number;
  /**
   * Validity of an issued slave certificate, by pairing or by renewal. Short, because slaves
   * renew over the link at about two thirds of it: a stolen key is worth at most one lifetime.
   */
  certValidityMs: number;
  /**
   * Pending requests for one host id from one source prefix (see `sourcePrefix`). A further
   * one displaces the oldest of them: a slave that runs `pair` again replaces its own earlier
   * attempt, and other networks can never fill a host id's places.
   */
  maxPendingPerHostFromPrefix: number;
  /** Pending requests from one source prefix: one network cannot fill the admin's list. */
  maxPendingPerPrefix: number;
  /**
   * Pending requests in all. At the cap a new request displaces the oldest request of the
   * busiest prefix, so that a flood from a few networks cannot lock out everyone else.
   */
  maxPendingTotal: number;
  /** Only slaves presenting the master's join token may submit requests at all. */
  requireJoinToken: boolean;
}

const MINUTE_MS = 60 * 1000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export const DEFAULT_PAIRING_SETTINGS: PairingSettings = Object.freeze({
  ttlMs: 10 * MINUTE_MS,
  certValidityMs: 30 * DAY_MS,
  maxPendingPerHostFromPrefix: 3,
  maxPendingPerPrefix: 10,
  maxPendingTotal: 100,
  requireJoinToken: false,
});
