package job

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/steepdb/steep_repl/internal/api"
)

// The events an apply records once a schema section is restored, so a retried apply knows
// which it still has to do (pg_restore runs each section in one transaction: all or nothing).
const (
	eventPreData  = "snapshot.schema_pre_data"
	eventPostData = "snapshot.schema_post_data"
)

// restoreSection restores one section (pre-data or post-data) of the snapshot's schema
// archive into this node with pg_restore, in one transaction, stopping at the first error
// (which pg_restore reports with the archive entry, naming the object). Objects are owned by
// the sidecar's role (--no-owner) and no grant is restored (--no-privileges); tablespaces are
// left to the target's default. skipSchemas are schemas that exist here already: their CREATE
// SCHEMA is left out.
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
	dumpMajor, _ := strconv.Atoi(leadingDigits(ap.m.Schema.PgDumpVersion))
	path, version, err := ap.progs.program(ctx, "pg_restore", dumpMajor, "the pg_dump "+ap.m.Schema.PgDumpVersion+" that wrote the snapshot's schema")
	if err != nil {
		return err
	}
	cfg := &ap.pool.Config().ConnConfig.Config
	env := libpqEnv(cfg, "steep-repl snapshot pg_restore")
	args := []string{"--section=" + section, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
		"--no-tablespaces", "-d", dbnameArg(cfg.Database)}
	var extra []*os.File
	if len(skipSchemas) > 0 && section == "pre-data" {
		var toc bytes.Buffer
		if err := runProgram(ctx, cfg, path, []string{"-l"}, env, bytes.NewReader(ap.schema), &toc); err != nil {
			return fmt.Errorf("list the schema archive: %w", err)
		}
		list := withoutSchemaEntries(toc.String(), skipSchemas)
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		defer r.Close()
		go func() { w.WriteString(list); w.Close() }()
		extra = []*os.File{r}
		args = append(args, "--use-list=/dev/fd/3")
	}
	if err := runProgram(ctx, cfg, path, args, env, bytes.NewReader(ap.schema), nil, extra...); err != nil {
		return fmt.Errorf("restore the schema's %s section (pg_restore %s): %w", section, version, err)
	}
	detail := map[string]any{"apply_id": ap.a.ID, "snapshot_id": ap.m.SnapshotID}
	if ap.finishes != 0 && section == "post-data" {
		detail["finishes_apply"] = ap.finishes
	}
	if err := api.RecordEvent(ctx, ap.pool, "", event, detail); err != nil {
		return classify(err)
	}
	ap.log.Info("schema section restored", "event", "snapshot.schema_restored", "section", section, "pg_restore", path, "pg_restore_version", version)
	return nil
}

// withoutSchemaEntries comments out, in a `pg_restore -l` listing, the SCHEMA entries of
// schemas (lines "<id>; <oid> <oid> SCHEMA - <name> <owner>").
func withoutSchemaEntries(toc string, schemas []string) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(toc))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if isSchemaEntry(line, schemas) {
			out.WriteString(";")
		}
		out.WriteString(line)
		out.WriteString("\n")
	}
	return out.String()
}

func isSchemaEntry(line string, schemas []string) bool {
	if strings.HasPrefix(line, ";") {
		return false
	}
	_, rest, ok := strings.Cut(line, "; ")
	if !ok {
		return false
	}
	f := strings.SplitN(rest, " ", 5) // tableoid, oid, desc, namespace, "tag owner"
	if len(f) < 5 || f[2] != "SCHEMA" || f[3] != "-" {
		return false
	}
	for _, s := range schemas {
		if strings.HasPrefix(f[4], s+" ") || f[4] == s {
			return true
		}
	}
	return false
}

// leadingDigits is the major of a version string ("18" of "18.6" or "19devel").
func leadingDigits(v string) string {
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		return v
	}
	return v[:end]
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
