package snapshot

import (
	"io"
	"sync"
)

// AsyncWriter decouples a producer from a slow consumer: writes are gathered into chunks
// that another goroutine hands to w, so that (for example) the server keeps streaming COPY
// data while the previous chunk is being compressed and hashed. At most depth chunks are in
// flight; a failed w makes the next Write return its error.
type AsyncWriter struct {
	w     io.Writer
	size  int
	cur   []byte
	ch    chan []byte
	free  chan []byte
	done  chan struct{}
	mu    sync.Mutex
	err   error
	close sync.Once
}

// NewAsyncWriter starts the goroutine that writes to w; chunkSize bytes per chunk, depth
// chunks in flight.
func NewAsyncWriter(w io.Writer, chunkSize, depth int) *AsyncWriter {
	a := &AsyncWriter{w: w, size: chunkSize, ch: make(chan []byte, depth), free: make(chan []byte, depth+1),
		done: make(chan struct{})}
	go a.run()
	return a
}

func (a *AsyncWriter) run() {
	defer close(a.done)
	for b := range a.ch {
		if a.failed() == nil {
			if _, err := a.w.Write(b); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		select {
		case a.free <- b[:0]:
		default:
		}
	}
}

func (a *AsyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Write buffers p, handing full chunks to the writing goroutine.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	if err := a.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if a.cur == nil {
			select {
			case a.cur = <-a.free:
			default:
				a.cur = make([]byte, 0, a.size)
			}
		}
		k := min(len(p), a.size-len(a.cur))
		a.cur = append(a.cur, p[:k]...)
		p = p[k:]
		if len(a.cur) == a.size {
			a.ch <- a.cur
			a.cur = nil
		}
	}
	return n, nil
}

// Close hands over the last chunk, waits until everything is written and returns the
// first error of w.
func (a *AsyncWriter) Close() error {
	a.close.Do(func() {
		if len(a.cur) > 0 {
			a.ch <- a.cur
			a.cur = nil
		}
		close(a.ch)
	})
	<-a.done
	return a.failed()
}
