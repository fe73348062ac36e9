package progress

import (
	"math"
	"testing"
	"unicode/utf8"
)

func TestBar(t *testing.T) {
	tests := []struct {
		percent float64
		width   int
		want    string
	}{
		{0, 4, "[░░░░]"},
		{24.9, 4, "[░░░░]"},
		{25, 4, "[█░░░]"},
		{50, 16, "[████████░░░░░░░░]"},
		{42.3, 16, "[██████░░░░░░░░░░]"},
		{99.99, 10, "[█████████░]"},
		{100, 10, "[██████████]"},
		{150, 5, "[█████]"},
		{-3, 5, "[░░░░░]"},
		{math.NaN(), 3, "[░░░]"},
		{math.Inf(1), 3, "[███]"},
		{50, 1, "[░]"},
		{50, 0, "[]"},
		{50, -2, "[]"},
	}
	for _, tt := range tests {
		if got := Bar(tt.percent, tt.width); got != tt.want {
			t.Errorf("Bar(%v, %d) = %q, want %q", tt.percent, tt.width, got, tt.want)
		}
	}
	for w := 1; w <= 40; w++ {
		for _, p := range []float64{0, 33.3, 66.7, 100} {
			if n := utf8.RuneCountInString(Bar(p, w)); n != w+2 {
				t.Errorf("Bar(%v, %d) has %d runes, want %d", p, w, n, w+2)
			}
		}
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{1024, "1.0 kB"},
		{1_234_567, "1.2 MB"},
		{99_940, "99.9 kB"},
		{99_960, "100 kB"},
		{999_400, "999 kB"},
		{999_600, "1.0 MB"},
		{125_000_000, "125 MB"},
		{15_200_000_000, "15.2 GB"},
		{36_000_000_000, "36.0 GB"},
		{2_500_000_000_000, "2.5 TB"},
		{math.MaxInt64, "9.2 EB"},
		{-1_500, "-1.5 kB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0 B/s"},
		{0.4, "0 B/s"},
		{999.6, "1.0 kB/s"},
		{125e6, "125 MB/s"},
		{1.5e9, "1.5 GB/s"},
		{-1, Unknown},
		{math.NaN(), Unknown},
		{math.Inf(1), Unknown},
	}
	for _, tt := range tests {
		if got := Rate(tt.v); got != tt.want {
			t.Errorf("Rate(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestCountAndRows(t *testing.T) {
	tests := []struct {
		v        float64
		count    string
		rowsPerS string
	}{
		{0, "0", "0 rows/s"},
		{999, "999", "999 rows/s"},
		{12_345, "12.3k", "12.3k rows/s"},
		{52_100, "52.1k", "52.1k rows/s"},
		{340_000, "340k", "340k rows/s"},
		{3_400_000, "3.4M", "3.4M rows/s"},
		{1.2e9, "1.2G", "1.2G rows/s"},
		{-1, Unknown, Unknown + " rows/s"},
		{math.NaN(), Unknown, Unknown + " rows/s"},
	}
	for _, tt := range tests {
		if got := Count(tt.v); got != tt.count {
			t.Errorf("Count(%v) = %q, want %q", tt.v, got, tt.count)
		}
		if got := Rows(tt.v); got != tt.rowsPerS {
			t.Errorf("Rows(%v) = %q, want %q", tt.v, got, tt.rowsPerS)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		s    float64
		want string
	}{
		{0, "0s"},
		{0.4, "0s"},
		{15, "15s"},
		{59.4, "59s"},
		{59.6, "1m00s"},
		{168, "2m48s"},
		{3599, "59m59s"},
		{3600, "1h00m"},
		{3720, "1h02m"},
		{86399, "23h59m"},
		{86400 + 4*3600, "1d04h"},
		{-1, Unknown},
		{math.NaN(), Unknown},
		{math.Inf(1), Unknown},
		{1e300, Unknown},
	}
	for _, tt := range tests {
		if got := Duration(tt.s); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestEstimateOfANeverAnalyzedTableIsUnknown(t *testing.T) {
	if got := Estimate(0); got != Unknown {
		t.Errorf("Estimate(0) = %q, want %q", got, Unknown)
	}
	if got := Estimate(1500); got != Count(1500) {
		t.Errorf("Estimate(1500) = %q", got)
	}
}
