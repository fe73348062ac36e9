package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/tests/harness"
)

// requireSoak skips t unless STEEP_SOAK=1: soak tests run for minutes (make soak), never in make test.
func requireSoak(t *testing.T) {
	t.Helper()
	if os.Getenv("STEEP_SOAK") != "1" {
		t.Skip("soak: run with make soak")
	}
}

// soakDuration is how long a soak test keeps its load running: STEEP_SOAK_MINUTES (default 20).
func soakDuration() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("STEEP_SOAK_MINUTES")); err == nil && v > 0 {
		return time.Duration(v) * time.Minute
	}
	return 20 * time.Minute
}

// soakSeed is STEEP_SOAK_SEED, or a new seed: logged, so a run's kills can be replayed.
func soakSeed() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("STEEP_SOAK_SEED"), 10, 64); err == nil {
		return v
	}
	return uint64(time.Now().UnixNano())
}

// soakLoad writes on the source for the whole soak: upserts, range updates and deletes over
// three tables, and TOAST-sized documents (replaced, or updated leaving the big value
// unchanged, which pgoutput does not resend). pause stops it between two statements.
type soakLoad struct {
	mu     sync.RWMutex
	writes atomic.Int64
	errs   atomic.Int64
	stop   func()
}

const soakTables = 3

// soakSchema creates the soak's tables on n; fill loads the source's first rows.
func soakSchema(t *testing.T, n *harness.Node, fill bool) {
	t.Helper()
	for i := 1; i <= soakTables; i++ {
		n.Exec(t, "", fmt.Sprintf("CREATE TABLE soak_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		if fill {
			n.Exec(t, "", fmt.Sprintf("INSERT INTO soak_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g", i))
		}
	}
	n.Exec(t, "", "CREATE TABLE soak_doc (id int PRIMARY KEY, body text NOT NULL, rev int NOT NULL)")
	if fill {
		n.Exec(t, "", `INSERT INTO soak_doc SELECT g, (SELECT string_agg(md5(random()::text || x || g), '') FROM generate_series(1, 250) x), 0
			FROM generate_series(1, 300) g`)
		n.Exec(t, "", "ANALYZE")
	}
}

// soakDoc is a value of about 8 kB that pglz cannot shrink under the TOAST threshold.
const soakDoc = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 250))"

func soakStatement(rng *rand.Rand) string {
	tbl := fmt.Sprintf("soak_%d", 1+rng.IntN(soakTables))
	id := 1 + rng.IntN(30000)
	doc := 1 + rng.IntN(500)
	switch rng.IntN(8) {
	case 0, 1:
		return fmt.Sprintf("INSERT INTO %s (id, v, n) VALUES (%d, md5(random()::text), 1) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, n = %s.n + 1", tbl, id, tbl)
	case 2, 3:
		return fmt.Sprintf("UPDATE %s SET v = md5(v), n = n + 1 WHERE id BETWEEN %d AND %d", tbl, id, id+20)
	case 4:
		return fmt.Sprintf("DELETE FROM %s WHERE id BETWEEN %d AND %d", tbl, id, id+2)
	case 5:
		return fmt.Sprintf("INSERT INTO soak_doc (id, body, rev) VALUES (%d, %s, 1) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, rev = soak_doc.rev + 1", doc, soakDoc)
	case 6:
		return fmt.Sprintf("UPDATE soak_doc SET rev = rev + 1 WHERE id = %d", doc)
	default:
		// Two tables in one transaction.
		return fmt.Sprintf("DELETE FROM soak_doc WHERE id = %d; UPDATE soak_1 SET n = n + 1 WHERE id = %d", doc, id)
	}
}

// startSoakLoad runs two writers on pool until the test ends or stop is called.
func startSoakLoad(t *testing.T, pool *pgxpool.Pool, seed uint64) *soakLoad {
	l := &soakLoad{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var once sync.Once
	l.stop = func() { once.Do(func() { close(done) }); wg.Wait() }
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				select {
				case <-done:
					return
				default:
				}
				sql := soakStatement(rng)
				l.mu.RLock()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := pool.Exec(ctx, sql)
				cancel()
				l.mu.RUnlock()
				if err != nil {
					l.errs.Add(1)
				} else {
					l.writes.Add(1)
				}
				time.Sleep(2 * time.Millisecond) // leave the 2 cores room for the inits
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *soakLoad) pause()  { l.mu.Lock() }
func (l *soakLoad) resume() { l.mu.Unlock() }

// soakCar is a sidecar the soak kills and starts again.
type soakCar struct {
	node *harness.Node
	name string
	args []string
	cur  *sidecar
}

func (c *soakCar) start(t *testing.T) { c.cur = startSidecar(t, c.node, c.name, c.args...) }

// chaos SIGKILLs one of its sidecars at seeded random moments and starts it again a moment
// later; step is called from the test's polling loops, so everything stays on one goroutine.
type chaos struct {
	rng      *rand.Rand
	cars     []*soakCar
	on       bool
	dead     *soakCar
	reviveAt time.Time
	nextKill time.Time
	kills    map[string]int // by "sidecar during jobs"
	total    int
}

func newChaos(seed uint64, cars ...*soakCar) *chaos {
	return &chaos{rng: rand.New(rand.NewPCG(seed, 7)), cars: cars, kills: map[string]int{}}
}

func (c *chaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(c.rng.Int64N(int64(hi-lo)))
}

func (c *chaos) step(t *testing.T) {
	now := time.Now()
	if c.dead != nil {
		if now.After(c.reviveAt) {
			c.dead.start(t)
			c.dead = nil
		}
		return
	}
	if !c.on || now.Before(c.nextKill) {
		return
	}
	// Mostly a sidecar in the middle of a job (an init's or a snapshot's), sometimes any.
	var busy []*soakCar
	for _, car := range c.cars {
		if runningJobs(t, car) != "idle" {
			busy = append(busy, car)
		}
	}
	car := c.cars[c.rng.IntN(len(c.cars))]
	if len(busy) > 0 && c.rng.IntN(4) > 0 {
		car = busy[c.rng.IntN(len(busy))]
	}
	running := runningJobs(t, car)
	car.cur.kill()
	c.total++
	c.kills[car.name+" during "+running]++
	t.Logf("SIGKILL %s (running: %s)", car.name, running)
	c.dead, c.reviveAt = car, now.Add(c.between(200*time.Millisecond, 3*time.Second))
	c.nextKill = c.reviveAt.Add(c.between(2*time.Second, 10*time.Second))
}

// runningJobs lists the kinds of the jobs car holds a lease on ("idle" for none).
func runningJobs(t *testing.T, car *soakCar) string {
	return harness.QueryOne[string](t, car.node, "", `SELECT coalesce(string_agg(kind, ',' ORDER BY id), 'idle')
		FROM steep_repl.jobs WHERE state = 'running' AND starts_with(lease_owner, $1)`, car.name)
}

// heal stops the kills and starts a killed sidecar again at once.
func (c *chaos) heal(t *testing.T) {
	c.on = false
	if c.dead != nil {
		c.dead.start(t)
		c.dead = nil
	}
}

func (c *chaos) summary() string {
	var b strings.Builder
	for k, v := range c.kills {
		fmt.Fprintf(&b, "\n  %3d x %s", v, k)
	}
	return b.String()
}
