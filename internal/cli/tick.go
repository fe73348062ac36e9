package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/steepdb/steep_repl/internal/api"
)

func tickCommand() command {
	return command{
		name: "tick", summary: "run the supervisor's duties once now (steep_repl.tick()) and print its summary",
		example: "steep-repl tick --db postgres://localhost/postgres",
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			return withConn(ctx, env, func(db api.DB) error {
				out, err := api.Tick(ctx, db)
				if err != nil {
					return err
				}
				b, _ := json.Marshal(out)
				fmt.Fprintln(env.Stdout, string(b))
				return nil
			})
		},
	}
}
