/*
 * steep_repl.c
 *		Module entry point: GUCs, shared memory hooks and the supervisor's
 *		registration when the library is preloaded.
 */
#include "steep_repl.h"
#include "compat.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *steep_repl_database = NULL;
int			steep_repl_naptime = 1000;
char	   *steep_repl_snapshot_root = NULL;

/* Limits on what an operator can make hold WAL or the xmin horizon (read from SQL). */
static int	steep_repl_max_slot_expiry = 30 * 24 * 3600;
static int	steep_repl_max_snapshot_hold = 24 * 3600;
static int	steep_repl_max_prepared_slots = 4;

/* How long one duty of tick() may run (read from SQL by steep_repl._duty_timeout()). */
static int	steep_repl_duty_timeout = 10000;

PG_FUNCTION_INFO_V1(steep_repl_get_snapshot_root);
PG_FUNCTION_INFO_V1(steep_repl_written_here);

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

/*
 * steep_repl.snapshot_root: empty, or an absolute directory with no empty, "." or ".."
 * component (a trailing "/" is allowed), so a path's place beneath it is decided by comparing
 * strings.
 */
static bool
check_snapshot_root(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (p == NULL || p[0] == '\0')
		return true;
	if (p[0] != '/')
	{
		GUC_check_errdetail("steep_repl.snapshot_root must be an absolute path.");
		return false;
	}
	while (*p != '\0')
	{
		const char *c = p + 1;	/* a component starts after each '/' */
		size_t		len = strcspn(c, "/");

		if ((len == 0 && c[0] != '\0') || (len == 1 && c[0] == '.') ||
			(len == 2 && c[0] == '.' && c[1] == '.'))
		{
			GUC_check_errdetail("steep_repl.snapshot_root must not have an empty, \".\" or \"..\" component.");
			return false;
		}
		p = c + len;
	}
	return true;
}

/*
 * steep_repl._snapshot_root(): the setting as this library defines it. Calling a C function
 * loads the library, so a value a session set as a placeholder before that (which any role
 * may do) has been re-checked against PGC_SUSET and dropped.
 */
Datum
steep_repl_get_snapshot_root(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(steep_repl_snapshot_root ? steep_repl_snapshot_root : ""));
}

/*
 * steep_repl._written_here(xid): whether xid is this transaction's or one of its open
 * subtransactions'. A row whose xmin it is was written by this transaction; comparing xmin with
 * pg_current_xact_id() misses rows written inside a savepoint or an EXCEPTION block.
 */
Datum
steep_repl_written_here(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(DatumGetTransactionId(PG_GETARG_DATUM(0))));
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
	DefineCustomStringVariable("steep_repl.snapshot_root",
							   "Directory every snapshot directory must be strictly beneath (empty: only a superuser may name one).",
							   "Set it to the directory the node's sidecar is given as --snapshot-root.",
							   &steep_repl_snapshot_root,
							   "",
							   PGC_SUSET,
							   0,
							   check_snapshot_root, NULL, NULL);
	DefineCustomIntVariable("steep_repl.max_slot_expiry",
							"Longest expiry prepare_init and prepare_init_export accept for a prepared slot.",
							"A prepared slot holds WAL on the source until it is used or expires.",
							&steep_repl_max_slot_expiry,
							30 * 24 * 3600, 60, PG_INT32_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("steep_repl.max_snapshot_hold",
							"Longest time prepare_init_export may hold its exported snapshot open.",
							"An open snapshot holds back the xmin horizon: VACUUM cannot remove dead rows of any table meanwhile.",
							&steep_repl_max_snapshot_hold,
							24 * 3600, 1, PG_INT32_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("steep_repl.max_prepared_slots",
							"Most prepared slots (unused, not dropped) one target node may have on this source at once.",
							NULL,
							&steep_repl_max_prepared_slots,
							4, 1, 1000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("steep_repl.duty_timeout",
							"Longest a duty of steep_repl.tick() may run before it is cancelled and counted as failed (0: unbounded).",
							NULL,
							&steep_repl_duty_timeout,
							10000, 0, PG_INT32_MAX,
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
