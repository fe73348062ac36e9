package job

import (
	"context"
	"fmt"

	"github.com/steepdb/steep_repl/internal/api"
)

// ownerArgs are the pg_restore options saying as whom the schema is restored and who owns
// it: as the role that asked for the apply (--role, recorded by apply_snapshot itself, so an
// operator never makes pg_restore act as a role it is not), which then owns every object,
// without the snapshot's grants (--no-owner --no-privileges); with keep_owner, which only a
// superuser may ask for, the snapshot's owners and grants are restored too. The requester is
// read again here: a role dropped, or no longer a superuser, since the request is refused.
func (ap *application) ownerArgs(ctx context.Context) ([]string, error) {
	if ap.owner != nil {
		return ap.owner, nil
	}
	req, err := api.GetApplyRequester(ctx, ap.pool, ap.a.ID)
	if err != nil {
		return nil, classify(err)
	}
	keep := ap.a.OptBool("keep_owner")
	switch {
	case !req.Recorded && keep:
		return nil, fmt.Errorf("apply %d asks for keep_owner but records no requester: apply the snapshot again", ap.a.ID)
	case !req.Recorded:
		// Queued by the 1.0 extension, which recorded no requester: restored as before.
		ap.log.Warn("the apply records no requester (queued before the upgrade): the schema is restored as the sidecar's role",
			"event", "snapshot.restore_as_sidecar")
		ap.owner = []string{"--no-owner", "--no-privileges"}
	case req.Role == "":
		return nil, fmt.Errorf("the role that asked for apply %d no longer exists: apply the snapshot again", ap.a.ID)
	case keep && !req.Superuser:
		return nil, fmt.Errorf("keep_owner restores the snapshot's owners and grants, which needs a superuser, and role %q that asked for apply %d is not one",
			req.Role, ap.a.ID)
	case keep:
		ap.owner = []string{"--role=" + req.Role}
	default:
		ap.owner = []string{"--role=" + req.Role, "--no-owner", "--no-privileges"}
	}
	return ap.owner, nil
}
