package job

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/runner"
)

func TestTrackerPercentBytesAndRowsNeverGoBackwards(t *testing.T) {
	tr := newTracker(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 1, "snap_1", "generation")
	tr.plan(map[string]int64{"a": 1000, "b": 3000}, 40)
	t0 := time.Unix(0, 0)
	p, _ := tr.sample(t0)
	if p.Percent != 0 || p.BytesTotal != 4000 || p.TablesTotal != 2 {
		t.Fatalf("start: %+v", p)
	}
	c := tr.start("b")
	c.add([]byte(strings.Repeat("x\n", 750))) // 1500 bytes, 750 rows: half of b
	p, _ = tr.sample(t0.Add(time.Second))
	if p.Percent != 37.5 || p.BytesDone != 1500 || p.RowsDone != 750 || p.CurrentTable == nil || *p.CurrentTable != "b" {
		t.Fatalf("half of b: percent %v bytes %d rows %d", p.Percent, p.BytesDone, p.RowsDone)
	}
	// b turns out bigger than its estimate: capped at 99% of its weight, total grows.
	c.add(make([]byte, 3000))
	p, _ = tr.sample(t0.Add(2 * time.Second))
	if p.Percent != 74.25 || p.BytesTotal != 5500 {
		t.Fatalf("b over its estimate: percent %v total %d", p.Percent, p.BytesTotal)
	}
	// A failed table leaves the live set; percent does not drop.
	tr.finish("b", false, 0, 0, 0)
	p, _ = tr.sample(t0.Add(3 * time.Second))
	if p.Percent != 74.25 || p.CurrentTable != nil {
		t.Fatalf("after a failed table: %v %v", p.Percent, p.CurrentTable)
	}
	tr.finish("a", true, 1200, 400, 10)
	tr.finish("b", true, 4500, 1500, 30)
	p, _ = tr.sample(t0.Add(4 * time.Second))
	if p.Percent != 100 || p.TablesDone != 2 || p.BytesDone != 5700 || p.CompressionRatio == nil || *p.CompressionRatio != 3 {
		t.Fatalf("done: %+v", p)
	}
	// Throughput and ETA are the extension's (tests/rate_test.go): the tracker reports counts.
	if p.ThroughputBytesS != nil || p.ETASeconds != nil {
		t.Fatalf("rate %v eta %v computed in Go", p.ThroughputBytesS, p.ETASeconds)
	}
	tr.reset()
	p, restart := tr.sample(t0.Add(5 * time.Second))
	if !restart || p.Percent != 0 {
		t.Fatalf("after reset: percent %v restart %v", p.Percent, restart)
	}
}

func TestThrottleKeepsTheRate(t *testing.T) {
	th := newThrottle(context.Background(), 100_000)
	start := time.Now()
	w := throttledWriter{w: io.Discard, t: th}
	for i := 0; i < 10; i++ {
		w.Write(make([]byte, 2_000)) // 20 kB at 100 kB/s: about 200 ms
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("20 kB at 100 kB/s took %s", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := newThrottle(ctx, 1)
	start = time.Now()
	slow.wait(1_000_000) // would be 11 days: a cancelled context ends the sleep
	if time.Since(start) > time.Second {
		t.Fatal("throttle ignored the cancelled context")
	}
}

func TestTransientAndRetryable(t *testing.T) {
	if !transient(&pgconn.PgError{Code: "57P01"}) || !transient(io.ErrUnexpectedEOF) || transient(&pgconn.PgError{Code: "22P02"}) {
		t.Fatal("transient classification")
	}
	if !isRetryable(classify(&pgconn.PgError{Code: "08006"})) || isRetryable(classify(errors.New("checksum mismatch"))) {
		t.Fatal("classify")
	}
	if !isRetryable(runner.Retryable(errors.New("x"))) {
		t.Fatal("isRetryable")
	}
}
