/*
 * compat.h
 *		The only place that knows about PostgreSQL major-version differences.
 *		Supported: 16, 17, 18.
 */
#ifndef STEEP_REPL_COMPAT_H
#define STEEP_REPL_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 160000
#error "steep_repl requires PostgreSQL 16 or later"
#endif

/*
 * A composite argument, detoasted. Not PG_GETARG_HEAPTUPLEHEADER: 17.12's headers made
 * DatumGetHeapTupleHeader an exported function that a 17.10 server lacks, and a module built
 * against newer minor headers must still load into an older minor server.
 */
#define SR_GETARG_HEAPTUPLEHEADER(n) ((HeapTupleHeader) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))

#endif							/* STEEP_REPL_COMPAT_H */
