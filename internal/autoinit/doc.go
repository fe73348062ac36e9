// Package autoinit runs the sidecar's part of an automatic init (copy_data = true): the
// init.start job creates the publication on the source and the subscription on the target,
// the init.cancel job removes everything an init created. Progress and the later state
// changes are tick()'s work, in SQL.
package autoinit
