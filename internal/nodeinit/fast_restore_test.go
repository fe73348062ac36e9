package nodeinit

import (
	"reflect"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
)

// Partitions' indexes are re-created before the partitioned indexes that attach them (deeper
// levels first), and foreign keys after everything else.
func TestRestoreGroupsOrdersPartitionsBeforeTheirParentsAndForeignKeysLast(t *testing.T) {
	objs := []api.FastObject{
		{ID: 1}, {ID: 4}, // plain tables' and partitions' objects
		{ID: 7, Stage: 99}, // an intermediate partitioned table's index
		{ID: 2, Stage: 100}, {ID: 3, Stage: 100},
		{ID: 5, ForeignKey: true}, {ID: 6, ForeignKey: true},
	}
	want := [][]int64{{1, 4}, {7}, {2, 3}, {5, 6}}
	if got := restoreGroups(objs); !reflect.DeepEqual(got, want) {
		t.Fatalf("restoreGroups = %v, want %v", got, want)
	}
	if got := restoreGroups(nil); len(got) != 0 {
		t.Fatalf("restoreGroups(nil) = %v, want none", got)
	}
}
