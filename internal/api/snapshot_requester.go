package api

import (
	"context"
	"fmt"
)

// ApplyRequester is the role an apply was asked for by (apply_snapshot records
// steep_repl._caller()): the sidecar restores the schema as it.
type ApplyRequester struct {
	Recorded  bool   // false for an apply queued before the extension recorded it (1.0)
	Role      string // "" when the role no longer exists
	Superuser bool
}

// GetApplyRequester returns who asked for apply id.
func GetApplyRequester(ctx context.Context, db DB, id int64) (ApplyRequester, error) {
	var r ApplyRequester
	var role *string
	if err := db.QueryRow(ctx, q(qApplyRequester), id).Scan(&r.Recorded, &role, &r.Superuser); err != nil {
		return r, fmt.Errorf("requester of apply %d: %w", id, err)
	}
	if role != nil {
		r.Role = *role
	}
	return r, nil
}
