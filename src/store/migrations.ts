/**
 * The schema, as an ordered list. A migration is never edited once released: a change to the
 * schema is a new entry at the end with the next version. Each one runs in its own transaction
 * together with the `PRAGMA user_version` bump (see database.ts).
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'seed schema: slave servers, revoked credentials, pairing requests',
    // Verbatim from the seed design note ("1. Database Schema"), so existing tooling and the
    // note stay in agreement; timestamps are written by the repositories as ISO-8601 UTC.
    sql: `
-- Slave servers for distributed MCP
CREATE TABLE IF NOT EXISTS slave_servers (
    id TEXT PRIMARY KEY,
    host_id TEXT UNIQUE NOT NULL,
    cert_serial TEXT NOT NULL,
    issued_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    last_seen DATETIME,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Revoked slave credentials
CREATE TABLE IF NOT EXISTS revoked_slave_credentials (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    cert_serial TEXT NOT NULL,
    revoked_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    reason TEXT
);

-- Pending pairing requests
CREATE TABLE IF NOT EXISTS pairing_requests (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    pairing_code TEXT NOT NULL,
    csr TEXT NOT NULL,
    requested_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at DATETIME NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
);
`,
  },
  {
    version: 2,
    name: 'indexes for revocation checks and pairing lookups',
    // The unique index makes revoking the same serial twice a no-op (INSERT .. ON CONFLICT) and
    // serves the revocation check on every slave connection.
    sql: `
CREATE UNIQUE INDEX revoked_slave_credentials_cert_serial ON revoked_slave_credentials (cert_serial);
CREATE INDEX pairing_requests_status_expires_at ON pairing_requests (status, expires_at);
CREATE INDEX pairing_requests_host_id_pairing_code ON pairing_requests (host_id, pairing_code);
`,
  },
  {
    version: 3,
    name: 'pairing request ids, sources, key fingerprints and issued certificates',
    // The request id is a bearer handle for status and certificate pickup, so only its hash is
    // kept. Key fingerprints let a key be refused once it was enrolled or revoked, and let the
    // hub check that a presented certificate carries the key it was issued for. Serials are
    // random 128-bit values, so a duplicate can only be a bug: the unique index makes it fail.
    sql: `
ALTER TABLE pairing_requests ADD COLUMN request_id_hash TEXT;
ALTER TABLE pairing_requests ADD COLUMN source_address TEXT;
ALTER TABLE pairing_requests ADD COLUMN key_fingerprint TEXT;
ALTER TABLE pairing_requests ADD COLUMN re_pair INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pairing_requests ADD COLUMN client_cert TEXT;
ALTER TABLE pairing_requests ADD COLUMN cert_serial TEXT;
ALTER TABLE pairing_requests ADD COLUMN cert_expires_at DATETIME;
ALTER TABLE pairing_requests ADD COLUMN decided_at DATETIME;
CREATE UNIQUE INDEX pairing_requests_request_id_hash ON pairing_requests (request_id_hash);
CREATE INDEX pairing_requests_key_fingerprint ON pairing_requests (key_fingerprint);

ALTER TABLE slave_servers ADD COLUMN key_fingerprint TEXT;
CREATE UNIQUE INDEX slave_servers_cert_serial ON slave_servers (cert_serial);
CREATE INDEX slave_servers_key_fingerprint ON slave_servers (key_fingerprint);

ALTER TABLE revoked_slave_credentials ADD COLUMN key_fingerprint TEXT;
CREATE INDEX revoked_slave_credentials_key_fingerprint ON revoked_slave_credentials (key_fingerprint);
CREATE INDEX revoked_slave_credentials_host_id ON revoked_slave_credentials (host_id);
`,
  },
  {
    version: 4,
    name: 'certificate renewal over the link: the pending certificate, last renewal, renewal errors',
    // A renewed certificate is recorded as pending next to the current one and becomes current
    // when the first link opened with it arrives (see cluster/renewal.ts), so the slave always
    // holds a credential the master accepts, whichever side dies mid-renewal. Serials stay unique
    // across both columns' indexes by construction (random 128-bit values).
    sql: `
ALTER TABLE slave_servers ADD COLUMN pending_cert_serial TEXT;
ALTER TABLE slave_servers ADD COLUMN pending_key_fingerprint TEXT;
ALTER TABLE slave_servers ADD COLUMN pending_issued_at DATETIME;
ALTER TABLE slave_servers ADD COLUMN pending_expires_at DATETIME;
ALTER TABLE slave_servers ADD COLUMN last_renewed_at DATETIME;
ALTER TABLE slave_servers ADD COLUMN renewal_error TEXT;
ALTER TABLE slave_servers ADD COLUMN renewal_error_at DATETIME;
CREATE UNIQUE INDEX slave_servers_pending_cert_serial ON slave_servers (pending_cert_serial);
`,
  },
  {
    version: 5,
    name: 'CA rollover: which CA issued each current and pending certificate',
    // `sha256:<hex>` of the issuing CA's key. NULL on rows from before v5: they were issued by the
    // only CA there was, the one current when the first rollover starts.
    sql: `
ALTER TABLE slave_servers ADD COLUMN ca_fingerprint TEXT;
ALTER TABLE slave_servers ADD COLUMN pending_ca_fingerprint TEXT;
`,
  },
  {
    version: 6,
    name: 'agents (identities, token hashes, scopes) and the audit trail of their calls',
    // An agent's bearer token is never stored, only its SHA-256 (config/agentTokens.ts), looked up
    // through the unique index on every request. allow/deny are JSON arrays of name patterns. The
    // name CHECK repeats the repository's rule ([a-z0-9][a-z0-9_-]*, 1-64) so that no other writer
    // can store a name the CLI could not type. Audit rows are append-only and trimmed by age and
    // count; `id` orders them (AUTOINCREMENT: an id is never reused after a trim, so a follower's
    // "after id N" stays meaningful). The indexes on agent, host and outcome also serve
    // "ORDER BY id" because id is the rowid every index entry carries.
    sql: `
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL
        CHECK (length(name) BETWEEN 1 AND 64 AND name GLOB '[a-z0-9]*' AND name NOT GLOB '*[^a-z0-9_-]*'),
    token_hash TEXT UNIQUE NOT NULL,
    allow TEXT NOT NULL,
    deny TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'full',
    record_arguments INTEGER NOT NULL DEFAULT 0,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    token_rotated_at DATETIME NOT NULL,
    last_used_at DATETIME
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at DATETIME NOT NULL,
    agent TEXT,
    kind TEXT NOT NULL,
    exposed_name TEXT,
    host TEXT,
    server TEXT,
    original_name TEXT,
    duration_ms REAL,
    outcome TEXT NOT NULL,
    error TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    arguments TEXT,
    call_id TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_agent ON audit_events (agent);
CREATE INDEX audit_events_host ON audit_events (host);
CREATE INDEX audit_events_outcome ON audit_events (outcome);
`,
  },
];

export const latestSchemaVersion: number = migrations.at(-1)?.version ?? 0;

/**
 * The slave's own audit file (`slave-audit.db`), a separate list with its own versions and its
 * own application id (database.ts). The same shape as the master's `audit_events` but for two
 * columns: no `host` (it is this machine), and `master_agent` instead of `agent`: the name is
 * whatever the master said, which the slave cannot check.
 */
export const slaveAuditMigrations: readonly Migration[] = [
  {
    version: 1,
    name: "the slave's audit trail of what the master asked it to run",
    sql: `
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at DATETIME NOT NULL,
    master_agent TEXT,
    kind TEXT NOT NULL,
    exposed_name TEXT,
    server TEXT,
    original_name TEXT,
    duration_ms REAL,
    outcome TEXT NOT NULL,
    error TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    arguments TEXT,
    call_id TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_master_agent ON audit_events (master_agent);
CREATE INDEX audit_events_outcome ON audit_events (outcome);
`,
  },
];
