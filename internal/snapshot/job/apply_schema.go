package job

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/pgtools"
)

// The events an apply records once a schema section is restored, so a retried apply knows
// which it still has to do (pg_restore runs each section in one transaction: all or nothing).
const (
	eventPreData  = "snapshot.schema_pre_data"
	eventPostData = "snapshot.schema_post_data"
)

// restoreSection restores one section (pre-data or post-data) of the snapshot's schema
// archive into this node with pg_restore, in one transaction, stopping at the first error
// (which pg_restore reports with the archive entry, naming the object), as the role that asked
// for the apply (ownerArgs); tablespaces are left to the target's default. skipSchemas are
// schemas that exist here already: their CREATE SCHEMA is left out.
func (ap *application) restoreSection(ctx context.Context, section string, skipSchemas []string) error {
	event := eventPreData
	if section == "post-data" {
		event = eventPostData
	}
	done, err := api.ApplyEventRecorded(ctx, ap.pool, ap.a.ID, event)
	if err != nil {
		return classify(err)
	}
	if done {
		ap.log.Info("schema section already restored by an earlier attempt", "event", "snapshot.schema_resumed", "section", section)
		return nil
	}
	ap.tr.step("schema", "pg_restore --section="+section)
	if ap.schema == nil {
		if ap.schema, err = ap.dir.ReadSchema(ap.m.Schema); err != nil {
			return err
		}
	}
	dumpMajor, _ := strconv.Atoi(pgtools.LeadingDigits(ap.m.Schema.PgDumpVersion))
	path, version, err := ap.progs.Program(ctx, "pg_restore", dumpMajor, "the pg_dump "+ap.m.Schema.PgDumpVersion+" that wrote the snapshot's schema")
	if err != nil {
		return err
	}
	owner, err := ap.ownerArgs(ctx)
	if err != nil {
		return err
	}
	cfg := &ap.pool.Config().ConnConfig.Config
	env := pgtools.LibpqEnv(cfg, "steep-repl snapshot pg_restore")
	args := append([]string{"--section=" + section, "--single-transaction", "--exit-on-error", "--no-tablespaces"}, owner...)
	args = append(args, "-d", pgtools.DBNameArg(cfg.Database))
	var extra []*os.File
	if len(skipSchemas) > 0 && section == "pre-data" {
		var toc bytes.Buffer
		if err := pgtools.Run(ctx, cfg, path, []string{"-l"}, env, bytes.NewReader(ap.schema), &toc); err != nil {
			return fmt.Errorf("list the schema archive: %w", err)
		}
		// An existing schema's comment is left alone unless the snapshot's owners are kept
		// (the requester may not own it).
		list := pgtools.WithoutSchemaEntries(toc.String(), skipSchemas, !ap.a.OptBool("keep_owner"))
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		defer r.Close()
		go func() { w.WriteString(list); w.Close() }()
		extra = []*os.File{r}
		args = append(args, "--use-list=/dev/fd/3")
	}
	if err := pgtools.Run(ctx, cfg, path, args, env, bytes.NewReader(ap.schema), nil, extra...); err != nil {
		return fmt.Errorf("restore the schema's %s section (pg_restore %s): %w", section, version, err)
	}
	detail := map[string]any{"apply_id": ap.a.ID, "snapshot_id": ap.m.SnapshotID}
	if ap.finishes != 0 && section == "post-data" {
		detail["finishes_apply"] = ap.finishes
	}
	if err := api.RecordEvent(ctx, ap.pool, "", event, detail); err != nil {
		return classify(err)
	}
	ap.log.Info("schema section restored", "event", "snapshot.schema_restored", "section", section, "pg_restore", path,
		"pg_restore_version", version, "as", owner)
	return nil
}

// refreshMatViews fills the materialized views that held data at the snapshot (the schema
// archive creates them empty), once the tables and post-data are in.
func (ap *application) refreshMatViews(ctx context.Context) error {
	for _, v := range ap.m.MatViews {
		if err := api.RefreshMatView(ctx, ap.pool, v.Schema, v.Name); err != nil {
			return classify(err)
		}
	}
	return nil
}
