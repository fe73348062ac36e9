package job

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/pgtools"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// dumpSchema writes the schema of the snapshot's schemas with `pg_dump --schema-only
// --format=custom --snapshot=<the exported snapshot>` (so it is the schema of the data's point in
// time) into the snapshot directory, leaving out the tables the snapshot does not cover, and
// returns its manifest entry. conn is inside the exported snapshot; it lists what to leave out.
func (g *generation) dumpSchema(ctx context.Context, conn *pgx.Conn, info api.SnapshotServer, schemas []string) (*snapshot.Schema, error) {
	major := info.VersionNum / 10000
	path, version, err := g.progs.Program(ctx, "pg_dump", major, "the source server "+info.Version)
	if err != nil {
		return nil, err
	}
	relids := make([]int64, len(g.scope))
	for i, t := range g.scope {
		relids[i] = t.RelID
	}
	exclude, err := api.SnapshotDumpExclusions(ctx, conn, schemas, relids)
	if err != nil {
		return nil, classify(err)
	}
	cfg := &g.pool.Config().ConnConfig.Config
	args := []string{"--schema-only", "--format=custom", "--snapshot=" + g.name, "--no-publications", "--no-subscriptions",
		"-d", pgtools.DBNameArg(cfg.Database)}
	for _, s := range schemas {
		args = append(args, "--schema="+pgtools.NamePattern(s, ""))
	}
	for _, t := range exclude {
		args = append(args, "--exclude-table="+pgtools.NamePattern(t.Schema, t.Table))
	}
	fw, err := g.dir.CreateFile(snapshot.SchemaFileName, "none")
	if err != nil {
		return nil, err
	}
	if err := pgtools.Run(ctx, cfg, path, args, pgtools.LibpqEnv(cfg, "steep-repl snapshot pg_dump"), nil, fw); err != nil {
		fw.Abort()
		return nil, fmt.Errorf("dump the schema (pg_dump %s): %w", version, err)
	}
	res, err := fw.Close()
	if err != nil {
		return nil, err
	}
	g.log.Info("schema dumped", "event", "snapshot.schema_dumped", "pg_dump", path, "pg_dump_version", version,
		"schemas", len(schemas), "tables_left_out", len(exclude), "bytes", res.FileBytes)
	return &snapshot.Schema{File: snapshot.SchemaFileName, Bytes: res.FileBytes, SHA256: res.SHA256, PgDumpVersion: version}, nil
}
