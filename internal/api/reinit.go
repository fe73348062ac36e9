package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ReinitScope is start_reinit's scope: exactly one of Tables, Schemas or Full, and the init
// options that apply (zero values keep the node's init's).
type ReinitScope struct {
	Tables        []string `json:"tables,omitempty"`
	Schemas       []string `json:"schemas,omitempty"`
	Full          bool     `json:"full,omitempty"`
	Cascade       bool     `json:"cascade,omitempty"` // add the tables that reference the scope's by a foreign key
	Parallel      int      `json:"parallel,omitempty"`
	LagThreshold  int64    `json:"lag_threshold,omitempty"`
	StallTimeout  float64  `json:"stall_timeout,omitempty"`
	SourceTimeout float64  `json:"source_timeout,omitempty"`
	// SchemaSync (strict | auto | manual) first compares the replicated tables with the
	// source's; auto makes them match in the same call.
	SchemaSync string `json:"schema_sync,omitempty"`
	Confirm    bool   `json:"confirm,omitempty"` // with SchemaSync manual: go on despite differences
}

// ReinitState is the part of an InitPlan that a reinit under way adds.
type ReinitState struct {
	// Truncated says the tables already left the subscription and were emptied.
	Truncated bool `json:"truncated"`
	// Full says the whole node is reinitialized: a new subscription copies every table.
	Full bool `json:"full"`
}

// StartReinit calls steep_repl.start_reinit on the node and returns the reinit.start job id.
func StartReinit(ctx context.Context, db DB, node string, scope ReinitScope) (int64, error) {
	b, err := json.Marshal(scope)
	if err != nil {
		return 0, fmt.Errorf("start reinit of %s: encode scope: %w", node, err)
	}
	var id int64
	if err := db.QueryRow(ctx, q(qStartReinit), node, string(b)).Scan(&id); err != nil {
		return 0, fmt.Errorf("start reinit of %s: %w", node, err)
	}
	return id, nil
}

// ReinitTruncate empties the reinit's tables (once; as their owners) after they left the subscription.
func ReinitTruncate(ctx context.Context, db DB, node string) error {
	if _, err := db.Exec(ctx, q(qReinitTruncate), node); err != nil {
		return fmt.Errorf("truncate the reinit tables of %s: %w", node, err)
	}
	return nil
}

// ReinitCopying records that the reinit's tables are subscribed again with copy_data.
func ReinitCopying(ctx context.Context, db DB, node string, parallel int) error {
	if _, err := db.Exec(ctx, q(qReinitCopying), node, parallel); err != nil {
		return fmt.Errorf("record the reinit copy of %s: %w", node, err)
	}
	return nil
}

// ReinitCancelled empties the cancelled reinit's tables and makes node DIVERGED.
func ReinitCancelled(ctx context.Context, db DB, node string, detail map[string]any) error {
	d, err := jsonArg(detail)
	if err != nil {
		return err
	}
	if _, err := db.Exec(ctx, q(qReinitCancelled), node, d); err != nil {
		return fmt.Errorf("record cancel of reinit of %s: %w", node, err)
	}
	return nil
}

// PublicationTables lists the tables publication name publishes on the node db reaches.
func PublicationTables(ctx context.Context, db DB, name string) ([]TableName, error) {
	rows, err := db.Query(ctx, q(qPublicationTables), name)
	if err != nil {
		return nil, fmt.Errorf("tables of publication %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TableName, error) {
		var t TableName
		err := row.Scan(&t.Schema, &t.Table)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("tables of publication %s: %w", name, err)
	}
	return out, nil
}

// AlterPublicationDropTables takes tables out of publication name.
func AlterPublicationDropTables(ctx context.Context, db DB, name string, tables []TableName) error {
	list, err := tableList(tables)
	if err == nil {
		_, err = db.Exec(ctx, "ALTER PUBLICATION "+Identifier(name)+" DROP TABLE "+list)
	}
	if err != nil {
		return fmt.Errorf("drop tables from publication %s: %w", name, err)
	}
	return nil
}

// AlterPublicationAddTables adds tables to publication name.
func AlterPublicationAddTables(ctx context.Context, db DB, name string, tables []TableName) error {
	list, err := tableList(tables)
	if err == nil {
		_, err = db.Exec(ctx, "ALTER PUBLICATION "+Identifier(name)+" ADD TABLE "+list)
	}
	if err != nil {
		return fmt.Errorf("add tables to publication %s: %w", name, err)
	}
	return nil
}

func refreshSubscriptionSQL(name string, copyData bool) string {
	return fmt.Sprintf("ALTER SUBSCRIPTION %s REFRESH PUBLICATION WITH (copy_data = %t)", Identifier(name), copyData)
}

// RefreshSubscription runs ALTER SUBSCRIPTION name REFRESH PUBLICATION (outside a transaction
// block): tables the publication no longer has leave pg_subscription_rel, new ones are added
// and, with copyData, copied by table-sync workers.
func RefreshSubscription(ctx context.Context, db DB, name string, copyData bool) error {
	if _, err := db.Exec(ctx, refreshSubscriptionSQL(name, copyData)); err != nil {
		return fmt.Errorf("refresh subscription %s: %w", name, err)
	}
	return nil
}
