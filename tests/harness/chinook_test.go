package harness

import (
	"context"
	"testing"
)

func TestLoadChinook(t *testing.T) {
	t.Parallel()
	n := Start(t, testOptions())
	LoadChinook(t, n, "chinook")
	counts, err := chinookCounts(context.Background(), t, n, "chinook")
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != ChinookTables {
		t.Fatalf("%d tables: %v", len(counts), counts)
	}
	for table, want := range map[string]int64{"track": 3503, "artist": 275, "album": 347, "genre": 25} {
		if counts[table] != want {
			t.Errorf("%s: %d rows, want %d", table, counts[table], want)
		}
	}
}
