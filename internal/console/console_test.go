package console

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/console/model"
)

func TestPublisherQueuesOneDrawAndAppliesTheNewestState(t *testing.T) {
	sim := tcell.NewSimulationScreen("UTF-8")
	app := tview.NewApplication().SetScreen(sim)
	app.SetRoot(tview.NewBox(), true)
	var mu sync.Mutex
	var applied []time.Time
	p := &publisher{app: app, apply: func(s model.State) {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, s.At)
	}}
	t0 := time.Unix(0, 0)
	for i := range 5 { // the UI is not running yet: nothing is applied, one draw is queued
		p.publish(model.State{At: t0.Add(time.Duration(i) * time.Second)})
	}
	done := make(chan error, 1)
	go func() { done <- app.Run() }()
	defer func() { app.Stop(); <-done }()
	waitFor := func(n int) []time.Time {
		deadline := time.Now().Add(2 * time.Second)
		for {
			mu.Lock()
			got := append([]time.Time(nil), applied...)
			mu.Unlock()
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	got := waitFor(1)
	time.Sleep(50 * time.Millisecond)
	if got = waitFor(1); len(got) != 1 || !got[0].Equal(t0.Add(4*time.Second)) {
		t.Fatalf("applied %v, want only the newest state", got)
	}
	p.publish(model.State{At: t0.Add(time.Minute)})
	if got = waitFor(2); len(got) != 2 || !got[1].Equal(t0.Add(time.Minute)) {
		t.Fatalf("applied %v after a new state", got)
	}
}

func TestRunQuitsOnQWithNoNodeReachable(t *testing.T) {
	sim := tcell.NewSimulationScreen("UTF-8")
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{Screen: sim,
			Model: model.Config{URLs: []string{"postgres://u:pw@127.0.0.1:1/db"}, ConnectTimeout: 200 * time.Millisecond}})
	}()
	time.Sleep(300 * time.Millisecond) // let it try and fail to connect
	sim.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("q did not end Run")
	}
}

func TestRunEndsWithItsContextAndRejectsABadURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Screen: tcell.NewSimulationScreen("UTF-8"),
			Model: model.Config{URLs: []string{"postgres://127.0.0.1:1/db"}, ConnectTimeout: 200 * time.Millisecond}})
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run outlived its context")
	}
	err := Run(context.Background(), Options{Screen: tcell.NewSimulationScreen("UTF-8"),
		Model: model.Config{URLs: []string{"postgres://u:s3cret@h:notaport/db"}}})
	if err == nil {
		t.Fatal("a bad --db was accepted")
	}
}
