-- The embedded database's schema: init.sql's tables and constraints in SQLite's terms. Idempotent.
CREATE TABLE IF NOT EXISTS prices (
    -- Canonical UUID text: fixed width, so text order is id order.
    id                TEXT    PRIMARY KEY CHECK (length(id) = 36),
    network_id        BLOB    NOT NULL CHECK (length(network_id) = 32),
    feed              TEXT    NOT NULL CHECK (length(feed) BETWEEN 1 AND 16),
    -- The fixed-point units as decimal digits: exact, beyond SQLite's 64-bit integers.
    price_units       TEXT    NOT NULL CHECK (price_units NOT GLOB '*[^0-9]*' AND length(price_units) BETWEEN 1 AND 39),
    decimals          INTEGER NOT NULL CHECK (decimals BETWEEN 0 AND 38),
    observed_at_ms    INTEGER NOT NULL CHECK (observed_at_ms >= 0),
    origin            TEXT    NOT NULL CHECK (origin GLOB '0x[0-9a-f]*' AND length(origin) = 42),
    signatures        TEXT    NOT NULL CHECK (json_valid(signatures) AND json_type(signatures) = 'array'),
    signer_count      INTEGER NOT NULL,
    quorum            INTEGER NOT NULL CHECK (quorum >= 1),
    last_signed_at_ms INTEGER NOT NULL,
    writer            TEXT    NOT NULL CHECK (writer GLOB '0x[0-9a-f]*' AND length(writer) = 42),
    inserted_at_ms    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    CHECK (signer_count = json_array_length(signatures)),
    CHECK (signer_count >= quorum)
) STRICT;

CREATE INDEX IF NOT EXISTS prices_feed_observed ON prices (feed, observed_at_ms DESC);
CREATE INDEX IF NOT EXISTS prices_inserted ON prices (inserted_at_ms);

-- The checks init.sql makes that SQLite cannot write as CHECK constraints (they need json_each), and
-- exact address shapes: 0x and 40 lowercase hex digits. As a trigger, databases made before it get
-- it too.
CREATE TRIGGER IF NOT EXISTS prices_well_formed BEFORE INSERT ON prices
WHEN NOT (
        length(NEW.origin) = 42 AND substr(NEW.origin, 1, 2) = '0x'
        AND substr(NEW.origin, 3) NOT GLOB '*[^0-9a-f]*'
        AND length(NEW.writer) = 42 AND substr(NEW.writer, 1, 2) = '0x'
        AND substr(NEW.writer, 3) NOT GLOB '*[^0-9a-f]*')
    OR EXISTS (
        SELECT 1 FROM json_each(NEW.signatures) AS entry
        WHERE json_type(entry.value, '$.signer') IS NOT 'text'
           OR json_type(entry.value, '$.signature') IS NOT 'text'
           OR length(json_extract(entry.value, '$.signer')) <> 42
           OR substr(json_extract(entry.value, '$.signer'), 1, 2) <> '0x'
           OR substr(json_extract(entry.value, '$.signer'), 3) GLOB '*[^0-9a-f]*'
           OR length(json_extract(entry.value, '$.signature')) <> 132
           OR substr(json_extract(entry.value, '$.signature'), 1, 2) <> '0x'
           OR substr(json_extract(entry.value, '$.signature'), 3) GLOB '*[^0-9a-f]*')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: prices_well_formed (0x addresses, signature entries {signer, signature})');
END;

CREATE TABLE IF NOT EXISTS heartbeats (
    node       TEXT    PRIMARY KEY CHECK (node GLOB '0x[0-9a-f]*' AND length(node) = 42),
    name       TEXT    NOT NULL,
    beat_at_ms INTEGER NOT NULL
) STRICT;
