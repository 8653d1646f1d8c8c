-- Schema of the price oracle's PostgreSQL database. Idempotent: nodes apply it at start, and it
-- works as a docker-entrypoint init script. Every statement may run again without effect.

-- One row per price id, written exactly once (the primary key makes a second insert a no-op:
-- INSERT ... ON CONFLICT (id) DO NOTHING).
CREATE TABLE IF NOT EXISTS prices (
    -- UUIDv7 layout: unix ms, sequence, the first 62 bits of the origin's address.
    id              uuid        PRIMARY KEY,
    -- Config digest the signatures commit to (32 bytes).
    network_id      bytea       NOT NULL CHECK (octet_length(network_id) = 32),
    feed            text        NOT NULL CHECK (length(feed) BETWEEN 1 AND 16),
    -- The fixed-point value exactly as signed: price = price_units / 10^decimals.
    price_units     numeric(39, 0) NOT NULL CHECK (price_units >= 0),
    decimals        smallint    NOT NULL CHECK (decimals BETWEEN 0 AND 38),
    price           numeric     GENERATED ALWAYS AS (price_units / power(10::numeric, decimals)) STORED,
    -- Observation time exactly as signed (unix ms), and the same as a timestamp for people.
    observed_at_ms  bigint      NOT NULL CHECK (observed_at_ms >= 0),
    observed_at     timestamptz GENERATED ALWAYS AS (to_timestamp(observed_at_ms / 1000.0)) STORED,
    -- 0x-prefixed lowercase addresses.
    origin          text        NOT NULL CHECK (origin ~ '^0x[0-9a-f]{40}$'),
    -- [{"signer": "0x…", "signature": "0x…65 bytes…"}, …], signers distinct, ascending.
    signatures      jsonb       NOT NULL CHECK (jsonb_typeof(signatures) = 'array'),
    signer_count    smallint    NOT NULL,
    -- The quorum the writer enforced; the row carries it so the check below needs no config.
    quorum          smallint    NOT NULL CHECK (quorum >= 1),
    last_signed_at  timestamptz NOT NULL,
    writer          text        NOT NULL CHECK (writer ~ '^0x[0-9a-f]{40}$'),
    inserted_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (signer_count = jsonb_array_length(signatures)),
    CHECK (signer_count >= quorum)
);

CREATE INDEX IF NOT EXISTS prices_feed_observed ON prices (feed, observed_at_ms DESC);
-- For /prices/stream, which reads what was stored since it last looked.
CREATE INDEX IF NOT EXISTS prices_inserted ON prices (inserted_at);

-- Every signature entry well formed: an object with a 0x address and a 65-byte 0x signature. A
-- member holding the database's credentials could otherwise park '[{},{},{}]' under an honest id
-- before its writer. Added apart from the table so that databases made before it get it too (NOT
-- VALID: only new rows are checked; `runtime verify` audits old ones).
DO $$
BEGIN
    ALTER TABLE prices ADD CONSTRAINT prices_signature_entries CHECK (NOT jsonb_path_exists(
        signatures,
        '$[*] ? (!(@.signer.type() == "string" && @.signer like_regex "^0x[0-9a-f]{40}$"
                  && @.signature.type() == "string" && @.signature like_regex "^0x[0-9a-f]{130}$"))'
    )) NOT VALID;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END $$;

-- One row per node, upserted every heartbeat interval. The writer is elected from fresh rows.
CREATE TABLE IF NOT EXISTS heartbeats (
    node     text        PRIMARY KEY CHECK (node ~ '^0x[0-9a-f]{40}$'),
    name     text        NOT NULL,
    beat_at  timestamptz NOT NULL DEFAULT now()
);
