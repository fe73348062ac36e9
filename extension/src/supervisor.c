/*
 * supervisor.c
 *		The steep_repl supervisor: background workers that run
 *		SELECT steep_repl.tick() every steep_repl.naptime in steep_repl.database.
 *		All decisions are made by tick() in SQL; these loops only keep it
 *		running, survive its errors (logged, then retried at the next naptime:
 *		never a crash loop), honour SIGHUP/SIGTERM and wake early when
 *		steep_repl.wake_supervisor() sets the latch.
 *
 * Two processes, so that a steep_repl.database that does not exist is waited
 * for instead of crash-looping (a worker whose database is missing dies FATAL
 * in BackgroundWorkerInitializeConnection, and the postmaster would restart it
 * every few seconds for ever):
 *
 * - the launcher (registered at server start, "steep_repl launcher") connects
 *   to no database, which is enough to read the shared catalog pg_database.
 *   While steep_repl.database is missing (or does not accept connections) it
 *   says so once in the log and looks again on SIGHUP and every minute. When
 *   the database is there it starts the supervisor as a dynamic worker and is
 *   told (bgw_notify_pid) when it stops, to start it again after a delay that
 *   doubles while it keeps stopping soon after starting;
 * - the supervisor ("steep_repl supervisor") connects to steep_repl.database
 *   and runs tick().
 *
 * It also holds steep_repl._duty_deadline(), with which tick() bounds each of
 * its duties: statement_timeout is armed once per top-level statement, so a
 * SET LOCAL statement_timeout inside tick() would bound nothing.
 */
#include "steep_repl.h"
#include "compat.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
/* snprintf, not strlcpy: the headers come from a newer glibc than some servers run on. */
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Seconds before a stopped supervisor (or launcher) is started again. */
#define SUPERVISOR_RESTART_SECONDS 5
/* The restart delay doubles while the supervisor stops soon after starting, up to this. */
#define SUPERVISOR_RESTART_MAX_SECONDS 300
/* A supervisor that ran this long before it stopped is restarted after the base delay again. */
#define SUPERVISOR_STABLE_SECONDS 60
/* How often the launcher looks again for a database that is not there (SIGHUP: at once). */
#define DATABASE_RECHECK_MS (60 * 1000)

typedef struct SupervisorShared
{
	slock_t		mutex;
	pid_t		pid;			/* the supervisor, 0 when none runs */
	PGPROC	   *proc;			/* its PGPROC, for the latch */
	pid_t		launcher_pid;	/* the launcher, 0 when none runs */
	bool		wake_requested; /* wake_supervisor() asked for a tick now */
} SupervisorShared;

/* What the launcher found of steep_repl.database in pg_database. */
typedef enum DatabaseState
{
	DATABASE_UNKNOWN,			/* not looked yet */
	DATABASE_OK,
	DATABASE_MISSING,
	DATABASE_NO_CONNECTIONS,	/* datallowconn = false */
	DATABASE_INVALID			/* a DROP DATABASE was interrupted */
} DatabaseState;

static SupervisorShared *shared = NULL;

extern PGDLLEXPORT void steep_repl_launcher_main(Datum main_arg);

/* The launcher's supervisor, for its exit callback. */
static BackgroundWorkerHandle *launcher_supervisor = NULL;

PG_FUNCTION_INFO_V1(steep_repl_wake_supervisor);
PG_FUNCTION_INFO_V1(steep_repl_duty_deadline);

void
supervisor_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(SupervisorShared)));
}

void
supervisor_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("steep_repl supervisor", sizeof(SupervisorShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->pid = 0;
		shared->proc = NULL;
		shared->launcher_pid = 0;
		shared->wake_requested = false;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* At server start: the launcher, which starts the supervisor when its database is there. */
void
supervisor_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = SUPERVISOR_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", "steep_repl");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", "steep_repl_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", "steep_repl launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", "steep_repl launcher");
	RegisterBackgroundWorker(&worker);
}

static void
supervisor_publish(bool running)
{
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	shared->pid = running ? MyProcPid : 0;
	shared->proc = running ? MyProc : NULL;
	SpinLockRelease(&shared->mutex);
}

static pid_t
supervisor_pid(void)
{
	pid_t		pid = 0;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	pid = shared->pid;
	SpinLockRelease(&shared->mutex);
	return pid;
}

static pid_t
launcher_pid(void)
{
	pid_t		pid = 0;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	pid = shared->launcher_pid;
	SpinLockRelease(&shared->mutex);
	return pid;
}

/* Whether wake_supervisor() asked for a tick since the last call (and forget that it did). */
static bool
supervisor_take_wake(void)
{
	bool		wake;

	SpinLockAcquire(&shared->mutex);
	wake = shared->wake_requested;
	shared->wake_requested = false;
	SpinLockRelease(&shared->mutex);
	return wake;
}

static void
supervisor_on_exit(int code, Datum arg)
{
	supervisor_publish(false);
}

/* A launcher that goes takes its supervisor along: the next launcher starts its own. */
static void
launcher_on_exit(int code, Datum arg)
{
	if (launcher_supervisor != NULL)
		TerminateBackgroundWorker(launcher_supervisor);
	if (shared != NULL)
	{
		SpinLockAcquire(&shared->mutex);
		if (shared->launcher_pid == MyProcPid)
			shared->launcher_pid = 0;
		SpinLockRelease(&shared->mutex);
	}
}

/*
 * A statement cancel or timeout that arrives between two ticks has nothing to cancel: forget
 * it, and a deadline tick() may have left armed, so neither turns into an ERROR outside
 * the loop's error handling (which would make the worker exit).
 */
static void
supervisor_forget_cancel(void)
{
	if (get_timeout_active(STATEMENT_TIMEOUT))
		disable_timeout(STATEMENT_TIMEOUT, false);
	(void) get_timeout_indicator(STATEMENT_TIMEOUT, true);
	QueryCancelPending = false;
}

/*
 * One run of tick() in its own transaction.  An error is reported with its
 * SQLSTATE and context (EmitErrorReport), the transaction is rolled back and
 * the loop goes on: a broken tick() must not take the worker down.  A duty
 * that fails inside tick() is not such an error: tick() records it in
 * steep_repl.supervisor_duties and goes on with the other duties.
 */
static void
supervisor_tick_once(MemoryContext loop_context)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		int			ret;

		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		/* Installed in this database?  Checked every time: CREATE/DROP EXTENSION may happen at any moment. */
		if (OidIsValid(get_extension_oid("steep_repl", true)))
		{
			pgstat_report_activity(STATE_RUNNING, "SELECT steep_repl.tick()");
			ret = SPI_execute("SELECT steep_repl.tick()", false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute of steep_repl.tick() returned %d", ret);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(loop_context);
		EmitErrorReport();
		AbortCurrentTransaction();
		FlushErrorState();
		ereport(LOG,
				(errmsg("steep_repl supervisor: tick failed; retrying in %d ms", steep_repl_naptime)));
	}
	PG_END_TRY();
	supervisor_forget_cancel();
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The supervisor, started by the launcher (main_arg: the launcher's pid) once
 * steep_repl.database exists.
 */
void
steep_repl_supervisor_main(Datum main_arg)
{
	MemoryContext loop_context;
	pid_t		my_launcher = DatumGetInt32(main_arg);
	TimestampTz last_tick;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* Dropped since the launcher looked?  Then this is FATAL once and the launcher waits for it. */
	BackgroundWorkerInitializeConnection(steep_repl_database, NULL, 0);
	pgstat_report_appname("steep_repl supervisor");

	supervisor_publish(true);
	before_shmem_exit(supervisor_on_exit, (Datum) 0);

	ereport(LOG,
			(errmsg("steep_repl supervisor started in database \"%s\" (naptime %d ms)",
					steep_repl_database, steep_repl_naptime)));

	loop_context = AllocSetContextCreate(TopMemoryContext,
										 "steep_repl supervisor loop",
										 ALLOCSET_DEFAULT_SIZES);
	/*
	 * A tick every naptime, counted from the end of the previous one; the first comes one
	 * naptime after the start. Only wake_supervisor() brings a tick forward: the latch is also
	 * set by SIGHUP and by signals a backend gets for other reasons (a sinval catch-up after
	 * many catalog changes, for one), which must not make a supervisor idled by a long
	 * naptime tick behind the back of whoever drives tick(now) by hand.
	 */
	last_tick = GetCurrentTimestamp();
	for (;;)
	{
		MemoryContext old_context;
		long		sleep_ms;

		supervisor_forget_cancel();	/* a pg_cancel_backend() between ticks cancels nothing */
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* Orphaned (the launcher that started this one is gone): its successor starts another. */
		if (launcher_pid() != my_launcher)
		{
			ereport(LOG,
					(errmsg("steep_repl supervisor: its launcher stopped; exiting")));
			proc_exit(0);
		}

		sleep_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
												   TimestampTzPlusMilliseconds(last_tick, steep_repl_naptime));
		if (sleep_ms > 0 && !supervisor_take_wake())
		{
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		(void) supervisor_take_wake();	/* this tick answers it */

		old_context = MemoryContextSwitchTo(loop_context);
		supervisor_tick_once(loop_context);
		MemoryContextSwitchTo(old_context);
		MemoryContextReset(loop_context);
		last_tick = GetCurrentTimestamp();
	}
}

/* Looks steep_repl.database up in pg_database (a shared catalog: no database connection needed). */
static DatabaseState
database_state(const char *name)
{
	DatabaseState state = DATABASE_MISSING;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	/*
	 * A heap scan, as the autovacuum launcher's get_database_list(): without a database the
	 * relcache cannot build the entry of pg_database's indexes (that reads pg_class).
	 */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (strcmp(NameStr(db->datname), name) != 0)
			continue;
		if (db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			state = DATABASE_INVALID;
		else if (!db->datallowconn)
			state = DATABASE_NO_CONNECTIONS;
		else
			state = DATABASE_OK;
		break;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return state;
}

/* Once per change of what the launcher found: never a line per look. */
static void
database_state_log(DatabaseState state, DatabaseState before)
{
	if (state == before)
		return;
	switch (state)
	{
		case DATABASE_OK:
			if (before != DATABASE_UNKNOWN)
				ereport(LOG,
						(errmsg("steep_repl supervisor: database \"%s\" is there now; starting the supervisor",
								steep_repl_database)));
			break;
		case DATABASE_MISSING:
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_DATABASE),
					 errmsg("steep_repl supervisor: database \"%s\" does not exist; waiting for it",
							steep_repl_database),
					 errdetail("The launcher looks again on SIGHUP (pg_reload_conf()) and every minute."),
					 errhint("Create the database, or set steep_repl.database to an existing one and restart the server.")));
			break;
		case DATABASE_NO_CONNECTIONS:
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("steep_repl supervisor: database \"%s\" does not accept connections; waiting",
							steep_repl_database),
					 errdetail("The launcher looks again on SIGHUP (pg_reload_conf()) and every minute."),
					 errhint("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true, or set steep_repl.database to another database.",
							 quote_identifier(steep_repl_database))));
			break;
		case DATABASE_INVALID:
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("steep_repl supervisor: database \"%s\" is invalid (an interrupted DROP DATABASE); waiting",
							steep_repl_database),
					 errdetail("The launcher looks again on SIGHUP (pg_reload_conf()) and every minute."),
					 errhint("Drop it and create it again.")));
			break;
		case DATABASE_UNKNOWN:
			break;
	}
}

/* Registers the supervisor as a dynamic worker that reports its start and stop to this launcher. */
static BackgroundWorkerHandle *
supervisor_start(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle = NULL;
	MemoryContext old_context;
	bool		ok;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", "steep_repl");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", "steep_repl_supervisor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", "steep_repl supervisor");
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", "steep_repl supervisor");
	worker.bgw_main_arg = Int32GetDatum(MyProcPid);
	worker.bgw_notify_pid = MyProcPid;

	old_context = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(old_context);
	return ok ? handle : NULL;
}

/*
 * The launcher: waits for steep_repl.database, keeps one supervisor running in
 * it, and starts it again (after a delay) when it stops.
 */
void
steep_repl_launcher_main(Datum main_arg)
{
	DatabaseState known = DATABASE_UNKNOWN;
	TimestampTz started_at = 0;
	TimestampTz next_start = 0;
	int			delay_s = SUPERVISOR_RESTART_SECONDS;
	bool		no_slot_logged = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* No database: enough to read pg_database, and nothing to be missing. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("steep_repl launcher");

	SpinLockAcquire(&shared->mutex);
	shared->launcher_pid = MyProcPid;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(launcher_on_exit, (Datum) 0);

	ereport(LOG,
			(errmsg("steep_repl launcher started for database \"%s\"", steep_repl_database)));

	for (;;)
	{
		long		timeout_ms = DATABASE_RECHECK_MS;
		TimestampTz now;

		QueryCancelPending = false; /* nothing to cancel: a pg_cancel_backend() must not make it exit */
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		now = GetCurrentTimestamp();

		/* Told (SIGUSR1 sets the latch) that the supervisor stopped? */
		if (launcher_supervisor != NULL)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(launcher_supervisor, &pid) == BGWH_STOPPED)
			{
				pfree(launcher_supervisor);
				launcher_supervisor = NULL;
				if (TimestampDifferenceExceeds(started_at, now, SUPERVISOR_STABLE_SECONDS * 1000))
					delay_s = SUPERVISOR_RESTART_SECONDS;
				next_start = TimestampTzPlusMilliseconds(now, delay_s * 1000);
				delay_s = Min(delay_s * 2, SUPERVISOR_RESTART_MAX_SECONDS);
			}
		}

		if (launcher_supervisor == NULL)
		{
			DatabaseState state = database_state(steep_repl_database);

			database_state_log(state, known);
			known = state;
			if (state == DATABASE_OK)
			{
				if (supervisor_pid() != 0)
				{
					/* A supervisor of a launcher that stopped has not gone yet. */
					timeout_ms = 1000;
				}
				else if (now < next_start)
					timeout_ms = Max(1, TimestampDifferenceMilliseconds(now, next_start));
				else if ((launcher_supervisor = supervisor_start()) != NULL)
				{
					started_at = now;
					no_slot_logged = false;
				}
				else
				{
					if (!no_slot_logged)
						ereport(WARNING,
								(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
								 errmsg("steep_repl supervisor: no free background worker slot; retrying every %d s",
										SUPERVISOR_RESTART_SECONDS),
								 errhint("Raise max_worker_processes.")));
					no_slot_logged = true;
					timeout_ms = SUPERVISOR_RESTART_SECONDS * 1000;
				}
			}
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * steep_repl.wake_supervisor() returns whether a running supervisor was woken.
 */
Datum
steep_repl_wake_supervisor(PG_FUNCTION_ARGS)
{
	PGPROC	   *proc = NULL;

	if (shared != NULL)
	{
		SpinLockAcquire(&shared->mutex);
		if (shared->pid != 0)
		{
			proc = shared->proc;
			shared->wake_requested = true;
		}
		SpinLockRelease(&shared->mutex);
	}
	if (proc == NULL)
		PG_RETURN_BOOL(false);
	SetLatch(&proc->procLatch);
	PG_RETURN_BOOL(true);
}

/*
 * steep_repl._duty_deadline(at timestamptz) returns timestamptz: makes this
 * backend's statement timeout fire at "at" (NULL: not at all) and returns the
 * deadline it replaced (NULL: none), for the caller to put back when its work
 * is done.  tick() bounds each duty with it: the timeout raises query_canceled
 * inside the duty, which tick() catches.
 *
 * A deadline that fired but has not raised its error yet (the work finished
 * in the same instant) is forgotten when it is replaced by a later one or by
 * none: the work it bounded is over.
 */
Datum
steep_repl_duty_deadline(PG_FUNCTION_ARGS)
{
	bool		had = get_timeout_active(STATEMENT_TIMEOUT);
	TimestampTz previous = had ? get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;

	if (get_timeout_indicator(STATEMENT_TIMEOUT, false) &&
		(PG_ARGISNULL(0) || PG_GETARG_TIMESTAMPTZ(0) > GetCurrentTimestamp()))
	{
		(void) get_timeout_indicator(STATEMENT_TIMEOUT, true);
		QueryCancelPending = false;
	}
	if (had)
		disable_timeout(STATEMENT_TIMEOUT, true);
	if (!PG_ARGISNULL(0))
		enable_timeout_at(STATEMENT_TIMEOUT, PG_GETARG_TIMESTAMPTZ(0));
	if (!had)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(previous);
}
