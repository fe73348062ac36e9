// Package snapshot is the on-disk format of a two-phase snapshot and the pure machinery around
// it: the manifest (format version, snapshot id, source, consistent LSN, slot, per-table file,
// rows, raw and compressed bytes and SHA-256, sequences, the schema archive's SHA-256 and column
// fingerprints), its
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
//
// Files never leave a trust boundary: a Root (the sidecar's --snapshot-root) is opened once, a
// snapshot directory beneath it is opened (or, for a generation, created 0700) from that handle
// as a Dir, and every file is created (0600, O_EXCL) or read relative to the Dir with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so no symlink is ever followed and a path
// swapped after the open changes nothing. A generation refuses a directory it did not create
// (its own is marked by generating.id until the manifest is written); reading a table's file
// stops at the manifest's raw_bytes.
package snapshot
