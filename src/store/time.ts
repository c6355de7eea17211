/**
 * Timestamps are stored as ISO-8601 UTC text (`2025-01-31T12:00:00.000Z`): one fixed-width format
 * compares correctly as text in SQL and maps to TIMESTAMPTZ should PostgreSQL replace SQLite.
 */
export function toStoredTime(at: Date): string {
  return at.toISOString();
}

/**
 * Also accepts SQLite's `CURRENT_TIMESTAMP` form (`2025-01-31 12:00:00`), which the seed schema's
 * column defaults produce and which `new Date()` would otherwise read as local time.
 */
export function fromStoredTime(text: string): Date {
  const iso = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$/.test(text)
    ? `${text.replace(' ', 'T')}Z`
    : text;
  return new Date(iso);
}

export function fromStoredTimeOrNull(text: string | null): Date | null {
  return text === null ? null : fromStoredTime(text);
}
