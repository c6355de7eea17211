/** When the master starts warning that its slave CA is about to end. */
export interface CaExpirySettings {
  warningWindowMs: number;
}

export const DEFAULT_CA_EXPIRY_SETTINGS: CaExpirySettings = Object.freeze({
  warningWindowMs: 365 * 24 * 60 * 60 * 1000,
});

/**
 * The warning to show while the CA is within the window of its notAfter, or undefined. When the
 * CA ends, every slave certificate it signed stops verifying at once, so the admin needs to hear
 * of it long before.
 */
export function caExpiryWarning(notAfter: Date, now: Date, settings: CaExpirySettings): string | undefined {
  const left = notAfter.getTime() - now.getTime();
  if (left > settings.warningWindowMs) return undefined;
  if (left <= 0) {
    return `the slave CA expired at ${notAfter.toISOString()}: no slave can connect; a new CA means pairing every slave again`;
  }
  const days = Math.floor(left / (24 * 60 * 60 * 1000));
  return (
    `the slave CA expires at ${notAfter.toISOString()} (in ${days} day${days === 1 ? '' : 's'}); ` +
    'after that no slave can connect until it pairs with a new CA'
  );
}
