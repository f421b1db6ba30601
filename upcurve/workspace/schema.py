"""The workspace's schema, version by version: each release that changes it adds a migration, and opening an
older workspace applies the missing ones in order (each in one transaction).

Every statement runs as written on DuckDB and on PostgreSQL: use types both accept (VARCHAR or TEXT, DATE,
TIMESTAMP, BOOLEAN, INTEGER, BIGINT, DOUBLE PRECISION, NUMERIC(p,s)), not DuckDB's own (DOUBLE, HUGEINT, LIST).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "RESULT_TABLES", "SCHEMA_VERSION"]

#: The result tables a run stores, each with a leading ``run_id`` column. A column a later release adds to one of
#: them is added to the stored table when a run first writes it (earlier runs have it empty).
RESULT_TABLES = ("mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth",
                 "plan_mrr", "coupon_mrr", "accounts", "worklist", "play_exposures", "funnel", "account_usage",
                 "usage_projection", "usage_weeks", "usage_roles")

#: Statements that bring a workspace from the previous version to each version.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            as_of DATE NOT NULL,
            source VARCHAR,
            fingerprint VARCHAR,
            status VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            upcurve VARCHAR NOT NULL,
            settings VARCHAR,
            notes VARCHAR,
            model_id VARCHAR,
            model_reason VARCHAR,
            row_counts VARCHAR
        )""",
        """CREATE TABLE models (
            model_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            trained_as_of DATE NOT NULL,
            source VARCHAR,
            fingerprint VARCHAR,
            kind VARCHAR NOT NULL,
            active BOOLEAN NOT NULL,
            card VARCHAR NOT NULL,
            files VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL
        )""",
    ),
    # each result table's Arrow schema as the runs wrote it, as JSON ({"fields": [{"name": …, "type": …}]}), so a
    # table reads back with the same Arrow types from any database (PostgreSQL has no decimal128(20, 2) or date32)
    2: (
        """CREATE TABLE table_schemas (
            table_name VARCHAR PRIMARY KEY,
            arrow_schema VARCHAR NOT NULL
        )""",
    ),
    # who may read the workspace over the web (see upcurve.workspace.access): people with a password, their login
    # sessions, and API tokens with scopes. Passwords, session ids and tokens are kept only as salted hashes.
    3: (
        """CREATE TABLE users (
            username VARCHAR PRIMARY KEY,
            password_hash VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            disabled BOOLEAN NOT NULL
        )""",
        """CREATE TABLE sessions (
            session_hash VARCHAR PRIMARY KEY,
            username VARCHAR NOT NULL,
            csrf_token VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE api_tokens (
            token_id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL,
            scopes VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            revoked_at TIMESTAMP
        )""",
        # what the team did with a worklist account (contacted, won, lost, dismissed), by whom, with a note
        """CREATE TABLE worklist_actions (
            action_id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            note VARCHAR,
            actor VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
    ),
    # the plays (see upcurve.plays and upcurve.workspace.actions): owned, dated actions with their full history,
    # and the outbox of messages to deliver, each with an idempotency key so that none is queued or sent twice
    4: (
        """CREATE TABLE actions (
            action_id VARCHAR PRIMARY KEY,
            account_id VARCHAR NOT NULL,
            account_name VARCHAR,
            play VARCHAR NOT NULL,
            trigger_key VARCHAR NOT NULL,
            reason_key VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            lever VARCHAR,
            status VARCHAR NOT NULL,
            owner VARCHAR NOT NULL,
            started_on DATE NOT NULL,
            due_on DATE NOT NULL,
            next_step INTEGER NOT NULL,
            success_source VARCHAR,
            success_window_days INTEGER,
            outcome VARCHAR,
            snoozed_until DATE,
            snooze_reason VARCHAR,
            ended_on DATE,
            held_out BOOLEAN NOT NULL,
            first_run_id VARCHAR NOT NULL,
            last_run_id VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE action_events (
            event_id VARCHAR PRIMARY KEY,
            action_id VARCHAR NOT NULL,
            happened_at TIMESTAMP NOT NULL,
            run_id VARCHAR,
            kind VARCHAR NOT NULL,
            actor VARCHAR NOT NULL,
            detail VARCHAR
        )""",
        """CREATE TABLE outbox (
            message_id VARCHAR PRIMARY KEY,
            idempotency_key VARCHAR NOT NULL UNIQUE,
            action_id VARCHAR,
            channel VARCHAR NOT NULL,
            target VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            body VARCHAR NOT NULL,
            payload VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TIMESTAMP,
            claimed_by VARCHAR,
            claimed_at TIMESTAMP,
            last_error VARCHAR,
            receipt VARCHAR,
            created_at TIMESTAMP NOT NULL,
            sent_at TIMESTAMP
        )""",
        # each `upcurve backtest --workspace`: what it replayed and its tables (as JSON), for the model page
        """CREATE TABLE backtests (
            backtest_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            as_of DATE NOT NULL,
            source VARCHAR,
            cutoffs VARCHAR NOT NULL,
            notes VARCHAR NOT NULL,
            metrics VARCHAR NOT NULL,
            calibration VARCHAR NOT NULL
        )""",
    ),
}

SCHEMA_VERSION = max(MIGRATIONS)
