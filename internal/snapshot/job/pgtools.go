package job

import "github.com/steepdb/steep_repl/internal/pgtools"

// Programs says where the sidecar finds pg_dump and pg_restore (package pgtools).
type Programs = pgtools.Programs
