-- What a fast init drops for the load (sql/53b_fast_init.sql records it in init_fast_objects),
-- and the statements that put each object back exactly as it was: the definitions of this
-- node's catalog with what they leave out (tablespace, a constraint index's storage parameters,
-- comments, CLUSTER ON, statistics targets) and, for a partitioned table, its partitions' own
-- indexes re-created first and attached, as pg_dump / pg_restore do.

-- What CREATE INDEX and ADD CONSTRAINT would not bring back of an index, as statements run after
-- them: its comment, CLUSTER ON, and the statistics targets of its (expression) columns.
CREATE FUNCTION steep_repl._fast_index_extras(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NULLIF(pg_catalog.concat_ws('; ',
    (SELECT pg_catalog.format('COMMENT ON INDEX %s IS %L', idx::pg_catalog.regclass, d.description) FROM pg_catalog.pg_description d
     WHERE d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objoid OPERATOR(pg_catalog.=) idx
       AND d.objsubid OPERATOR(pg_catalog.=) 0),
    (SELECT pg_catalog.format('ALTER TABLE %s CLUSTER ON %I', i.indrelid::pg_catalog.regclass, c.relname)
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
     WHERE i.indexrelid OPERATOR(pg_catalog.=) idx AND i.indisclustered),
    (SELECT pg_catalog.string_agg(pg_catalog.format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS %s', idx::pg_catalog.regclass, a.attnum,
                                                    a.attstattarget), '; ' ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) idx AND a.attstattarget OPERATOR(pg_catalog.>=) 0)), '');
$$;
COMMENT ON FUNCTION steep_repl._fast_index_extras(oid) IS
  'Internal: the statements that give a re-created index its comment, CLUSTER ON and per-column statistics targets (NULL when it has none).';

-- pg_get_indexdef has no tablespace and pg_get_constraintdef neither; the index goes back where
-- it was, and into the database's default when it was there (whatever default_tablespace says).
CREATE FUNCTION steep_repl._fast_tablespace_stmt(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SET LOCAL default_tablespace = %L', coalesce(t.spcname::text, ''))
  FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_tablespace t ON t.oid OPERATOR(pg_catalog.=) c.reltablespace
  WHERE c.oid OPERATOR(pg_catalog.=) idx;
$$;
COMMENT ON FUNCTION steep_repl._fast_tablespace_stmt(oid) IS
  'Internal: SET LOCAL default_tablespace to the tablespace of index idx ('''' for the database''s default), run before re-creating it (_exec_as undoes it after).';

-- A partitioned index is re-created ON ONLY its table, then its partitions' indexes (re-created
-- first, with their own names, tablespaces and comments) are attached to it, as pg_restore does.
CREATE FUNCTION steep_repl._fast_attach_stmts(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.string_agg(pg_catalog.format('ALTER INDEX %s ATTACH PARTITION %s', idx::pg_catalog.regclass, h.inhrelid::pg_catalog.regclass),
                               '; ' ORDER BY h.inhrelid)
  FROM pg_catalog.pg_inherits h WHERE h.inhparent OPERATOR(pg_catalog.=) idx;
$$;
COMMENT ON FUNCTION steep_repl._fast_attach_stmts(oid) IS
  'Internal: ALTER INDEX idx ATTACH PARTITION for each index of a partition attached to partitioned index idx (NULL for none).';

-- The index idx and, when it is partitioned, those of its partitions, each with its depth.
CREATE FUNCTION steep_repl._fast_index_tree(idx oid) RETURNS TABLE (relid oid, level integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT x.relid::oid, x.level FROM pg_catalog.pg_partition_tree(idx) x
  UNION ALL
  SELECT idx, 0 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(idx));
$$;
COMMENT ON FUNCTION steep_repl._fast_index_tree(oid) IS
  'Internal: index idx (level 0) and every index of a partition attached to it, directly or below, with its level.';

-- An index a fast init may drop: it and its partitions' are valid, none is a replica identity,
-- and the table's owner, who re-creates it, may create in its tablespace (else it stays).
CREATE FUNCTION steep_repl._fast_droppable_index(idx oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM steep_repl._fast_index_tree(idx) x
    JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) x.relid
    JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
    JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) i.indrelid
    WHERE i.indisreplident OR NOT i.indisvalid OR NOT i.indisready
       OR (ic.reltablespace OPERATOR(pg_catalog.<>) 0
           AND NOT pg_catalog.has_tablespace_privilege(t.relowner, ic.reltablespace, 'CREATE')));
$$;
COMMENT ON FUNCTION steep_repl._fast_droppable_index(oid) IS
  'Internal: whether a fast init may drop index idx: it and its partitions'' indexes are valid and ready, none is a replica identity, and each table''s owner may create in the index''s tablespace.';

-- pg_get_constraintdef leaves out the WITH (...) of a primary key's or unique constraint's
-- index: it goes in before DEFERRABLE / INITIALLY DEFERRED, which the definition ends with.
CREATE FUNCTION steep_repl._fast_constraint_def(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN c.contype OPERATOR(pg_catalog.=) ANY ('{p,u}') AND ic.reloptions IS NOT NULL
                   AND pg_catalog.right(d.def, pg_catalog.length(s.suffix)) OPERATOR(pg_catalog.=) s.suffix
              THEN pg_catalog.left(d.def, pg_catalog.length(d.def) OPERATOR(pg_catalog.-) pg_catalog.length(s.suffix))
                   OPERATOR(pg_catalog.||) ' WITH (' OPERATOR(pg_catalog.||)
                   (SELECT pg_catalog.string_agg(pg_catalog.format('%I=%L', pg_catalog.split_part(o, '=', 1),
                                                                  pg_catalog.substr(o, pg_catalog.strpos(o, '=') OPERATOR(pg_catalog.+) 1)), ', ')
                    FROM pg_catalog.unnest(ic.reloptions) o) OPERATOR(pg_catalog.||) ')' OPERATOR(pg_catalog.||) s.suffix
              ELSE d.def END
  FROM pg_catalog.pg_constraint c
  LEFT JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) c.conindid,
  LATERAL (SELECT pg_catalog.pg_get_constraintdef(c.oid) AS def) d,
  LATERAL (SELECT CASE WHEN c.condeferrable THEN ' DEFERRABLE' ELSE '' END
                  OPERATOR(pg_catalog.||) CASE WHEN c.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END AS suffix) s
  WHERE c.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_constraint_def(oid) IS
  'Internal: pg_get_constraintdef of constraint con, with the WITH (...) storage parameters of a primary key''s or unique constraint''s index, which it leaves out.';

-- The statements that re-create an index: in its tablespace, its definition (ON ONLY for a
-- partitioned one, whose partitions' are then attached), then its comment, CLUSTER ON and
-- statistics targets. Each name is quoted from this node's catalog (regclass, %I, %L).
CREATE FUNCTION steep_repl._fast_index_ddl(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.concat_ws('; ', steep_repl._fast_tablespace_stmt(idx), pg_catalog.pg_get_indexdef(idx),
                              steep_repl._fast_attach_stmts(idx), steep_repl._fast_index_extras(idx));
$$;
COMMENT ON FUNCTION steep_repl._fast_index_ddl(oid) IS
  'Internal: the statements that re-create index idx as it is: tablespace, definition, attached partitions'' indexes, comment, CLUSTER ON, statistics targets.';

-- A constraint's own comment, and those of its index with CLUSTER ON and statistics targets.
CREATE FUNCTION steep_repl._fast_constraint_extras(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NULLIF(pg_catalog.concat_ws('; ',
    (SELECT pg_catalog.format('COMMENT ON CONSTRAINT %I ON %s IS %L', c.conname, c.conrelid::pg_catalog.regclass, d.description)
     FROM pg_catalog.pg_description d
     WHERE d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objoid OPERATOR(pg_catalog.=) c.oid
       AND d.objsubid OPERATOR(pg_catalog.=) 0),
    CASE WHEN c.contype OPERATOR(pg_catalog.<>) 'f' THEN steep_repl._fast_index_extras(c.conindid) END), '')
  FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_constraint_extras(oid) IS
  'Internal: the statements that give a re-created constraint its comment and its index''s comment, CLUSTER ON and statistics targets (NULL when none).';

-- A partitioned table's unique, primary key or exclusion constraint is added to it as it was
-- first made, recursing: a partition's own constraint (made on the partition, then attached:
-- connoinherit) is re-created first and attached by the recursion again; the recursion makes the
-- others, which then get back their names (should PostgreSQL choose others), comments and
-- statistics targets. Only one level of partitions (see _fast_droppable_constraint).
CREATE FUNCTION steep_repl._fast_partition_constraints(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NULLIF(pg_catalog.concat_ws('; ',
    'DO ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal(pg_catalog.format(
      'DECLARE r record; BEGIN FOR r IN SELECT c.conindid::regclass AS idx, w.name FROM (VALUES %s) w(rel, name) '
      'JOIN pg_constraint c ON c.conrelid = w.rel::regclass AND c.conparentid = '
      '(SELECT p.oid FROM pg_constraint p WHERE p.conrelid = %L::regclass AND p.conname = %L) WHERE c.conname <> w.name '
      'LOOP EXECUTE format(''ALTER INDEX %%s RENAME TO %%I'', r.idx, r.name); END LOOP; END',
      pg_catalog.string_agg(pg_catalog.format('(%L, %L)', ch.conrelid::pg_catalog.regclass::text, ch.conname), ', ' ORDER BY ch.conname),
      top.conrelid::pg_catalog.regclass::text, top.conname)),
    pg_catalog.string_agg(steep_repl._fast_constraint_extras(ch.oid), '; ' ORDER BY ch.conname)), '')
  FROM pg_catalog.pg_constraint top JOIN pg_catalog.pg_constraint ch ON ch.conparentid OPERATOR(pg_catalog.=) top.oid
  WHERE top.oid OPERATOR(pg_catalog.=) con AND NOT ch.connoinherit
  GROUP BY top.conrelid, top.conname;
$$;
COMMENT ON FUNCTION steep_repl._fast_partition_constraints(oid) IS
  'Internal: after a partitioned constraint is re-created recursing, the statements that give the partitions'' constraints it made their recorded names (a DO block renaming their indexes where PostgreSQL chose others), comments and statistics targets.';

-- A partitioned constraint a fast init may drop: its partitions are tables (no deeper level),
-- and those the recursion makes have their index where it puts them (the partitioned index's
-- tablespace and storage parameters).
CREATE FUNCTION steep_repl._fast_droppable_constraint(con oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._fast_droppable_index(top.conindid) AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_constraint ch
    JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) ch.conrelid
    JOIN pg_catalog.pg_class ci ON ci.oid OPERATOR(pg_catalog.=) ch.conindid
    WHERE ch.conparentid OPERATOR(pg_catalog.=) top.oid
      AND (t.relkind OPERATOR(pg_catalog.<>) 'r'
           OR (NOT ch.connoinherit AND (ci.reltablespace OPERATOR(pg_catalog.<>) ti.reltablespace
                                        OR ci.reloptions IS DISTINCT FROM ti.reloptions))))
  FROM pg_catalog.pg_constraint top JOIN pg_catalog.pg_class ti ON ti.oid OPERATOR(pg_catalog.=) top.conindid
  WHERE top.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_droppable_constraint(oid) IS
  'Internal: whether a fast init may drop unique, primary key or exclusion constraint con: its index is droppable, and when partitioned its partitions are tables and the partitions'' constraints the recursion re-creates had their index in the partitioned index''s tablespace with its storage parameters.';

-- The statements that re-create a constraint as it is: its index's tablespace, the definition
-- (a foreign key or a partitioned one recursing), then its partitions' (above), its comments,
-- CLUSTER ON and statistics targets.
CREATE FUNCTION steep_repl._fast_constraint_ddl(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.concat_ws('; ',
    CASE WHEN c.contype OPERATOR(pg_catalog.<>) 'f' THEN steep_repl._fast_tablespace_stmt(c.conindid) END,
    pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::pg_catalog.regclass, c.conname, steep_repl._fast_constraint_def(c.oid)),
    CASE WHEN c.contype OPERATOR(pg_catalog.<>) 'f' THEN steep_repl._fast_partition_constraints(c.oid) END,
    steep_repl._fast_constraint_extras(c.oid))
  FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_constraint_ddl(oid) IS
  'Internal: the statements that re-create constraint con as it is: its index''s tablespace and storage parameters, the definition, its partitions'' constraints'' names and comments, its comment and its index''s, CLUSTER ON, statistics targets.';

-- The objects of the init's tables that the load goes without (see init_fast_drop_objects), each
-- with the statements that re-create it, and the statement that drops it (NULL for a partition's
-- index or constraint: it goes with the partitioned one it is attached to).
CREATE FUNCTION steep_repl._fast_droppable(node text)
RETURNS TABLE (relid oid, kind text, name text, ddl text, drop_stmt text, stage integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH leaves AS (SELECT t.relid FROM steep_repl.init_tables t WHERE t.node OPERATOR(pg_catalog.=) _fast_droppable.node),
  -- A partitioned table (at any level) every partition of which is copied.
  parted AS (SELECT p.oid AS relid FROM pg_catalog.pg_class p
             WHERE p.relkind OPERATOR(pg_catalog.=) 'p'
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(p.oid) x WHERE x.isleaf)
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(p.oid) x
                               WHERE x.isleaf AND x.relid NOT IN (SELECT l.relid FROM leaves l))),
  scope AS (SELECT l.relid FROM leaves l UNION ALL SELECT p.relid FROM parted p),
  threshold AS (SELECT coalesce((p.options->>'split_threshold')::bigint, 67108864) AS bytes
                FROM steep_repl.init_progress p WHERE p.node OPERATOR(pg_catalog.=) _fast_droppable.node),
  -- Tables whose primary key goes too: larger than split_threshold (a partitioned one: its partitions together).
  large AS (SELECT s.relid FROM scope s, threshold th
            WHERE (SELECT pg_catalog.sum(t.source_bytes) FROM steep_repl.init_tables t
                   WHERE t.node OPERATOR(pg_catalog.=) _fast_droppable.node
                     AND (t.relid OPERATOR(pg_catalog.=) s.relid
                          OR t.relid IN (SELECT x.relid FROM pg_catalog.pg_partition_tree(s.relid) x))) OPERATOR(pg_catalog.>) th.bytes),
  cons AS (SELECT c.oid, c.contype, c.conindid FROM pg_catalog.pg_constraint c
           WHERE c.conparentid OPERATOR(pg_catalog.=) 0 AND (
                 (c.contype OPERATOR(pg_catalog.=) 'f' AND (c.conrelid IN (SELECT s.relid FROM scope s) OR c.confrelid IN (SELECT s.relid FROM scope s)))
              OR (c.contype OPERATOR(pg_catalog.=) ANY ('{u,x}') AND c.conrelid IN (SELECT s.relid FROM scope s) AND steep_repl._fast_droppable_constraint(c.oid))
              OR (c.contype OPERATOR(pg_catalog.=) 'p' AND c.conrelid IN (SELECT l.relid FROM large l) AND steep_repl._fast_droppable_constraint(c.oid)))),
  idx AS (SELECT i.indexrelid FROM pg_catalog.pg_index i
          WHERE i.indrelid IN (SELECT s.relid FROM scope s)
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid OPERATOR(pg_catalog.=) i.indexrelid
                              AND c.conrelid OPERATOR(pg_catalog.=) i.indrelid)
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid OPERATOR(pg_catalog.=) i.indexrelid)
            AND steep_repl._fast_droppable_index(i.indexrelid))
  SELECT c.conrelid, 'foreign_key', c.conname::text, steep_repl._fast_constraint_ddl(c.oid),
         pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::pg_catalog.regclass, c.conname), 0
  FROM cons f JOIN pg_catalog.pg_constraint c ON c.oid OPERATOR(pg_catalog.=) f.oid WHERE f.contype OPERATOR(pg_catalog.=) 'f'
  UNION ALL
  -- A unique, primary key or exclusion constraint; a partitioned one's partitions' own ones
  -- (made on the partition and attached) are re-created first.
  SELECT c.conrelid, 'constraint', c.conname::text, steep_repl._fast_constraint_ddl(c.oid),
         pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::pg_catalog.regclass, c.conname),
         CASE WHEN r.relkind OPERATOR(pg_catalog.=) 'p' THEN 100 ELSE 0 END
  FROM cons f JOIN pg_catalog.pg_constraint c ON c.oid OPERATOR(pg_catalog.=) f.oid
  JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.conrelid
  WHERE f.contype OPERATOR(pg_catalog.<>) 'f'
  UNION ALL
  SELECT ch.conrelid, 'constraint', ch.conname::text, steep_repl._fast_constraint_ddl(ch.oid), NULL, 0
  FROM cons f JOIN pg_catalog.pg_constraint ch ON ch.conparentid OPERATOR(pg_catalog.=) f.oid
  WHERE f.contype OPERATOR(pg_catalog.<>) 'f' AND ch.connoinherit
  UNION ALL
  SELECT i.indrelid, 'index', ic.relname::text, steep_repl._fast_index_ddl(x.relid),
         CASE WHEN x.level OPERATOR(pg_catalog.=) 0 THEN pg_catalog.format('DROP INDEX %s', x.relid::pg_catalog.regclass) END,
         CASE WHEN ic.relkind OPERATOR(pg_catalog.=) 'I' THEN 100 OPERATOR(pg_catalog.-) x.level ELSE 0 END
  FROM idx, steep_repl._fast_index_tree(idx.indexrelid) x
  JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) x.relid
  JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) x.relid;
$$;
COMMENT ON FUNCTION steep_repl._fast_droppable(text) IS
  'Internal: the indexes and constraints a fast init of node drops (see init_fast_drop_objects), each with its table, kind, name, the statements that re-create it, the one that drops it (NULL for a partition''s, dropped with its partitioned one) and its restore stage.';

-- Record, then drop, the secondary indexes and the unique, exclusion and foreign-key constraints
-- of the init's tables (and foreign keys of other tables that reference them), and the primary
-- key of a table larger than split_threshold on the source (a small one keeps it; a partitioned
-- one counts its partitions together): the replica identity index, CHECK and NOT NULL stay, and
-- so does an invalid index or one in a tablespace its owner may not create in. A partitioned
-- table all of whose partitions are copied has its own dropped with its partitions' attached
-- ones, which are recorded each with its own name and properties and re-created first.
-- Everything is recorded before anything is dropped (the definitions are read from the catalog).
CREATE FUNCTION steep_repl.init_fast_drop_objects(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  v_drops text[] := '{}';
  v_rels oid[] := '{}';
BEGIN
  PERFORM 1 FROM steep_repl.nodes nd WHERE nd.name = init_fast_drop_objects.node FOR UPDATE;
  FOR r IN SELECT d.* FROM steep_repl._fast_droppable(node) d
           ORDER BY CASE d.kind WHEN 'foreign_key' THEN 0 WHEN 'constraint' THEN 1 ELSE 2 END, d.stage DESC, d.name LOOP
    INSERT INTO steep_repl.init_fast_objects (node, relid, kind, name, ddl, weight, stage)
    VALUES (init_fast_drop_objects.node, r.relid, r.kind, r.name, r.ddl,
            coalesce((SELECT t.source_bytes FROM steep_repl.init_tables t WHERE t.node = init_fast_drop_objects.node AND t.relid = r.relid),
                     (SELECT pg_catalog.sum(t.source_bytes)::bigint FROM steep_repl.init_tables t
                      WHERE t.node = init_fast_drop_objects.node AND t.relid IN (SELECT x.relid FROM pg_catalog.pg_partition_tree(r.relid) x)),
                     pg_catalog.pg_relation_size(r.relid)), r.stage);
    IF r.drop_stmt IS NOT NULL THEN
      v_drops := v_drops || r.drop_stmt;
      v_rels := v_rels || r.relid;
    END IF;
  END LOOP;
  FOR i IN 1 .. pg_catalog.cardinality(v_drops) LOOP
    PERFORM steep_repl._exec_as_owner(v_rels[i]::regclass, v_drops[i]);
  END LOOP;
  RETURN (SELECT pg_catalog.count(*) FROM steep_repl.init_fast_objects f WHERE f.node = init_fast_drop_objects.node);
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_drop_objects(text) IS
  'Sidecar step of init.fast: records in init_fast_objects (with the statements that re-create each as it is: tablespace, storage parameters, comments, CLUSTER ON, statistics targets, partitions'' indexes attached), then drops as the owner, the secondary indexes and unique/exclusion/foreign-key constraints of the init''s tables (and foreign keys referencing them), and the primary key of tables larger than split_threshold. Returns how many are recorded.';
