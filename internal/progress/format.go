package progress

import (
	"fmt"
	"math"
	"strings"
)

// Unknown is what the formatters print for a value that is not known (yet).
const Unknown = "--"

// Bar draws percent (clamped to 0..100; NaN counts as 0) as width cells between
// brackets, e.g. "[██████░░░░░░░░░░]". A cell is filled only when it is wholly reached,
// so the bar is full only at 100%. A width below 1 gives "[]".
func Bar(percent float64, width int) string {
	if width < 1 {
		return "[]"
	}
	filled := int(math.Floor(clampPercent(percent) * float64(width) / 100))
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", width-filled) + "]"
}

// clampPercent bounds p to 0..100 and maps NaN to 0.
func clampPercent(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0:
		return 0
	case p > 100:
		return 100
	}
	return p
}

var siUnits = []string{"kB", "MB", "GB", "TB", "PB", "EB"}

// Bytes formats n in SI units (1 kB = 1000 B): "0 B", "999 B", "1.0 kB", "15.2 GB",
// "125 MB". Below 100 of a unit it shows one decimal, from 100 on none.
func Bytes(n int64) string {
	if n < 0 {
		return "-" + scaled(-float64(n), "B")
	}
	return scaled(float64(n), "B")
}

// scaled formats v (>= 0) with the SI prefix that keeps it below 1000; unit is appended
// to the prefix ("B" gives kB, MB...; "" gives k, M...).
func scaled(v float64, unit string) string {
	if v < 999.5 {
		if unit == "" {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	sep := " "
	if unit == "" {
		sep = ""
	}
	for i, u := range siUnits {
		if unit == "" {
			u = u[:1]
		}
		v /= 1000
		if v < 99.95 {
			return fmt.Sprintf("%.1f%s%s", v, sep, u)
		}
		if v < 999.5 || i == len(siUnits)-1 {
			return fmt.Sprintf("%.0f%s%s", v, sep, u)
		}
	}
	panic("unreachable")
}

// Rate formats a throughput in bytes per second: "125 MB/s". Negative, NaN or infinite
// rates are unknown ("--").
func Rate(bytesPerSec float64) string {
	if !known(bytesPerSec) {
		return Unknown
	}
	return scaled(math.Round(bytesPerSec), "B") + "/s"
}

// Count formats a row count with an SI prefix and no unit: "999", "52.1k", "3.4M", "1.2G".
// Negative, NaN or infinite counts are unknown ("--"): PostgreSQL reports -1 rows for
// a table that was never vacuumed or analyzed.
func Count(n float64) string {
	if !known(n) {
		return Unknown
	}
	return scaled(math.Round(n), "")
}

// Rows formats a copy rate in rows per second: "52.1k rows/s", or "-- rows/s" when unknown.
func Rows(perSec float64) string {
	return Count(perSec) + " rows/s"
}

// Duration formats a number of seconds, rounded to the second, in at most two units:
// "0s", "42s", "2m48s", "1h02m", "3d04h". Negative, NaN or infinite durations are
// unknown ("--").
func Duration(seconds float64) string {
	if !known(seconds) || seconds > math.MaxInt64/2 {
		return Unknown
	}
	s := int64(math.Round(seconds))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// known reports whether v is a real, non-negative number.
func known(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}

// Estimate formats a row estimate from the catalog: Unknown when there is none (a table never
// analyzed has reltuples -1, which the server reports as 0), not a misleading 0.
func Estimate(rows int64) string {
	if rows <= 0 {
		return Unknown
	}
	return Count(float64(rows))
}
