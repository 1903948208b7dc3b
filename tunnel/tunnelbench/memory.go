package tunnelbench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
)

// MemoryResult is the outcome of IdleStreamMemory.
type MemoryResult struct {
	// Kind is the transport.
	Kind Kind
	// Streams is how many idle streams were open.
	Streams int
	// Before and After are the process's heap and stack memory in use
	// (runtime.MemStats HeapInuse plus StackInuse, after a collection), with
	// the session pair up, before the streams opened and while they were open.
	Before, After uint64
	// Goroutines is how many more goroutines ran while the streams were open.
	Goroutines int
}

// Delta is the memory the open streams held, in bytes; both ends together.
func (r MemoryResult) Delta() int64 { return int64(r.After) - int64(r.Before) }

// PerStream is Delta divided among the streams.
func (r MemoryResult) PerStream() float64 {
	if r.Streams == 0 {
		return 0
	}
	return float64(r.Delta()) / float64(r.Streams)
}

// IdleStreamMemory opens n streams on a session of kind (KindQUIC or
// KindYamux) and measures the memory they hold while idle, both ends
// together. The client opens each stream and writes one byte, which the
// server needs to see it, then holds it; the server accepts each stream and
// gives it a goroutine that reads the byte and then stays blocked in Read, as
// a server with a goroutine per connection does. The goroutines' stacks count;
// their 16-byte read buffers hardly do.
func IdleStreamMemory(ctx context.Context, kind Kind, cfg Config, n int) (MemoryResult, error) {
	res := MemoryResult{Kind: kind, Streams: n}
	if n <= 0 {
		return res, fmt.Errorf("idle stream memory: %d streams, want > 0", n)
	}
	p, err := NewPair(ctx, kind, cfg)
	if err != nil {
		return res, fmt.Errorf("idle stream memory over %s: %w", kind, err)
	}
	stop := context.AfterFunc(ctx, func() { p.Close() })
	defer stop()

	// Everything the measurement itself keeps is allocated before Before.
	client := make([]tunnel.Stream, 0, n)
	ready := make(chan error, n)
	actx, stopAccepting := context.WithCancel(ctx)
	var accepting, readers sync.WaitGroup
	defer func() {
		stopAccepting()
		accepting.Wait() // no more readers.Go
		for _, st := range client {
			st.Close()
		}
		// Let the readers see end-of-stream before the sessions close: a
		// yamux v0.1.2 reader blocked in Read when its session shuts down
		// spins until yamux gets round to closing its stream (yamux PR #176).
		waitFor(&readers, 10*time.Second)
		p.Close()
		readers.Wait()
	}()
	g0 := runtime.NumGoroutine()
	res.Before = memInUse()

	accepting.Go(func() {
		for range n {
			st, err := p.Server.AcceptStream(actx)
			if err != nil {
				ready <- fmt.Errorf("accept: %w", err)
				return
			}
			readers.Go(func() {
				defer st.Close()
				buf := make([]byte, 16)
				if _, err := io.ReadFull(st, buf[:1]); err != nil {
					ready <- fmt.Errorf("read first byte: %w", err)
					return
				}
				ready <- nil
				st.Read(buf) // blocks until the client closes the stream
			})
		}
	})
	one := []byte{1}
	for i := range n {
		st, err := p.Client.OpenStream(ctx)
		if err != nil {
			return res, fmt.Errorf("idle stream memory over %s: open stream %d: %w", kind, i+1, err)
		}
		client = append(client, st)
		if _, err := st.Write(one); err != nil {
			return res, fmt.Errorf("idle stream memory over %s: write on stream %d: %w", kind, i+1, err)
		}
	}
	for range n {
		select {
		case err := <-ready:
			if err != nil {
				return res, fmt.Errorf("idle stream memory over %s: %w", kind, err)
			}
		case <-ctx.Done():
			return res, fmt.Errorf("idle stream memory over %s: %w", kind, ctx.Err())
		}
	}
	res.After = memInUse()
	res.Goroutines = runtime.NumGoroutine() - g0
	return res, nil
}

// waitFor waits for wg, for at most d.
func waitFor(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
