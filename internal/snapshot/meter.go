package snapshot

import "time"

// RateWindow is the span throughput is measured over.
const RateWindow = 10 * time.Second

// Meter measures a throughput over the last RateWindow from cumulative samples.
type Meter struct {
	samples []sample
}

type sample struct {
	at time.Time
	v  int64
}

// Observe records the cumulative value v at time at (samples must come in time order).
func (m *Meter) Observe(at time.Time, v int64) {
	m.samples = append(m.samples, sample{at, v})
	cut := 0
	for cut < len(m.samples)-1 && at.Sub(m.samples[cut+1].at) >= RateWindow {
		cut++
	}
	m.samples = m.samples[cut:]
}

// Rate is the units per second over the window, nil until two samples 200 ms apart exist.
func (m *Meter) Rate() *float64 {
	if len(m.samples) < 2 {
		return nil
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt < 0.2 {
		return nil
	}
	r := float64(last.v-first.v) / dt
	if r < 0 {
		r = 0
	}
	return &r
}

// ETA is the seconds left to go from done to total at rate; nil when unknown (no rate or
// a zero rate with work left), 0 when done.
func ETA(total, done int64, rate *float64) *float64 {
	left := float64(total - done)
	if left <= 0 {
		z := 0.0
		return &z
	}
	if rate == nil || *rate <= 0 {
		return nil
	}
	e := left / *rate
	return &e
}
