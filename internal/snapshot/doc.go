// Package snapshot is the on-disk format of a two-phase snapshot and the pure machinery around
// it: the manifest (format version, snapshot id, source, consistent LSN, slot, per-table file,
// rows, raw and compressed bytes and SHA-256, sequences, DDL and column fingerprints), its
// validation (file names never leave the directory), the table files (COPY text, optionally
// zstd, lz4 or gzip, hashed while written and while read) and the foreign-key-safe load plan.
// Throughput and ETA of the progress rows are computed by the extension (steep_repl._rate_eta).
//
// Nothing here talks to PostgreSQL; package snapshot/job runs the generate and apply jobs.
//
// A snapshot directory holds manifest.json, written last and atomically (temp file, fsync,
// rename), and one file per table named NNNN_schema_table.copy[.zst|.lz4|.gz]. A file is
// written as NAME.partial and renamed once complete and synced, so a name without .partial
// is always a whole file.
package snapshot
