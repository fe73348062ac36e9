/*
 * row_hash.c
 *		steep_repl.row_hash(record) RETURNS bigint: a 64-bit hash of a row that two nodes agree
 *		on whenever their rows are equal, whatever the session's settings.
 *
 *		A hash of row::text is not that: the text form of timestamptz follows TimeZone and
 *		DateStyle, floats follow extra_float_digits, bytea follows bytea_output. The binary send
 *		form of a value depends on none of them, so each column is hashed in its send form, in
 *		column order, NULL distinct from every value. Text inside a send form is converted to the
 *		client encoding by pq_sendtext, so the hash is defined in the database's encoding: the
 *		client encoding is set to it for the call when they differ.
 *
 *		Overlap analysis and verification hash millions of rows, so the common types whose send
 *		form is their own bytes (integers, floats, text, uuid...) are hashed without calling the
 *		send function; the result is the same as through it.
 */
#include "steep_repl.h"
#include "compat.h"
#include "row_hash.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(steep_repl_row_hash);

typedef struct ColumnHasher
{
	RowHashPath path;
	int16		typlen;
	FmgrInfo	send;			/* ROW_HASH_SEND only */
} ColumnHasher;

/* Cached in fn_extra for the rowtype of the first call; rebuilt when the rowtype changes. */
struct RowHasher
{
	Oid			tupType;
	int32		tupTypmod;
	int			natts;
	bool		needsEncoding;	/* a ROW_HASH_SEND column may call pq_sendtext */
	ColumnHasher cols[FLEXIBLE_ARRAY_MEMBER];
};

/* Mixed in for a NULL so that it differs from every value, including an empty one. */
#define ROW_HASH_NULL	UINT64CONST(0x9e3779b97f4a7c15)
#define ROW_HASH_SEED	UINT64CONST(0x5354454550524550)	/* "STEEPREP" */

RowHashPath
row_hash_path(Oid typid)
{
	switch (typid)
	{
		case BOOLOID:
		case CHAROID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return ROW_HASH_BYVAL_BE;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return ROW_HASH_TEXT;
		case UUIDOID:
			return ROW_HASH_FIXED;
		default:
			return ROW_HASH_SEND;
	}
}

/* The send function of a type, or InvalidOid (getTypeBinaryOutputInfo's error names no column). */
static Oid
type_send_function(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Oid			send;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	send = ((Form_pg_type) GETSTRUCT(tup))->typsend;
	ReleaseSysCache(tup);
	return send;
}

RowHasher *
row_hasher_build(TupleDesc tupdesc, Oid tupType, int32 tupTypmod, MemoryContext mcxt)
{
	RowHasher  *rh;
	int			i;

	rh = MemoryContextAllocZero(mcxt,
								offsetof(RowHasher, cols) + sizeof(ColumnHasher) * tupdesc->natts);
	rh->tupType = tupType;
	rh->tupTypmod = tupTypmod;
	rh->natts = tupdesc->natts;
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		ColumnHasher *col = &rh->cols[i];
		Oid			base;
		Oid			sendfn;
		bool		isvarlena;

		if (att->attisdropped)
		{
			col->path = ROW_HASH_SKIP;
			continue;
		}
		/* A domain is sent as its base type. */
		base = getBaseType(att->atttypid);
		col->typlen = att->attlen;
		col->path = row_hash_path(base);
		if (col->path == ROW_HASH_BYVAL_BE && !att->attbyval)
			col->path = ROW_HASH_SEND;	/* 8-byte types on a build that passes them by reference */
		if (col->path != ROW_HASH_SEND)
			continue;
		if (!OidIsValid(type_send_function(base)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("column \"%s\" of type %s has no binary send function, so it cannot be hashed",
							NameStr(att->attname), format_type_be(att->atttypid)),
					 errhint("Leave the table out of the comparison, or change the column to a type with a send function.")));
		getTypeBinaryOutputInfo(att->atttypid, &sendfn, &isvarlena);
		fmgr_info_cxt(sendfn, &col->send, mcxt);
		rh->needsEncoding = true;
	}
	return rh;
}

bool
row_hasher_needs_encoding(RowHasher *rh)
{
	return rh->needsEncoding;
}

/* The send form of a pass-by-value fixed-width value: its typlen bytes in network order. */
void
row_hash_byval_send(Datum value, int16 typlen, char *out)
{
	union
	{
		uint8		u8;
		uint16		u16;
		uint32		u32;
		uint64		u64;
	}			be;

	switch (typlen)
	{
		case 1:
			be.u8 = DatumGetChar(value);
			break;
		case 2:
			be.u16 = pg_hton16(DatumGetInt16(value));
			break;
		case 4:
			be.u32 = pg_hton32(DatumGetInt32(value));
			break;
		case 8:
			be.u64 = pg_hton64(DatumGetInt64(value));
			break;
		default:
			elog(ERROR, "unexpected length %d of a pass-by-value type", typlen);
	}
	memcpy(out, &be, typlen);
}

static uint64
hash_byval(Datum value, int16 typlen, uint64 seed)
{
	char		be[8];

	row_hash_byval_send(value, typlen, be);
	return hash_bytes_extended((const unsigned char *) be, typlen, seed);
}

static uint64
hash_column(ColumnHasher *col, Datum value)
{
	switch (col->path)
	{
		case ROW_HASH_BYVAL_BE:
			return hash_byval(value, col->typlen, (uint64) col->typlen);
		case ROW_HASH_TEXT:
			{
				text	   *t = DatumGetTextPP(value);
				uint64		h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(t),
													VARSIZE_ANY_EXHDR(t), VARSIZE_ANY_EXHDR(t));

				if ((Pointer) t != DatumGetPointer(value))
					pfree(t);
				return h;
			}
		case ROW_HASH_FIXED:
			return hash_bytes_extended((const unsigned char *) DatumGetPointer(value), col->typlen, col->typlen);
		case ROW_HASH_SEND:
			{
				bytea	   *b = SendFunctionCall(&col->send, value);
				uint64		h = hash_bytes_extended((const unsigned char *) VARDATA(b),
													VARSIZE(b) - VARHDRSZ, VARSIZE(b) - VARHDRSZ);

				pfree(b);
				return h;
			}
		case ROW_HASH_SKIP:
			break;
	}
	return 0;
}

uint64
row_hasher_hash(RowHasher *rh, Datum *values, bool *nulls)
{
	uint64		h = ROW_HASH_SEED;
	int			i;

	for (i = 0; i < rh->natts; i++)
	{
		if (rh->cols[i].path == ROW_HASH_SKIP)
			continue;
		h = hash_combine64(h, nulls[i] ? ROW_HASH_NULL : hash_column(&rh->cols[i], values[i]));
	}
	return h;
}

Datum
steep_repl_row_hash(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = SR_GETARG_HEAPTUPLEHEADER(0);
	Oid			tupType = HeapTupleHeaderGetTypeId(rec);
	int32		tupTypmod = HeapTupleHeaderGetTypMod(rec);
	RowHasher  *rh = (RowHasher *) fcinfo->flinfo->fn_extra;
	TupleDesc	tupdesc;
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *nulls;
	uint64		h;
	int			client_encoding;

	tupdesc = lookup_rowtype_tupdesc(tupType, tupTypmod);
	if (rh == NULL || rh->tupType != tupType || rh->tupTypmod != tupTypmod || rh->natts != tupdesc->natts)
	{
		rh = row_hasher_build(tupdesc, tupType, tupTypmod, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = rh;
	}

	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	values = palloc(sizeof(Datum) * tupdesc->natts);
	nulls = palloc(sizeof(bool) * tupdesc->natts);
	heap_deform_tuple(&tuple, tupdesc, values, nulls);
	ReleaseTupleDesc(tupdesc);

	client_encoding = pg_get_client_encoding();
	if (!rh->needsEncoding || client_encoding == GetDatabaseEncoding())
		h = row_hasher_hash(rh, values, nulls);
	else
	{
		/* Setting the client encoding to the database's always succeeds and converts nothing. */
		SetClientEncoding(GetDatabaseEncoding());
		PG_TRY();
		{
			h = row_hasher_hash(rh, values, nulls);
		}
		PG_FINALLY();
		{
			SetClientEncoding(client_encoding);
		}
		PG_END_TRY();
	}

	pfree(values);
	pfree(nulls);
	PG_RETURN_INT64((int64) h);
}
