-- name: SlotCopies
SELECT slot_name::text, active, confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots
WHERE starts_with(slot_name::text, $1 || '_') ORDER BY slot_name;

-- name: SubscriptionUsesSlot
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription WHERE subslotname = $1);
