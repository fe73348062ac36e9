/*
 * steep_repl.h
 *		Shared declarations of the steep_repl extension's C part.
 *
 * The C part is deliberately thin: a supervisor background worker that runs
 * steep_repl.tick() (all logic is SQL), a way to wake it, and a conninfo
 * validator that uses the server's own libpq wrapper.
 */
#ifndef STEEP_REPL_H
#define STEEP_REPL_H

#include "postgres.h"

extern char *steep_repl_database;
extern int	steep_repl_naptime;
extern char *steep_repl_snapshot_root;

extern void supervisor_register(void);
extern void supervisor_shmem_request(void);
extern void supervisor_shmem_startup(void);

extern PGDLLEXPORT void steep_repl_supervisor_main(Datum main_arg);

#endif							/* STEEP_REPL_H */
