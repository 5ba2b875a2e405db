/**
 * Numbered, append-only migrations for the SQLite adapter. Never edit an applied one; add the next.
 * PostgreSQL's list mirrors this one (same versions and names) except the `sqliteOnly` entries,
 * which change how SQLite stores something the PostgreSQL adapter does differently.
 */
export const migrations: { version: number; name: string; sql: string; sqliteOnly?: true }[] = [
  {
    version: 1,
    name: 'relays, activities, tokens, cursors',
    sql: `
      CREATE TABLE relays (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        fleet TEXT NOT NULL,
        host TEXT NOT NULL,
        schema TEXT NOT NULL,
        version INTEGER NOT NULL,
        rev INTEGER NOT NULL,
        config TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER,
        sync_status TEXT NOT NULL,
        sync_error TEXT NOT NULL DEFAULT '',
        sync_attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        synced_version INTEGER NOT NULL DEFAULT 0,
        last_synced_at INTEGER,
        acked_config TEXT,
        acked_deleted INTEGER NOT NULL DEFAULT 1
      ) STRICT;
      -- A live relay's host is unique. A schema stays reserved by its id even after delete,
      -- because zooid keeps the deleted relay's tables and media under that schema.
      CREATE UNIQUE INDEX relays_host ON relays(host) WHERE deleted_at IS NULL;
      CREATE UNIQUE INDEX relays_schema ON relays(schema);
      CREATE INDEX relays_owner ON relays(owner, id);
      CREATE INDEX relays_fleet ON relays(fleet, id);
      CREATE INDEX relays_status ON relays(sync_status, id);

      -- Ids are rowids: SQLite assigns max(id)+1, so they increase without gaps as long as the
      -- newest activity is never deleted (retention keeps it). AUTOINCREMENT would cost a
      -- sqlite_sequence write per activity for a guarantee we get anyway.
      CREATE TABLE activities (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        relay_id TEXT NOT NULL,
        actor TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX activities_relay ON activities(relay_id, id);

      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        owner TEXT,
        fleet TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
      ) STRICT;
      CREATE INDEX tokens_owner ON tokens(owner) WHERE role = 'tenant';

      CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: 'fleet config versions (declarative fleet sync)',
    sql: `
      -- One row per applied fleet config version, written in the same transaction as the relay
      -- writes of its apply. (fleet, version) is the key: two concurrent applies of one fleet
      -- cannot both record the next version.
      CREATE TABLE fleet_states (
        fleet TEXT NOT NULL,
        version INTEGER NOT NULL,
        config_id TEXT NOT NULL UNIQUE,
        owner TEXT,
        actor TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (fleet, version)
      ) STRICT;
    `,
  },
  {
    version: 3,
    name: 'rotated credentials, acked secret, stream epoch',
    sql: `
      -- Rotated credentials in their grace period (JSON [{name, value, expiresAt}]) and the
      -- earliest expiry among them, indexed for the expiry chore.
      ALTER TABLE relays ADD COLUMN expiring TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE relays ADD COLUMN expiring_next_at INTEGER;
      CREATE INDEX relays_expiring ON relays(expiring_next_at) WHERE expiring_next_at IS NOT NULL;
      -- SHA-256 of the secret zooid last acknowledged (NULL: not recorded, i.e. the current one).
      ALTER TABLE relays ADD COLUMN acked_secret TEXT;
      -- The autoconfig stream's epoch: a random id made once per database (the data lineage).
      INSERT INTO cursors (name, position)
        VALUES ('autoconfig:epoch', (random() & 9007199254740990) + 1)
        ON CONFLICT(name) DO NOTHING;
    `,
  },
  {
    version: 4,
    name: 'per-relay activity chain instead of an index',
    // PostgreSQL keeps its activities(relay_id, id) index: the extra page is not its bottleneck.
    sqliteOnly: true,
    sql: `
      -- Each activity points to the relay's previous one, and the relay row to its newest. A write
      -- already rewrites the relay row, so keeping the chain costs nothing, while the index it
      -- replaces cost every write one more page in the WAL (a third of the transaction). Reading
      -- one relay's history walks the chain back from the newest: cheap for recent history (the
      -- dashboard, a tail), linear in the relay's retained history for a read from the start.
      ALTER TABLE activities ADD COLUMN prev_id INTEGER;
      ALTER TABLE relays ADD COLUMN last_activity_id INTEGER;
      UPDATE activities SET prev_id = (
        SELECT MAX(b.id) FROM activities b WHERE b.relay_id = activities.relay_id AND b.id < activities.id);
      UPDATE relays SET last_activity_id = (SELECT MAX(a.id) FROM activities a WHERE a.relay_id = relays.id);
      DROP INDEX activities_relay;
    `,
  },
  {
    version: 5,
    name: 'shared secrets, spent nonces',
    sql: `
      -- Random secrets every process on this database shares (e.g. the key that signs dashboard
      -- stream tickets, so a ticket one replica issued opens a stream on another), made on first use.
      CREATE TABLE shared_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      -- Single-use values already spent (stream ticket nonces), kept until they would expire anyway.
      CREATE TABLE spent_nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
      CREATE INDEX spent_nonces_expiry ON spent_nonces(expires_at);
    `,
  },
  {
    version: 6,
    name: 'activity owners, relay incarnations',
    sql: `
      -- The relay's owner when each activity was recorded: tenants read the log by it, so an id
      -- given to another owner after its delete never shows its past to the new owner. Rows from
      -- before are taken to belong to the relay's owner now (the best that is known).
      ALTER TABLE activities ADD COLUMN owner TEXT NOT NULL DEFAULT '';
      UPDATE activities SET owner = COALESCE((SELECT r.owner FROM relays r WHERE r.id = activities.relay_id), '');
      -- The version a relay started at (a deleted id created again starts above its tombstone):
      -- the newest create_relay activity still kept says it, else 1.
      ALTER TABLE relays ADD COLUMN created_version INTEGER NOT NULL DEFAULT 1;
      UPDATE relays SET created_version = c.version
        FROM (SELECT relay_id, MAX(json_extract(payload, '$.version')) AS version FROM activities
              WHERE type = 'create_relay' AND json_type(payload, '$.version') = 'integer'
              GROUP BY relay_id) AS c
        WHERE c.relay_id = relays.id;
    `,
  },
  {
    version: 7,
    name: 'targets, fleets pinned to them',
    sql: `
      -- zooid management APIs bosun pushes to, besides "default" (ZOOID_API_URL and
      -- BOSUN_SECRET_KEY, never stored). secret_key signs the target's requests, kept like relay
      -- secrets (never returned, never logged); NULL: BOSUN_SECRET_KEY's. rev guards updates.
      CREATE TABLE targets (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret_key TEXT,
        verify_url TEXT,
        rev INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
      -- Each fleet's push destination. A fleet without a row (every fleet of a database from before)
      -- uses "default", as does a row with target NULL; pull_only: bosun pushes nothing for it.
      -- The foreign key refuses a pin to an unknown target and the delete of a target in use.
      CREATE TABLE fleets (
        name TEXT PRIMARY KEY,
        target TEXT REFERENCES targets(name),
        pull_only INTEGER NOT NULL DEFAULT 0 CHECK (pull_only IN (0, 1)),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        CHECK (pull_only = 0 OR target IS NULL)
      ) STRICT;
      CREATE INDEX fleets_target ON fleets(target) WHERE target IS NOT NULL;
    `,
  },
  {
    version: 8,
    name: 'live verification state',
    sql: `
      -- What zooid was last seen serving for each relay, read back over NIP-11 (live
      -- verification): the status, when it was checked and since when the status holds, why it
      -- is not live, the differing fields (JSON, only when stale), and the repair backoff.
      ALTER TABLE relays ADD COLUMN live_status TEXT NOT NULL DEFAULT 'unknown';
      ALTER TABLE relays ADD COLUMN live_checked_at INTEGER;
      ALTER TABLE relays ADD COLUMN live_since INTEGER;
      ALTER TABLE relays ADD COLUMN live_error TEXT NOT NULL DEFAULT '';
      ALTER TABLE relays ADD COLUMN live_diff TEXT;
      ALTER TABLE relays ADD COLUMN live_repairs INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE relays ADD COLUMN live_next_repair_at INTEGER;
      -- The dashboard and the metrics look relays up by status; it changes rarely (not per check).
      CREATE INDEX relays_live ON relays(live_status, id);
    `,
  },
  {
    version: 9,
    name: 'where each relay lives',
    sql: `
      -- The target on which zooid last acknowledged each relay (where it lives); NULL: on none.
      -- Push sync moves a relay whose fleet now pushes elsewhere (create there, delete here) and
      -- only then writes the new target. Rows zooid holds are taken to live on their fleet's
      -- target as it is now, or default (the best that is known: before this column, a fleet that
      -- changed target left its relays' old copies where they were, unrecorded).
      ALTER TABLE relays ADD COLUMN pushed_target TEXT;
      UPDATE relays SET pushed_target = COALESCE(
          (SELECT f.target FROM fleets f WHERE f.name = relays.fleet), 'default')
        WHERE acked_deleted = 0;
    `,
  },
  // 10 is PostgreSQL's lease_keys (postgresOnly: per-target push leases).
  {
    version: 11,
    name: 'relays by the target they live on',
    sql: `
      -- DELETE /v1/targets/:name refuses while relays still live on the target: counted here,
      -- not by a scan of every relay.
      CREATE INDEX relays_pushed_target ON relays(pushed_target);
    `,
  },
];
