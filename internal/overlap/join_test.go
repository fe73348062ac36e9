package overlap

import (
	"encoding/binary"
	"math/rand/v2"
	"sort"
	"testing"
)

func key(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// After a row only one side has, the streams fall back into step: equal rows are compared head
// to head and the unmatched maps hold only the rows out of step, not the table.
func TestJoinerFallsBackIntoStepAfterRowsOneSideLacks(t *testing.T) {
	var local, peer []row
	for i := 0; i < 10000; i++ {
		if i != 10 { // only the peer has row 10
			local = append(local, row{key(i), int64(i)})
		}
		if i != 5000 { // only this node has row 5000
			peer = append(peer, row{key(i), int64(i)})
		}
	}
	j := newJoiner()
	largest := 0
	for off := 0; off < len(peer); off += 100 {
		j.add(0, local[off:min(off+100, len(local))])
		j.add(1, peer[off:min(off+100, len(peer))])
		largest = max(largest, len(j.unmatched[0])+len(j.unmatched[1]))
	}
	diffs := j.finish()
	if j.identical != 9998 || len(diffs) != 2 {
		t.Fatalf("identical %d, diffs %v", j.identical, diffs)
	}
	if largest > 4 {
		t.Fatalf("%d rows unmatched at once: the streams did not fall back into step", largest)
	}
}

// Whatever the order and the batching of each side's rows, the join finds what a join of the
// two whole sets finds.
func TestJoinerAgreesWithAWholeJoinInAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		want := map[string]string{}
		var sides [2][]row
		for i := 0; i < 500; i++ {
			k := key(i)
			switch rng.IntN(5) {
			case 0:
				sides[0] = append(sides[0], row{k, 1})
				want[string(k)] = "local_only"
			case 1:
				sides[1] = append(sides[1], row{k, 1})
				want[string(k)] = "peer_only"
			case 2:
				sides[0] = append(sides[0], row{k, 1})
				sides[1] = append(sides[1], row{k, 2})
				want[string(k)] = "conflicting"
			default:
				sides[0] = append(sides[0], row{k, 3})
				sides[1] = append(sides[1], row{k, 3})
			}
		}
		for s := range sides { // mostly in order, some rows moved
			for n := rng.IntN(30); n > 0; n-- {
				a, b := rng.IntN(len(sides[s])), rng.IntN(len(sides[s]))
				sides[s][a], sides[s][b] = sides[s][b], sides[s][a]
			}
		}
		j := newJoiner()
		pos := [2]int{}
		for pos[0] < len(sides[0]) || pos[1] < len(sides[1]) {
			s := rng.IntN(2)
			n := min(1+rng.IntN(40), len(sides[s])-pos[s])
			j.add(s, sides[s][pos[s]:pos[s]+n])
			if pos[s] += n; pos[s] == len(sides[s]) && n > 0 {
				j.close(s)
			}
		}
		got := map[string]string{}
		for _, d := range j.finish() {
			got[d.Key] = d.Category()
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d differences, want %d", round, len(got), len(want))
		}
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if got[k] != want[k] {
				t.Fatalf("round %d: key %x is %q, want %q", round, k, got[k], want[k])
			}
		}
		if j.identical != int64(500-len(want)) {
			t.Fatalf("round %d: %d identical, want %d", round, j.identical, 500-len(want))
		}
	}
}
