package overlap

// Diff is a row that is not identical on both nodes: its key (as streamed) and the hashes of
// each side (nil where the side lacks the row).
type Diff struct {
	Key             string
	Local, PeerHash *int64
}

// Category is Diff's overlap_rows category.
func (d Diff) Category() string {
	switch {
	case d.Local == nil:
		return "peer_only"
	case d.PeerHash == nil:
		return "local_only"
	}
	return "conflicting"
}

// joiner is a symmetric hash join of the two streams: a row from either side probes the other
// side's unmatched rows; a match is compared and dropped, so memory holds only the rows one
// side has sent and the other not yet (small: both read their table in physical order).
type joiner struct {
	unmatched [2]map[string]int64
	identical int64
	diffs     []Diff
}

func newJoiner() *joiner {
	return &joiner{unmatched: [2]map[string]int64{make(map[string]int64), make(map[string]int64)}}
}

// add joins a batch of side's rows (0 local, 1 peer).
func (j *joiner) add(side int, rows []row) {
	mine, other := j.unmatched[side], j.unmatched[1-side]
	for _, r := range rows {
		// Neither the lookup nor the delete allocates: the key is copied only when kept.
		h, ok := other[string(r.key)]
		if !ok {
			mine[string(r.key)] = r.hash
			continue
		}
		delete(other, string(r.key))
		if h == r.hash {
			j.identical++
			continue
		}
		l, p := r.hash, h
		if side == 1 {
			l, p = h, r.hash
		}
		j.diffs = append(j.diffs, Diff{Key: string(r.key), Local: &l, PeerHash: &p})
	}
}

// finish turns what is left unmatched into the rows only one side holds.
func (j *joiner) finish() []Diff {
	for side, m := range j.unmatched {
		for k, h := range m {
			h := h
			d := Diff{Key: k}
			if side == 0 {
				d.Local = &h
			} else {
				d.PeerHash = &h
			}
			j.diffs = append(j.diffs, d)
		}
	}
	return j.diffs
}
