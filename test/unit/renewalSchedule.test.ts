import { describe, expect, it } from 'vitest';
import { DEFAULT_RENEWAL_SCHEDULE, renewalDueAt } from '../../src/cluster/slaveRenewal.js';
import { caExpiryWarning, DEFAULT_CA_EXPIRY_SETTINGS } from '../../src/pki/index.js';

const DAY = 24 * 60 * 60 * 1000;
const ISSUED = '2026-06-01T00:00:00.000Z';
const EXPIRES = '2026-07-01T00:00:00.000Z';
const creds = { issued_at: ISSUED, expires_at: EXPIRES };

describe('renewalDueAt (when the slave renews)', () => {
  it.each([
    { random: 0, fraction: 0.6 },
    { random: 0.5, fraction: 0.6 + (2 / 3 - 0.6) / 2 },
    { random: 1, fraction: 2 / 3 },
  ])('random $random: at $fraction of the lifetime', ({ random, fraction }) => {
    const due = renewalDueAt(creds, DEFAULT_RENEWAL_SCHEDULE, () => random);
    expect(due.getTime()).toBeCloseTo(Date.parse(ISSUED) + 30 * DAY * fraction, -1);
  });

  it('never later than two thirds, so a slave back after two thirds is already due', () => {
    for (let i = 0; i < 100; i++) {
      const due = renewalDueAt(creds, DEFAULT_RENEWAL_SCHEDULE);
      expect(due.getTime()).toBeLessThanOrEqual(Date.parse(ISSUED) + (30 * DAY * 2) / 3);
      expect(due.getTime()).toBeGreaterThanOrEqual(Date.parse(ISSUED) + 30 * DAY * 0.6);
    }
  });

  it('a certificate whose dates are reversed is due at once (at its issue time)', () => {
    const due = renewalDueAt({ issued_at: EXPIRES, expires_at: ISSUED }, DEFAULT_RENEWAL_SCHEDULE, () => 0.5);
    expect(due.toISOString()).toBe(EXPIRES);
  });
});

describe('caExpiryWarning', () => {
  const notAfter = new Date('2036-06-01T00:00:00.000Z');
  const window = DEFAULT_CA_EXPIRY_SETTINGS;

  it('defaults to a one-year window', () => {
    expect(window.warningWindowMs).toBe(365 * DAY);
  });

  it.each([
    { name: 'a day more than the window away', left: 366 * DAY, warns: undefined },
    { name: 'one millisecond more than the window away', left: 365 * DAY + 1, warns: undefined },
    {
      name: 'exactly the window away',
      left: 365 * DAY,
      warns: /expires at 2036-06-01T00:00:00.000Z \(in 365 days\)/,
    },
    {
      name: 'one day and a bit away',
      left: DAY + 1000,
      warns: /\(in 1 day\); after that no slave can connect/,
    },
    { name: 'an hour away', left: 3_600_000, warns: /\(in 0 days\)/ },
    {
      name: 'at its end',
      left: 0,
      warns: /^the slave CA expired at 2036-06-01T00:00:00.000Z: no slave can connect/,
    },
    { name: 'past its end', left: -DAY, warns: /expired at/ },
  ])('$name', ({ left, warns }) => {
    const warning = caExpiryWarning(notAfter, new Date(notAfter.getTime() - left), window);
    if (warns === undefined) expect(warning).toBeUndefined();
    else expect(warning).toMatch(warns);
  });
});
