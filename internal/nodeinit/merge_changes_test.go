package nodeinit

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
)

// pgoutput protocol 1 messages, built by hand for changeSet.

type col struct {
	name string
	key  bool
	oid  uint32
}

func relationMsg(id uint32, ns, name string, ident byte, cols ...col) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(append(b, ns...), 0)
	b = append(append(b, name...), 0)
	b = append(b, ident)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		flag := byte(0)
		if c.key {
			flag = 1
		}
		b = append(b, flag)
		b = append(append(b, c.name...), 0)
		b = binary.BigEndian.AppendUint32(b, c.oid)
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

// tuple: "n" is NULL, "\x00u" an unchanged toasted value, anything else text.
func tuple(vals ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case "n":
			b = append(b, 'n')
		case "\x00u":
			b = append(b, 'u')
		default:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

func insertMsg(id uint32, vals ...string) []byte {
	return append(append(binary.BigEndian.AppendUint32([]byte{'I'}, id), 'N'), tuple(vals...)...)
}

func updateMsg(id uint32, old []string, vals ...string) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'U'}, id)
	if old != nil {
		b = append(append(b, 'K'), tuple(old...)...)
	}
	return append(append(b, 'N'), tuple(vals...)...)
}

func deleteMsg(id uint32, vals ...string) []byte {
	return append(append(binary.BigEndian.AppendUint32([]byte{'D'}, id), 'K'), tuple(vals...)...)
}

func truncateMsg(ids ...uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'T'}, uint32(len(ids)))
	b = append(b, 0)
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	return b
}

func feed(t *testing.T, c *changeSet, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		if err := c.add(m); err != nil {
			t.Fatal(err)
		}
	}
}

func keysText(r recheckSet, table string) string {
	var out []string
	for _, k := range r.keys[table] {
		out = append(out, string(k))
	}
	return strings.Join(out, " ")
}

func TestChangeSetCollectsInsertedUpdatedReKeyedAndDeletedKeysOnce(t *testing.T) {
	a, b := newChangeSet(maxChangedKeys), newChangeSet(maxChangedKeys)
	ev := relationMsg(16400, "public", "ev", 'd', col{"k", true, 25}, col{"at", true, 1184}, col{"v", false, 23})
	feed(t, a, ev,
		insertMsg(16400, "x", "2026-01-01 00:00:00+00", "1"),
		updateMsg(16400, nil, "x", "2026-01-01 00:00:00+00", "2"),                                          // same key again
		updateMsg(16400, []string{"y", "2026-01-02 00:00:00+00", "n"}, "z", "2026-01-03 00:00:00+00", "3"), // key changed: both
		deleteMsg(16400, "w", "2026-01-04 00:00:00+00", "n"))
	feed(t, b, relationMsg(9, "public", "ev", 'd', col{"k", true, 25}, col{"at", true, 1184}, col{"v", false, 23}),
		deleteMsg(9, "x", "2026-01-01 00:00:00+00", "n")) // the same key on the other node
	r := recheck(nil, a, b)
	want := `{"at":"2026-01-01 00:00:00+00","k":"x"} {"at":"2026-01-02 00:00:00+00","k":"y"} ` +
		`{"at":"2026-01-03 00:00:00+00","k":"z"} {"at":"2026-01-04 00:00:00+00","k":"w"}`
	if got := keysText(r, "public.ev"); got != want {
		t.Fatalf("keys\n got  %s\n want %s", got, want)
	}
	if r.changed != 5 || r.rechecked != 4 || len(r.whole) != 0 {
		t.Fatalf("changed %d, rechecked %d, whole %v; want 5, 4, none", r.changed, r.rechecked, r.whole)
	}
}

func TestChangeSetReplansWholeWhatItCannotNameByKey(t *testing.T) {
	c := newChangeSet(3)
	feed(t, c,
		relationMsg(1, "public", "truncated", 'd', col{"id", true, 20}),
		relationMsg(2, "public", "jsonkey", 'd', col{"doc", true, 3802}),
		relationMsg(3, "public", "byindex", 'i', col{"code", true, 25}),
		relationMsg(4, "public", "toasted", 'f', col{"id", true, 20}, col{"body", true, 25}),
		relationMsg(5, "public", "busy", 'd', col{"id", true, 20}),
		relationMsg(6, "public", "fine", 'd', col{"id", true, 20}),
		insertMsg(1, "1"), truncateMsg(1),
		insertMsg(2, `{"a": 1}`),
		insertMsg(3, "c"),
		updateMsg(4, nil, "7", "\x00u"),
		insertMsg(5, "1"), insertMsg(5, "2"), insertMsg(5, "3"), insertMsg(5, "4"),
		insertMsg(6, "1"))
	r := recheck(nil, c)
	for table, why := range map[string]string{"public.truncated": "truncated", "public.jsonkey": "json or jsonb",
		"public.byindex": "replica identity", "public.toasted": "not in the change", "public.busy": "more than 3 keys"} {
		if !strings.Contains(r.whole[table], why) {
			t.Errorf("%s: whole %q, want it to say %q", table, r.whole[table], why)
		}
		if keys, ok := r.keys[table]; !ok || keys != nil {
			t.Errorf("%s: keys %v, want nil (whole)", table, keys)
		}
	}
	if got := keysText(r, "public.fine"); got != `{"id":"1"}` || r.rechecked != 1 {
		t.Errorf("public.fine: keys %s, rechecked %d", got, r.rechecked)
	}
	if err := c.add(insertMsg(99, "1")); err == nil {
		t.Errorf("a change of a relation never described was taken")
	}
}

func TestKeyedRecheckOnlyWhereItCostsLessThanAWholePass(t *testing.T) {
	c := newChangeSet(maxChangedKeys)
	feed(t, c, relationMsg(1, "public", "t", 'd', col{"id", true, 20}))
	for i := 0; i < 2001; i++ {
		feed(t, c, insertMsg(1, strconv.Itoa(i)))
	}
	n := len(c.keys["public.t"])
	if r := recheck(map[string]int64{"public.t": int64(n) * keyedRatio}, c); r.keys["public.t"] == nil {
		t.Errorf("%d keys of a %d-row table re-planned whole: %v", n, n*keyedRatio, r.whole)
	}
	if r := recheck(map[string]int64{"public.t": int64(n)*keyedRatio - 1}, c); r.keys["public.t"] != nil {
		t.Errorf("%d keys of a %d-row table re-checked by key", n, n*keyedRatio-1)
	}
	if r := recheck(map[string]int64{"public.t": -1}, c); r.keys["public.t"] == nil {
		t.Errorf("a table of unknown size re-planned whole")
	}
	if !keyedCheaper(minKeyed, 0) {
		t.Errorf("%d keys of an empty-looking table not re-checked by key", minKeyed)
	}
}
