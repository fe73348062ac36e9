/*
 * supervisor.c
 *		The steep_repl supervisor: a background worker that runs
 *		SELECT steep_repl.tick() every steep_repl.naptime in its own
 *		transaction.  All decisions are made by tick() in SQL; this loop only
 *		keeps it running, survives its errors (logged, then retried at the next
 *		naptime: never a crash loop), honours SIGHUP/SIGTERM and wakes early when
 *		steep_repl.wake_supervisor() sets its latch.
 */
#include "steep_repl.h"
#include "compat.h"

#include "access/xact.h"
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
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

/* Seconds the postmaster waits before restarting a supervisor that exited. */
#define SUPERVISOR_RESTART_SECONDS 5

typedef struct SupervisorShared
{
	slock_t		mutex;
	pid_t		pid;			/* 0 when no supervisor runs */
	PGPROC	   *proc;			/* its PGPROC, for the latch */
} SupervisorShared;

static SupervisorShared *shared = NULL;

PG_FUNCTION_INFO_V1(steep_repl_wake_supervisor);

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
	}
	LWLockRelease(AddinShmemInitLock);
}

void
supervisor_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = SUPERVISOR_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", "steep_repl");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", "steep_repl_supervisor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", "steep_repl supervisor");
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", "steep_repl supervisor");
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

static void
supervisor_on_exit(int code, Datum arg)
{
	supervisor_publish(false);
}

/*
 * One run of tick() in its own transaction.  An error is reported with its
 * SQLSTATE and context (EmitErrorReport), the transaction is rolled back and
 * the loop goes on: a broken tick() must not take the worker down.
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
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
steep_repl_supervisor_main(Datum main_arg)
{
	MemoryContext loop_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

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
	for (;;)
	{
		MemoryContext old_context;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		old_context = MemoryContextSwitchTo(loop_context);
		supervisor_tick_once(loop_context);
		MemoryContextSwitchTo(old_context);
		MemoryContextReset(loop_context);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 steep_repl_naptime,
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
			proc = shared->proc;
		SpinLockRelease(&shared->mutex);
	}
	if (proc == NULL)
		PG_RETURN_BOOL(false);
	SetLatch(&proc->procLatch);
	PG_RETURN_BOOL(true);
}
