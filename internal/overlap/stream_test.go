package overlap

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// A range of composite (text, int4) keys splits into its rows, and each key back into the
// columns' send forms record sends; a truncated range is an error, not a short read.
func TestSplitRangeAndSplitKeyRoundTripACompositeKey(t *testing.T) {
	lens := []int32{-1, 4}
	var blob []byte
	var want []row
	for i, region := range []string{"eu", "", "a longer region"} {
		var key []byte
		key = binary.BigEndian.AppendUint32(key, uint32(len(region)))
		key = append(key, region...)
		key = binary.BigEndian.AppendUint32(key, uint32(i+1))
		blob = append(blob, key...)
		blob = binary.BigEndian.AppendUint64(blob, uint64(int64(-1-i)))
		want = append(want, row{key, int64(-1 - i)})
	}
	got, err := splitRange(blob, lens, nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("splitRange: %v %v, want %v", got, err, want)
	}
	cols := splitKey(string(got[2].key), lens)
	if string(cols[0]) != "a longer region" || binary.BigEndian.Uint32(cols[1]) != 3 {
		t.Errorf("splitKey: %q", cols)
	}
	if _, err := splitRange(blob[:len(blob)-3], lens, nil); err == nil {
		t.Error("splitRange of a truncated range: no error")
	}
}

// The join pairs rows whichever side sends them first, and leaves the rest one-sided.
func TestJoinerCategoriesWhicheverSideComesFirst(t *testing.T) {
	j := newJoiner()
	j.add(0, []row{{[]byte("a"), 1}, {[]byte("b"), 2}, {[]byte("c"), 3}})
	j.add(1, []row{{[]byte("b"), 2}, {[]byte("c"), 4}, {[]byte("d"), 5}})
	j.add(1, []row{{[]byte("e"), 6}})
	j.add(0, []row{{[]byte("e"), 6}})
	diffs := j.finish()
	cats := map[string]string{}
	for _, d := range diffs {
		cats[d.Key] = d.Category()
	}
	want := map[string]string{"a": "local_only", "c": "conflicting", "d": "peer_only"}
	if j.identical != 2 || !reflect.DeepEqual(cats, want) {
		t.Fatalf("identical %d, %v; want 2, %v", j.identical, cats, want)
	}
}
