/*
 * key_hash_chunks.c
 *		steep_repl.key_hash_chunks(rel regclass) RETURNS SETOF bytea: every row's primary key and
 *		row hash, packed, for the streaming overlap analysis (internal/overlap).
 *
 *		Each chunk is a run of rows, each its key columns' send forms (a fixed-length one raw, any
 *		other with a 4-byte length prefix) then its 8-byte row_hash, in physical order. That is
 *		what the SQL form of the stream builds with string_agg over 32-block TID ranges, at the
 *		cost of one plain sequential scan: measured, the TID range scans and the per-row send
 *		and concatenation calls of the SQL form took 1.7x the time of the server's own hash floor
 *		(COPY (SELECT pk, row_hash(t) FROM t)), this function about the floor.
 *
 *		The scan is not synchronized with other scans: both nodes must start at block 0 so that
 *		equal rows come in the same order and the join holds few unmatched rows.
 */
#include "steep_repl.h"
#include "row_hash.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "port/pg_bswap.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(steep_repl_key_hash_chunks);

/* A chunk ends after the row that takes it past this size. */
#define CHUNK_BYTES 65536

typedef struct KeyColumn
{
	AttrNumber	attnum;
	int16		typlen;
	bool		byvalBE;		/* sent as its own big-endian bytes */
	bool		prefixed;		/* not fixed-length: a 4-byte length first */
	FmgrInfo	send;
} KeyColumn;

typedef struct ChunkScan
{
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	TupleTableSlot *slot;
	RowHasher  *hasher;
	int			nkeys;
	KeyColumn  *keys;
	MemoryContext rowcxt;		/* reset per row: send forms */
	StringInfoData buf;
	bool		open;
} ChunkScan;

/* The primary key's columns of rel, in key order; 55000 when it has none. */
static int
primary_key_columns(Relation rel, AttrNumber **attnums)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	int			n = 0;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		index = (Form_pg_index) GETSTRUCT(tup);
		if (index->indisprimary)
		{
			n = index->indnkeyatts;
			*attnums = palloc(sizeof(AttrNumber) * n);
			for (int i = 0; i < n; i++)
				(*attnums)[i] = index->indkey.values[i];
		}
		ReleaseSysCache(tup);
		if (n > 0)
			break;
	}
	list_free(indexes);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has no primary key", RelationGetRelationName(rel)),
				 errhint("Rows are compared by primary key: add one, or leave the table out.")));
	return n;
}

/* How each key column is sent, as steep_repl.overlap_scope describes it to the sidecar. */
static KeyColumn *
key_columns(Relation rel, int *nkeys, MemoryContext mcxt)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber *attnums;
	KeyColumn  *keys;
	int			n = primary_key_columns(rel, &attnums);

	keys = MemoryContextAllocZero(mcxt, sizeof(KeyColumn) * n);
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attnums[i] - 1);
		Oid			sendfn;
		bool		isvarlena;

		keys[i].attnum = attnums[i];
		keys[i].typlen = att->attlen;
		/* name has a fixed length on disk but sends its text */
		keys[i].prefixed = att->attlen <= 0 || att->atttypid == NAMEOID;
		keys[i].byvalBE = att->attbyval && row_hash_path(getBaseType(att->atttypid)) == ROW_HASH_BYVAL_BE;
		getTypeBinaryOutputInfo(att->atttypid, &sendfn, &isvarlena);
		fmgr_info_cxt(sendfn, &keys[i].send, mcxt);
	}
	*nkeys = n;
	return keys;
}

/* Appends the row in cs->slot: its key's send forms, then its row hash. */
static void
append_row(ChunkScan *cs)
{
	Datum	   *values = cs->slot->tts_values;
	bool	   *nulls = cs->slot->tts_isnull;
	MemoryContext old = MemoryContextSwitchTo(cs->rowcxt);
	uint64		h;

	slot_getallattrs(cs->slot);
	for (int i = 0; i < cs->nkeys; i++)
	{
		KeyColumn  *k = &cs->keys[i];
		int			a = k->attnum - 1;

		if (nulls[a])
			elog(ERROR, "a NULL in primary key column %d", k->attnum);
		if (k->byvalBE)
		{
			char		be[8];

			row_hash_byval_send(values[a], k->typlen, be);
			appendBinaryStringInfo(&cs->buf, be, k->typlen);
		}
		else
		{
			bytea	   *b = SendFunctionCall(&k->send, values[a]);
			uint32		len = VARSIZE(b) - VARHDRSZ;

			if (k->prefixed)
			{
				uint32		nlen = pg_hton32(len);

				appendBinaryStringInfo(&cs->buf, (const char *) &nlen, 4);
			}
			appendBinaryStringInfo(&cs->buf, VARDATA(b), len);
		}
	}
	h = pg_hton64(row_hasher_hash(cs->hasher, values, nulls));
	appendBinaryStringInfo(&cs->buf, (const char *) &h, 8);
	MemoryContextSwitchTo(old);
	MemoryContextReset(cs->rowcxt);
}

/* Fills cs->buf with the next rows; false at the end of the table. */
static bool
fill_chunk(ChunkScan *cs)
{
	bool		more = true;

	resetStringInfo(&cs->buf);
	while (cs->buf.len < CHUNK_BYTES)
	{
		CHECK_FOR_INTERRUPTS();
		if (!table_scan_getnextslot(cs->scan, ForwardScanDirection, cs->slot))
		{
			more = false;
			break;
		}
		append_row(cs);
	}
	return more || cs->buf.len > 0;
}

/* Send forms convert text to the client encoding: hash in the database's, as row_hash does. */
static bool
fill_chunk_in_database_encoding(ChunkScan *cs)
{
	int			client_encoding = pg_get_client_encoding();
	bool		got;

	if (client_encoding == GetDatabaseEncoding())
		return fill_chunk(cs);
	SetClientEncoding(GetDatabaseEncoding());
	PG_TRY();
	{
		got = fill_chunk(cs);
	}
	PG_FINALLY();
	{
		SetClientEncoding(client_encoding);
	}
	PG_END_TRY();
	return got;
}

static void
end_scan(ChunkScan *cs)
{
	if (!cs->open)
		return;
	cs->open = false;
	table_endscan(cs->scan);
	ExecDropSingleTupleTableSlot(cs->slot);
	UnregisterSnapshot(cs->snapshot);
	table_close(cs->rel, NoLock);	/* the lock is held to the end of the transaction */
}

/* The query stopped reading (a LIMIT, an error): end the scan. */
static void
end_scan_callback(Datum arg)
{
	end_scan((ChunkScan *) DatumGetPointer(arg));
}

/* Refuses what the caller could not read in full with a SELECT of every row. */
static void
check_readable(Oid relid)
{
	AclResult	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(relid));
	if (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row-level security applies to table %s for role %s", get_rel_name(relid),
						GetUserNameFromId(GetUserId(), false)),
				 errhint("Compare as the table's owner or as a role with BYPASSRLS: the comparison needs every row.")));
}

static ChunkScan *
begin_scan(FunctionCallInfo fcinfo, Oid relid, MemoryContext mcxt)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ChunkScan  *cs = MemoryContextAllocZero(mcxt, sizeof(ChunkScan));
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	TupleDesc	desc;

	if (get_rel_relkind(relid) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errhint("Compare the partitions of a partitioned table one by one.")));
	check_readable(relid);
	cs->rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(cs->rel);
	cs->keys = key_columns(cs->rel, &cs->nkeys, mcxt);
	cs->hasher = row_hasher_build(desc, desc->tdtypeid, desc->tdtypmod, mcxt);
	cs->rowcxt = AllocSetContextCreate(mcxt, "key_hash_chunks row", ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&cs->buf);
	enlargeStringInfo(&cs->buf, CHUNK_BYTES + 1024);
	cs->snapshot = RegisterSnapshot(GetActiveSnapshot());
	cs->slot = table_slot_create(cs->rel, NULL);
	cs->scan = table_beginscan_strat(cs->rel, cs->snapshot, 0, NULL, true, false);
	cs->open = true;
	if (rsinfo && IsA(rsinfo, ReturnSetInfo) && rsinfo->econtext)
		RegisterExprContextCallback(rsinfo->econtext, end_scan_callback, PointerGetDatum(cs));
	MemoryContextSwitchTo(old);
	return cs;
}

Datum
steep_repl_key_hash_chunks(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	ChunkScan  *cs;

	if (SRF_IS_FIRSTCALL())
	{
		funcctx = SRF_FIRSTCALL_INIT();
		funcctx->user_fctx = begin_scan(fcinfo, PG_GETARG_OID(0), funcctx->multi_call_memory_ctx);
	}
	funcctx = SRF_PERCALL_SETUP();
	cs = (ChunkScan *) funcctx->user_fctx;
	if (cs->open && fill_chunk_in_database_encoding(cs))
	{
		bytea	   *chunk = palloc(VARHDRSZ + cs->buf.len);

		SET_VARSIZE(chunk, VARHDRSZ + cs->buf.len);
		memcpy(VARDATA(chunk), cs->buf.data, cs->buf.len);
		SRF_RETURN_NEXT(funcctx, PointerGetDatum(chunk));
	}
	end_scan(cs);
	SRF_RETURN_DONE(funcctx);
}
