-- name: ComputeFingerprint
SELECT steep_repl.compute_fingerprint($1, $2);

-- name: CaptureFingerprints
SELECT steep_repl.capture_fingerprints();

-- name: ListFingerprints
SELECT schema_name, table_name, fingerprint, captured_at
FROM steep_repl.schema_fingerprints ORDER BY schema_name, table_name;

-- name: CompareFingerprints
SELECT schema_name, table_name, status, local_fingerprint, peer_fingerprint
FROM steep_repl.compare_fingerprints($1);

-- name: SchemaDiff
SELECT schema_name, table_name, column_name, difference, local_definition, peer_definition, description
FROM steep_repl.schema_diff($1, $2, $3);

-- name: SchemaDDL
SELECT schema_name, table_name, statement FROM steep_repl.schema_ddl($1, $2);

-- name: SchemaSync
SELECT steep_repl.schema_sync($1, $2, $3);

-- name: CheckDrift
SELECT steep_repl.check_drift($1);

-- name: ConfigureSchemaSync
SELECT steep_repl.configure_schema_sync($1, $2::interval);
