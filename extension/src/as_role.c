/*
 * as_role.c
 *		steep_repl._exec_as(role, stmt): run one statement as another role inside a
 *		security-restricted operation, the way PostgreSQL runs VACUUM, CREATE INDEX and
 *		REFRESH MATERIALIZED VIEW as the table's owner.
 *
 *		The API is made of SECURITY DEFINER functions owned by a superuser, and PostgreSQL
 *		forbids SET ROLE inside them; yet a TRUNCATE, COPY or ALTER TABLE of a user's table
 *		must never let that user's trigger, default or CHECK run with the definer's rights.
 *		steep_repl._query_as(role, query) is its reading twin: the rows of one query run as
 *		another role, for reads of a user's table (a cast to text or json of a column of the
 *		owner's type runs the owner's function: as the definer, that function would be a
 *		superuser's). steep_repl._caller() tells who called the API (the role in effect
 *		outside every SECURITY DEFINER function), for objects created on someone's behalf.
 */
#include "steep_repl.h"
#include "compat.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

/* Rows fetched from the cursor at a time: bounds the memory of a read of a large table. */
#define QUERY_AS_BATCH 1000

PG_FUNCTION_INFO_V1(steep_repl_exec_as);
PG_FUNCTION_INFO_V1(steep_repl_query_as);
PG_FUNCTION_INFO_V1(steep_repl_caller);

/*
 * The role and the statement of a call, refused when NULL or when the caller is not the
 * definer (a superuser: the functions are granted to nobody; changing identity is its power).
 */
static void
role_call_args(FunctionCallInfo fcinfo, const char *what, Oid *role, char **stmt)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role and %s must not be NULL", what)));
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run a %s as another role", what)));
	*role = PG_GETARG_OID(0);
	*stmt = text_to_cstring(PG_GETARG_TEXT_PP(1));
}

/* A safe search_path until AtEOXact_GUC(false, the returned level). */
static int
pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * As in ExecRefreshMatView: become role in a security-restricted operation. An error needs no
 * cleanup: (sub)transaction abort restores the user id, the security context and the GUC nest
 * level; on success the caller restores them.
 */
static void
become_restricted(Oid role, int save_sec_context)
{
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

Datum
steep_repl_exec_as(PG_FUNCTION_ARGS)
{
	Oid			role;
	char	   *stmt;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int			rc;

	role_call_args(fcinfo, "statement", &role, &stmt);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	become_restricted(role, save_sec_context);
	save_nestlevel = pin_search_path();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute(stmt, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	SPI_finish();

	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	PG_RETURN_VOID();
}

/* The query's columns must be the ones the caller's column definition list expects. */
static void
check_result_columns(TupleDesc got, TupleDesc want)
{
	if (got->natts != want->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query returns %d columns, the caller expects %d", got->natts, want->natts)));
	for (int i = 0; i < want->natts; i++)
	{
		Oid			g = TupleDescAttr(got, i)->atttypid;
		Oid			w = TupleDescAttr(want, i)->atttypid;

		if (g != w)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of the query is of type %s, the caller expects %s",
							i + 1, format_type_be(g), format_type_be(w))));
	}
}

Datum
steep_repl_query_as(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			role;
	char	   *query;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	SPIPlanPtr	plan;
	Portal		portal;
	bool		checked = false;

	role_call_args(fcinfo, "query", &role, &query);

	/* The tuplestore lives in the query's memory and takes the caller's column list. */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	/*
	 * Parsed as the definer, run as role: the query names steep_repl's own functions (role need
	 * not use the schema), while the executor checks the privileges on the tables and functions,
	 * and runs every function, as role. Read-only, so it reads in the caller's snapshot.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_nestlevel = pin_search_path();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	become_restricted(role, save_sec_context);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, QUERY_AS_BATCH);
		if (!checked)
		{
			check_result_columns(SPI_tuptable->tupdesc, rsinfo->setDesc);
			checked = true;
		}
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
			tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();

	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return (Datum) 0;
}

Datum
steep_repl_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
