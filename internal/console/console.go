package console

import (
	"context"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/console/view"
)

// Options configure Run.
type Options struct {
	// Model configures the connections and polling.
	Model model.Config
	// Screen is drawn on; nil means the terminal (tests pass a simulation screen).
	Screen tcell.Screen
}

// Run shows the console until the user quits (q) or ctx ends. The error is the terminal's
// or the configuration's: nodes that cannot be reached are shown, never fatal.
func Run(ctx context.Context, opts Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	app := tview.NewApplication()
	if opts.Screen != nil {
		app.SetScreen(opts.Screen)
	}
	var v *view.View
	pub := &publisher{app: app, apply: func(s model.State) { v.Apply(s) }}
	m, err := model.New(opts.Model, pub.publish)
	if err != nil {
		return err
	}
	v = view.New(ctx, app, m)
	app.SetRoot(v.Root(), true).SetInputCapture(v.Capture)

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	go func() {
		<-ctx.Done()
		app.Stop()
	}()
	err = app.Run()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second): // a poll stuck in the network must not hold the exit
	}
	return err
}

// publisher hands the newest state to the UI goroutine: at most one draw is queued at a time
// and it applies whatever state is newest when it runs, so states that arrive faster than
// the terminal draws are dropped, never queued, and publish never blocks.
type publisher struct {
	app   *tview.Application
	apply func(model.State)

	mu      sync.Mutex
	latest  *model.State
	pending bool
}

func (p *publisher) publish(s model.State) {
	p.mu.Lock()
	p.latest = &s
	if p.pending {
		p.mu.Unlock()
		return
	}
	p.pending = true
	p.mu.Unlock()
	// QueueUpdateDraw returns only once the update has run: queue it from a goroutine of its
	// own (at most one exists) so that no poller ever waits for the terminal, nor hangs
	// after the UI has stopped.
	go p.app.QueueUpdateDraw(func() {
		p.mu.Lock()
		s := p.latest
		p.pending = false
		p.mu.Unlock()
		p.apply(*s)
	})
}
