/*
 * conninfo.c
 *		steep_repl.check_conninfo(text): validate a connection string with the
 *		same libpq parser CREATE SUBSCRIPTION uses, so a bad conninfo is
 *		rejected when a node is registered, not hours later by a subscription.
 */
#include "steep_repl.h"
#include "compat.h"

#include "fmgr.h"
#include "replication/walreceiver.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(steep_repl_check_conninfo);

Datum
steep_repl_check_conninfo(PG_FUNCTION_ARGS)
{
	char	   *conninfo;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("conninfo must not be NULL")));
	conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));

	/* Loads libpqwalreceiver on first use, as CREATE SUBSCRIPTION does. */
	load_file("libpqwalreceiver", false);
	walrcv_check_conninfo(conninfo, false);

	PG_RETURN_VOID();
}
