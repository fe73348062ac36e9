package nodeinit

import (
	"context"
	"log/slog"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// verify runs init.verify, queued when an init with "verify": true reached SYNCHRONIZED: every
// row of its tables compared with the source's (steep_repl.init_verify records init.verified).
// Differences do not fail the job: they are the result, in the event and in the job's result.
func verify(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	target, err := targetOf(job)
	if err != nil {
		return nil, err
	}
	res, err := api.InitVerify(ctx, job.DB, target)
	if err != nil {
		return nil, err
	}
	delete(res, "rows") // in the event; the job's result keeps the counts
	log.Info("init verified against its source", "event", "init.verified", "node", target, "job", job.ID,
		"differences", res["differences"], "unsettled", res["unsettled"], "skipped", res["skipped"])
	return res, nil
}
