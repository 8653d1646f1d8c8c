-- Run by .ci/run: init.sql in a scratch schema, twice, then the constraints it promises.
DROP SCHEMA IF EXISTS ci_init_check CASCADE;
CREATE SCHEMA ci_init_check;
SET search_path = ci_init_check;
SET client_min_messages = warning;
\i init.sql
\i init.sql

-- n well-formed signature entries (addresses 0x…01, 0x…02, …).
CREATE FUNCTION entries(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('signer', '0x' || lpad(to_hex(i), 40, '0'),
                                        'signature', '0x' || repeat('ab', 65)))
    FROM generate_series(1, n) AS i
$$;

INSERT INTO prices (id, network_id, feed, price_units, decimals, observed_at_ms, origin, signatures,
                    signer_count, quorum, last_signed_at, writer)
VALUES ('019b76da-a800-7001-9f97-d15482469a44', decode(repeat('ab', 32), 'hex'), 'ETH/USD',
        301245170000, 8, 1767225600000, '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf',
        entries(3), 3, 3, now(), '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf');

DO $$
DECLARE
    inserted int;
BEGIN
    IF (SELECT price FROM prices) <> 3012.4517 THEN
        RAISE EXCEPTION 'price is not exact';
    END IF;
    INSERT INTO prices (id, network_id, feed, price_units, decimals, observed_at_ms, origin,
                        signatures, signer_count, quorum, last_signed_at, writer)
    VALUES ('019b76da-a800-7001-9f97-d15482469a44', decode(repeat('ab', 32), 'hex'), 'ETH/USD', 1, 8,
            1, '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', entries(3), 3, 3, now(),
            '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf')
    ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF inserted <> 0 THEN
        RAISE EXCEPTION 'a second insert of one id stored something';
    END IF;
    BEGIN
        INSERT INTO prices (id, network_id, feed, price_units, decimals, observed_at_ms, origin,
                            signatures, signer_count, quorum, last_signed_at, writer)
        VALUES ('019b76da-a800-7001-9f97-d15482469a45', decode(repeat('ab', 32), 'hex'), 'ETH/USD', 1,
                8, 1, '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', entries(2), 2, 3, now(),
                '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf');
        RAISE EXCEPTION 'a row below its quorum was stored';
    EXCEPTION WHEN check_violation THEN
        NULL;
    END;
    BEGIN
        INSERT INTO prices (id, network_id, feed, price_units, decimals, observed_at_ms, origin,
                            signatures, signer_count, quorum, last_signed_at, writer)
        VALUES ('019b76da-a800-7001-9f97-d15482469a46', decode(repeat('ab', 32), 'hex'), 'ETH/USD', 1,
                8, 1, '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', '[{}, {}, {}]', 3, 3, now(),
                '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf');
        RAISE EXCEPTION 'a row of empty signature entries was stored';
    EXCEPTION WHEN check_violation THEN
        NULL;
    END;
END $$;

DROP SCHEMA ci_init_check CASCADE;
