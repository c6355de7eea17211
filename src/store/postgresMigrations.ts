import type { Migration } from './migrations.js';

/**
 * The master's schema on PostgreSQL: the same versions as SQLite's list (migrations.ts), each
 * entry the PostgreSQL form of the SQLite one with the same number, so "schema v6" means the same
 * tables on both. A schema change is a new entry at the end of both lists.
 *
 * Types are chosen so that the repositories read back exactly what they read from SQLite: times
 * are ISO-8601 UTC text (time.ts; fixed width, so text order is time order), flags are INTEGER
 * 0/1, ids of audit rows are BIGINT identities (never reused, like AUTOINCREMENT). Tables whose
 * listings break ties by SQLite's `rowid` get a `seq` identity instead (SqlDialect.insertionOrder).
 * No column defaults to the current time: the repositories always write their own clock's.
 * Text columns collate as "C" (bytewise), SQLite's BINARY: names and times sort the same on both.
 */
export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'seed schema: slave servers, revoked credentials, pairing requests',
    sql: `
CREATE TABLE slave_servers (
    id TEXT COLLATE "C" PRIMARY KEY,
    host_id TEXT COLLATE "C" UNIQUE NOT NULL,
    cert_serial TEXT COLLATE "C" NOT NULL,
    issued_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    last_seen TEXT COLLATE "C",
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE revoked_slave_credentials (
    id TEXT COLLATE "C" PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    host_id TEXT COLLATE "C" NOT NULL,
    cert_serial TEXT COLLATE "C" NOT NULL,
    revoked_at TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C"
);

CREATE TABLE pairing_requests (
    id TEXT COLLATE "C" PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    host_id TEXT COLLATE "C" NOT NULL,
    pairing_code TEXT COLLATE "C" NOT NULL,
    csr TEXT COLLATE "C" NOT NULL,
    requested_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
);
`,
  },
  {
    version: 2,
    name: 'indexes for revocation checks and pairing lookups',
    sql: `
CREATE UNIQUE INDEX revoked_slave_credentials_cert_serial ON revoked_slave_credentials (cert_serial);
CREATE INDEX pairing_requests_status_expires_at ON pairing_requests (status, expires_at);
CREATE INDEX pairing_requests_host_id_pairing_code ON pairing_requests (host_id, pairing_code);
`,
  },
  {
    version: 3,
    name: 'pairing request ids, sources, key fingerprints and issued certificates',
    sql: `
ALTER TABLE pairing_requests ADD COLUMN request_id_hash TEXT COLLATE "C";
ALTER TABLE pairing_requests ADD COLUMN source_address TEXT COLLATE "C";
ALTER TABLE pairing_requests ADD COLUMN key_fingerprint TEXT COLLATE "C";
ALTER TABLE pairing_requests ADD COLUMN re_pair INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pairing_requests ADD COLUMN client_cert TEXT COLLATE "C";
ALTER TABLE pairing_requests ADD COLUMN cert_serial TEXT COLLATE "C";
ALTER TABLE pairing_requests ADD COLUMN cert_expires_at TEXT COLLATE "C";
ALTER TABLE pairing_requests ADD COLUMN decided_at TEXT COLLATE "C";
CREATE UNIQUE INDEX pairing_requests_request_id_hash ON pairing_requests (request_id_hash);
CREATE INDEX pairing_requests_key_fingerprint ON pairing_requests (key_fingerprint);

ALTER TABLE slave_servers ADD COLUMN key_fingerprint TEXT COLLATE "C";
CREATE UNIQUE INDEX slave_servers_cert_serial ON slave_servers (cert_serial);
CREATE INDEX slave_servers_key_fingerprint ON slave_servers (key_fingerprint);

ALTER TABLE revoked_slave_credentials ADD COLUMN key_fingerprint TEXT COLLATE "C";
CREATE INDEX revoked_slave_credentials_key_fingerprint ON revoked_slave_credentials (key_fingerprint);
CREATE INDEX revoked_slave_credentials_host_id ON revoked_slave_credentials (host_id);
`,
  },
  {
    version: 4,
    name: 'certificate renewal over the link: the pending certificate, last renewal, renewal errors',
    sql: `
ALTER TABLE slave_servers ADD COLUMN pending_cert_serial TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN pending_key_fingerprint TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN pending_issued_at TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN pending_expires_at TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN last_renewed_at TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN renewal_error TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN renewal_error_at TEXT COLLATE "C";
CREATE UNIQUE INDEX slave_servers_pending_cert_serial ON slave_servers (pending_cert_serial);
`,
  },
  {
    version: 5,
    name: 'CA rollover: which CA issued each current and pending certificate',
    sql: `
ALTER TABLE slave_servers ADD COLUMN ca_fingerprint TEXT COLLATE "C";
ALTER TABLE slave_servers ADD COLUMN pending_ca_fingerprint TEXT COLLATE "C";
`,
  },
  {
    version: 6,
    name: 'agents (identities, token hashes, scopes) and the audit trail of their calls',
    // The name CHECK is SQLite's GLOB rule as a regular expression.
    sql: `
CREATE TABLE agents (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" UNIQUE NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    token_hash TEXT COLLATE "C" UNIQUE NOT NULL,
    allow TEXT COLLATE "C" NOT NULL,
    deny TEXT COLLATE "C" NOT NULL,
    mode TEXT COLLATE "C" NOT NULL DEFAULT 'full',
    record_arguments INTEGER NOT NULL DEFAULT 0,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    token_rotated_at TEXT COLLATE "C" NOT NULL,
    last_used_at TEXT COLLATE "C"
);

CREATE TABLE audit_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT COLLATE "C" NOT NULL,
    agent TEXT COLLATE "C",
    kind TEXT COLLATE "C" NOT NULL,
    exposed_name TEXT COLLATE "C",
    host TEXT COLLATE "C",
    server TEXT COLLATE "C",
    original_name TEXT COLLATE "C",
    duration_ms DOUBLE PRECISION,
    outcome TEXT COLLATE "C" NOT NULL,
    error TEXT COLLATE "C",
    bytes_in BIGINT,
    bytes_out BIGINT,
    arguments TEXT COLLATE "C",
    call_id TEXT COLLATE "C"
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_agent ON audit_events (agent);
CREATE INDEX audit_events_host ON audit_events (host);
CREATE INDEX audit_events_outcome ON audit_events (outcome);
`,
  },
];
