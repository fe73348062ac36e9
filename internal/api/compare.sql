-- name: Verify
SELECT schema_name, table_name, key::text, kind FROM steep_repl.verify($1, $2, $3);

-- name: AnalyzeOverlap
SELECT schema_name, table_name, identical, conflicting, local_only, peer_only FROM steep_repl.analyze_overlap($1, $2);

-- name: InitVerify
SELECT steep_repl.init_verify($1)::text;
