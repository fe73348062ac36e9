/*
 * as_role.c
 *		steep_repl._exec_as(role, stmt): run one statement as another role inside a
 *		security-restricted operation, the way PostgreSQL runs VACUUM, CREATE INDEX and
 *		REFRESH MATERIALIZED VIEW as the table's owner.
 *
 *		The API is made of SECURITY DEFINER functions owned by a superuser, and PostgreSQL
 *		forbids SET ROLE inside them; yet a TRUNCATE, COPY or ALTER TABLE of a user's table
 *		must never let that user's trigger, default or CHECK run with the definer's rights.
 *		steep_repl._caller() tells who called the API (the role in effect outside every
 *		SECURITY DEFINER function), for objects created on someone's behalf.
 */
#include "steep_repl.h"
#include "compat.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(steep_repl_exec_as);
PG_FUNCTION_INFO_V1(steep_repl_caller);

Datum
steep_repl_exec_as(PG_FUNCTION_ARGS)
{
	Oid			role;
	char	   *stmt;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int			rc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role and statement must not be NULL")));
	role = PG_GETARG_OID(0);
	stmt = text_to_cstring(PG_GETARG_TEXT_PP(1));

	/* Changing identity is the definer's power only (the function is granted to nobody). */
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run a statement as another role")));

	/*
	 * As in ExecRefreshMatView: switch to the role in a security-restricted operation with a
	 * safe search_path. An error needs no cleanup here: (sub)transaction abort restores the
	 * user id, the security context and the GUC nest level.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

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

Datum
steep_repl_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
