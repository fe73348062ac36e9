package render

import (
	"math"
	"strings"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the last width values as bars scaled to their maximum: a positive value
// is at least "▁", zero is "▁" only when nothing moved at all, and an unknown value (NaN)
// or a missing one (fewer values than width, padded on the left) is a space.
func Sparkline(values []float64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	peak := 0.0
	for _, v := range values {
		if !math.IsNaN(v) {
			peak = max(peak, v)
		}
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(values)))
	for _, v := range values {
		switch {
		case math.IsNaN(v):
			b.WriteRune(' ')
		case peak <= 0 || v <= 0:
			b.WriteRune(sparks[0])
		default:
			i := int(math.Ceil(v/peak*float64(len(sparks)))) - 1
			b.WriteRune(sparks[max(0, min(len(sparks)-1, i))])
		}
	}
	return b.String()
}

// Throughput turns progress samples into bytes per second in buckets of window/buckets
// ending at the newest sample: each bucket averages the rates measured between consecutive
// samples that end in it; a bucket without samples repeats the one before, and buckets
// before the first measurement are NaN.
func Throughput(samples []api.InitSample, window time.Duration, buckets int) []float64 {
	if len(samples) < 2 || buckets <= 0 || window <= 0 {
		return nil
	}
	end := samples[len(samples)-1].At
	start := end.Add(-window)
	step := window / time.Duration(buckets)
	sums := make([]float64, buckets)
	counts := make([]int, buckets)
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		dt := b.At.Sub(a.At).Seconds()
		if !b.At.After(start) || dt <= 0 {
			continue
		}
		// Bucket k covers (start + k*step, start + (k+1)*step]: the newest sample is in the last.
		k := max(0, min(int((b.At.Sub(start)-1)/step), buckets-1))
		sums[k] += max(0, float64(b.BytesDone-a.BytesDone)/dt)
		counts[k]++
	}
	out := make([]float64, buckets)
	last := math.NaN()
	for k := range out {
		if counts[k] > 0 {
			last = sums[k] / float64(counts[k])
		}
		out[k] = last
	}
	return out
}
