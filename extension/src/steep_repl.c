/*
 * steep_repl.c
 *		Module entry point: GUCs, shared memory hooks and the supervisor's
 *		registration when the library is preloaded.
 */
#include "steep_repl.h"
#include "compat.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *steep_repl_database = NULL;
int			steep_repl_naptime = 1000;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
steep_repl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	supervisor_shmem_request();
}

static void
steep_repl_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	supervisor_shmem_startup();
}

void
_PG_init(void)
{
	DefineCustomStringVariable("steep_repl.database",
							   "Database in which the steep_repl supervisor runs steep_repl.tick().",
							   NULL,
							   &steep_repl_database,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("steep_repl.naptime",
							"Time between two runs of steep_repl.tick() by the supervisor.",
							NULL,
							&steep_repl_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("steep_repl");

	/* The supervisor and its shared state exist only when preloaded. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = steep_repl_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = steep_repl_shmem_startup;

	supervisor_register();
}
