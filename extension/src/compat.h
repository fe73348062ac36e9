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

#endif							/* STEEP_REPL_COMPAT_H */
