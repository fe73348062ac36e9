package api

import "testing"

func TestQuoteLiteralMatchesQuoteLiteralOfPostgreSQL(t *testing.T) {
	for in, want := range map[string]string{
		"host=a dbname=b":        `'host=a dbname=b'`,
		"password='it''s'":       `'password=''it''''s'''`,
		`password=a\b`:           `E'password=a\\b'`,
		`it's a \ backslash`:     `E'it''s a \\ backslash'`,
		"":                       `''`,
		"00000003-00000002-1":    `'00000003-00000002-1'`,
		"slot\"with\"dquotes":    `'slot"with"dquotes'`,
		"snap_1 ; DROP TABLE x;": `'snap_1 ; DROP TABLE x;'`,
	} {
		if got := quoteLiteral(in); got != want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCopyStatementsQuoteNamesAndFollowTheServerVersion(t *testing.T) {
	cols := []string{"id", `we"ird`}
	if got := copyToSQL("public", "Big T", cols); got != `COPY "public"."Big T" ("id", "we""ird") TO STDOUT` {
		t.Errorf("copyToSQL = %s", got)
	}
	for _, c := range []struct {
		tol  int64
		ver  int
		want string
	}{
		{0, 180000, `COPY "s"."t" ("id", "we""ird") FROM STDIN`},
		{5, 180000, `COPY "s"."t" ("id", "we""ird") FROM STDIN WITH (ON_ERROR ignore, REJECT_LIMIT 5)`},
		{5, 170004, `COPY "s"."t" ("id", "we""ird") FROM STDIN WITH (ON_ERROR ignore)`},
		{5, 160000, `COPY "s"."t" ("id", "we""ird") FROM STDIN`},
	} {
		if got := copyFromSQL("s", "t", cols, c.tol, c.ver); got != c.want {
			t.Errorf("copyFromSQL(tolerance %d, %d) = %s", c.tol, c.ver, got)
		}
	}
}

func TestSubscriptionAndPublicationStatementsQuoteEveryName(t *testing.T) {
	got := createSubscriptionSQL(Subscription{Name: "sub b", Conninfo: "host=x password='p'", Publication: "pub",
		Slot: "slot_1", CopyData: true, CreateSlot: true}, 18)
	want := `CREATE SUBSCRIPTION "sub b" CONNECTION 'host=x password=''p''' PUBLICATION "pub" WITH (copy_data = true, create_slot = true, slot_name = 'slot_1', enabled = true, origin = none, streaming = parallel)`
	if got != want {
		t.Errorf("createSubscriptionSQL = %s", got)
	}
	got = createSubscriptionSQL(Subscription{Name: "s", Conninfo: "c", Publication: "p", Slot: "x", Disabled: true}, 17)
	want = `CREATE SUBSCRIPTION "s" CONNECTION 'c' PUBLICATION "p" WITH (copy_data = false, create_slot = false, slot_name = 'x', enabled = false, origin = none, streaming = parallel)`
	if got != want {
		t.Errorf("createSubscriptionSQL (disabled, existing slot) = %s", got)
	}
	list, err := tableList([]TableName{{"public", "a"}, {"Odd Schema", `t"q`}})
	if err != nil || list != `"public"."a", "Odd Schema"."t""q"` {
		t.Errorf("tableList = %s, %v", list, err)
	}
	if _, err := tableList(nil); err == nil {
		t.Error("a publication of no table must be refused")
	}
}

func TestSubscriptionStreamsInParallelFrom16AndNamesNoStreamingBefore(t *testing.T) {
	s := Subscription{Name: "s", Conninfo: "c", Publication: "p", Slot: "x"}
	for major, want := range map[int]string{14: "", 15: "", 16: ", streaming = parallel", 17: ", streaming = parallel", 18: ", streaming = parallel"} {
		full := `CREATE SUBSCRIPTION "s" CONNECTION 'c' PUBLICATION "p" WITH (copy_data = false, create_slot = false, slot_name = 'x', enabled = true, origin = none` + want + ")"
		if got := createSubscriptionSQL(s, major); got != full {
			t.Errorf("major %d: %s, want %s", major, got, full)
		}
	}
}
