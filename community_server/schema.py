"""The database schema as numbered migrations; a database records which it has applied.

Timestamps are integer milliseconds since the epoch (UTC), so they sort and compare
as numbers. Everything a household owns cascades from `households`, so removing a
household removes all its data.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE communities (
            community_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE transformers (
            transformer_id TEXT PRIMARY KEY,
            community_id TEXT NOT NULL REFERENCES communities ON DELETE CASCADE,
            name TEXT NOT NULL,
            capacity_w REAL
        );
        CREATE TABLE households (
            household_id TEXT PRIMARY KEY,
            community_id TEXT NOT NULL REFERENCES communities ON DELETE CASCADE,
            transformer_id TEXT REFERENCES transformers ON DELETE SET NULL,
            joined_at INTEGER NOT NULL,
            capabilities TEXT,
            capabilities_sent_at INTEGER,
            online INTEGER NOT NULL DEFAULT 0,
            last_seen_at INTEGER
        );
        CREATE TABLE credentials (
            household_id TEXT PRIMARY KEY REFERENCES households ON DELETE CASCADE,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE join_codes (
            code_hash TEXT PRIMARY KEY,
            community_id TEXT NOT NULL REFERENCES communities ON DELETE CASCADE,
            transformer_id TEXT REFERENCES transformers ON DELETE SET NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at INTEGER,
            revoked_at INTEGER,
            household_id TEXT REFERENCES households ON DELETE SET NULL
        );
        CREATE TABLE telemetry (
            household_id TEXT NOT NULL REFERENCES households ON DELETE CASCADE,
            message_id TEXT NOT NULL,
            measured_at INTEGER NOT NULL,
            interval_s INTEGER NOT NULL,
            power_l1_w REAL NOT NULL,
            power_l2_w REAL,
            power_l3_w REAL,
            participating INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (household_id, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX telemetry_by_time ON telemetry (measured_at);
        CREATE TABLE baselines (
            household_id TEXT NOT NULL REFERENCES households ON DELETE CASCADE,
            message_id TEXT NOT NULL,
            start_at INTEGER NOT NULL,
            power_w TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (household_id, message_id)
        );
        CREATE INDEX baselines_by_time ON baselines (start_at);
        CREATE TABLE sent (
            message_id TEXT PRIMARY KEY,
            household_id TEXT NOT NULL REFERENCES households ON DELETE CASCADE,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            expires_at INTEGER,
            sent_at INTEGER NOT NULL
        );
        CREATE INDEX sent_by_household ON sent (household_id, kind, sent_at);
        CREATE TABLE acks (
            household_id TEXT NOT NULL REFERENCES households ON DELETE CASCADE,
            message_id TEXT NOT NULL,
            ref_id TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (household_id, message_id)
        );
        CREATE INDEX acks_by_ref ON acks (ref_id);
        """,
    ),
    (
        2,
        # One row: the server's identity, made by the store from `secrets` on opening.
        """
        CREATE TABLE server_identity (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            server_id TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        """,
    ),
    (
        3,
        # Accounts. `credentials.password_hash` stays mosquitto's `$7$` (the broker's password
        # file is made from it); HTTP Basic checks `http_password_hash` (argon2id), filled at a
        # household's first successful HTTP login. Operators log in to the dashboard; their
        # sessions are kept by the SHA-256 of the cookie's token, never the token itself.
        """
        ALTER TABLE credentials ADD COLUMN http_password_hash TEXT;
        CREATE TABLE operators (
            username TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            password_changed_at INTEGER NOT NULL
        );
        CREATE TABLE operator_sessions (
            token_sha256 TEXT PRIMARY KEY,
            username TEXT NOT NULL REFERENCES operators ON DELETE CASCADE,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX operator_sessions_by_expiry ON operator_sessions (expires_at);
        """,
    ),
    (
        4,
        # Heat pumps (protocol v1's optional telemetry facts): the latest comfort margin
        # and when it was measured, the pause in force (its end) and how many pauses the
        # household has made. The thermal stores stay in `capabilities`.
        """
        ALTER TABLE households ADD COLUMN comfort_margin_min REAL;
        ALTER TABLE households ADD COLUMN comfort_margin_at INTEGER;
        ALTER TABLE households ADD COLUMN paused_until INTEGER;
        ALTER TABLE households ADD COLUMN pauses INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        5,
        # The live allocation's heat-pump fairness (issue 14), kept across restarts: how
        # often a frame took each home's pump, since when it is held (NULL: not held) and
        # when it last got its power back (its minimum run).
        """
        CREATE TABLE heat_pump_curtailments (
            household_id TEXT PRIMARY KEY REFERENCES households ON DELETE CASCADE,
            times_curtailed INTEGER NOT NULL DEFAULT 0,
            curtailed_since INTEGER,
            released_at INTEGER
        );
        """,
    ),
    (
        6,
        # Settlement (docs/settlement.md): quarter-hour figures rolled up at ingest, one row
        # per household, local day and epoch (the closes made when the data arrived), as
        # float32 arrays (a rowid table: 2 kB rows overflow a WITHOUT ROWID page); committed
        # baselines (insert-only); rules versions; closed statements
        # and corrections. No foreign keys to households: these are the cooperative's accounts,
        # kept seven years, past telemetry retention and a household's removal.
        """
        CREATE TABLE settlement_members (
            household_id TEXT PRIMARY KEY,
            community_id TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX settlement_members_by_community ON settlement_members (community_id);
        CREATE TABLE settlement_days (
            household_id TEXT NOT NULL,
            day TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            figures BLOB NOT NULL,
            UNIQUE (household_id, day, epoch)
        );
        CREATE TABLE settlement_baselines (
            household_id TEXT NOT NULL,
            day TEXT NOT NULL,
            committed_at INTEGER NOT NULL,
            power_w TEXT NOT NULL,
            PRIMARY KEY (household_id, day)
        ) WITHOUT ROWID;
        CREATE TABLE settlement_rules (
            community_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            rules TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (community_id, version)
        );
        CREATE TABLE settlement_statements (
            close_number INTEGER NOT NULL,
            community_id TEXT NOT NULL,
            period TEXT NOT NULL,
            for_period TEXT NOT NULL,
            closed_at INTEGER NOT NULL,
            rules TEXT NOT NULL,
            document TEXT NOT NULL,
            PRIMARY KEY (close_number, for_period)
        );
        CREATE INDEX settlement_statements_by_period
            ON settlement_statements (community_id, for_period);
        """,
    ),
    (
        7,
        # Each transformer's members per local day (issue 14): how many reported, their heat
        # pumps, energy and evening peak, and the day's mean outdoor temperature, kept
        # `[forecast] history_days` (three years) apart from telemetry retention, to learn
        # the load's relation to the temperature (community_server/load_history.py).
        """
        CREATE TABLE daily_load (
            transformer_id TEXT NOT NULL REFERENCES transformers ON DELETE CASCADE,
            day TEXT NOT NULL,
            members INTEGER NOT NULL,
            heat_pumps INTEGER NOT NULL,
            energy_kwh REAL NOT NULL,
            evening_peak_w REAL NOT NULL,
            mean_outdoor_c REAL,
            PRIMARY KEY (transformer_id, day)
        ) WITHOUT ROWID;
        """,
    ),
    (
        8,
        # The outdoor temperature a member reports with its telemetry (heat_pump_flexibility),
        # the daily load's temperature where no weather source has one (load_history.py).
        "ALTER TABLE telemetry ADD COLUMN outdoor_c REAL;",
    ),
)
