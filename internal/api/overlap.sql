-- name: OverlapScope
SELECT schema_name, table_name, key_cols, key_types, key_oids::int8[], key_lens, key_sends
FROM steep_repl.overlap_scope($1, $2);

-- name: OverlapPeerTable
-- On the peer (search_path = pg_catalog): the table's primary key columns and types, in key
-- order (none when it has no primary key or does not exist), and whether row_hash is there.
SELECT coalesce(array_agg(a.attname::text ORDER BY k.ord), '{}'), coalesce(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord), '{}'),
       to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL, to_regprocedure('steep_repl.row_hash(record)') IS NOT NULL
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
JOIN pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.attnum
WHERE i.indrelid OPERATOR(pg_catalog.=) to_regclass(format('%I.%I', $1::text, $2::text)) AND i.indisprimary;

-- name: HasKeyHashChunks
-- Whether this node's steep_repl has the C stream of keys and row hashes.
SELECT to_regprocedure('steep_repl.key_hash_chunks(regclass)') IS NOT NULL;

-- name: CanReadConninfo
-- Whether this session may read the registered conninfos (a superuser: they may hold passwords).
SELECT has_column_privilege('steep_repl.nodes', 'conninfo', 'SELECT');
