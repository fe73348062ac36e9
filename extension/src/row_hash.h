/*
 * row_hash.h
 *		The row hasher of row_hash.c, shared with key_hash_stream.c so that a row hashed by
 *		either gets the same hash.
 */
#ifndef STEEP_REPL_ROW_HASH_H
#define STEEP_REPL_ROW_HASH_H

#include "postgres.h"
#include "access/tupdesc.h"

/* How one column is hashed. */
typedef enum RowHashPath
{
	ROW_HASH_SKIP,				/* a dropped column: not part of the row */
	ROW_HASH_BYVAL_BE,			/* pass-by-value integer-like: its big-endian bytes are its send form */
	ROW_HASH_TEXT,				/* text, varchar, bpchar: the bytes (in the database encoding) */
	ROW_HASH_FIXED,				/* uuid: 16 raw bytes */
	ROW_HASH_SEND				/* anything else: the type's send function */
} RowHashPath;

typedef struct RowHasher RowHasher;

/* The path of a (base) type. */
extern RowHashPath row_hash_path(Oid typid);

/* Writes the send form of a pass-by-value value of ROW_HASH_BYVAL_BE (typlen bytes) to out. */
extern void row_hash_byval_send(Datum value, int16 typlen, char *out);

/* A hasher of rows of tupdesc, allocated in mcxt; 42883 for a column without a send function. */
extern RowHasher *row_hasher_build(TupleDesc tupdesc, Oid tupType, int32 tupTypmod, MemoryContext mcxt);

/* Whether hashing may convert text to the client encoding (then run it in the database's). */
extern bool row_hasher_needs_encoding(RowHasher *rh);

/* The hash of one deformed row; the caller sees to the client encoding. */
extern uint64 row_hasher_hash(RowHasher *rh, Datum *values, bool *nulls);

#endif							/* STEEP_REPL_ROW_HASH_H */
