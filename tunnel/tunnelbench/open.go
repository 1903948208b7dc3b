package tunnelbench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
)

// OpenLatencyResult is the outcome of OpenLatency.
type OpenLatencyResult struct {
	// Kind is the transport.
	Kind Kind
	// Samples is how many of each kind of echo were timed.
	Samples int
	// NewStream is the median time to open a stream, write one byte on it
	// and read the peer's echo of it.
	NewStream time.Duration
	// OpenStream is the median time to write one byte on a stream already
	// open on the same session and read its echo: one round trip.
	OpenStream time.Duration
}

// Added is what opening the stream adds to the round trip. Well under one
// OpenStream means that opening costs no round trip of its own.
func (r OpenLatencyResult) Added() time.Duration { return r.NewStream - r.OpenStream }

// OpenLatency measures the cost of opening a stream on a session of kind
// (KindQUIC or KindYamux): it alternates samples of a one-byte echo on a new
// stream (OpenStream included) with samples on one long-lived stream of the
// same session, after samples/10 unmeasured ones of each, and reports the
// medians. Every stream is echoed by its own goroutine on the server side.
func OpenLatency(ctx context.Context, kind Kind, cfg Config, samples int) (OpenLatencyResult, error) {
	res := OpenLatencyResult{Kind: kind}
	if samples <= 0 {
		return res, fmt.Errorf("open latency: %d samples, want > 0", samples)
	}
	p, err := NewPair(ctx, kind, cfg)
	if err != nil {
		return res, fmt.Errorf("open latency over %s: %w", kind, err)
	}
	stop := context.AfterFunc(ctx, func() { p.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer p.Close() // ends the accept loop and the echoes before wg.Wait
	wg.Go(func() {
		for {
			st, err := p.Server.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() { echo(st) })
		}
	})

	one, in := []byte{'x'}, make([]byte, 1)
	ping := func(st tunnel.Stream) error {
		if _, err := st.Write(one); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(st, in); err != nil {
			return fmt.Errorf("read echo: %w", err)
		}
		return nil
	}
	long, err := p.Client.OpenStream(ctx)
	if err != nil {
		return res, fmt.Errorf("open latency over %s: open: %w", kind, err)
	}
	defer long.Close()
	if err := ping(long); err != nil {
		return res, fmt.Errorf("open latency over %s: %w", kind, err)
	}

	warm := max(samples/10, 1)
	newDur := make([]time.Duration, 0, samples)
	oldDur := make([]time.Duration, 0, samples)
	for i := range warm + samples {
		t0 := time.Now()
		st, err := p.Client.OpenStream(ctx)
		if err != nil {
			return res, fmt.Errorf("open latency over %s: open: %w", kind, err)
		}
		err = ping(st)
		dNew := time.Since(t0)
		st.Close()
		if err != nil {
			return res, fmt.Errorf("open latency over %s: new stream: %w", kind, err)
		}

		t0 = time.Now()
		err = ping(long)
		dOld := time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("open latency over %s: open stream: %w", kind, err)
		}
		if i >= warm {
			newDur = append(newDur, dNew)
			oldDur = append(oldDur, dOld)
		}
	}
	res.Samples = samples
	res.NewStream, res.OpenStream = median(newDur), median(oldDur)
	return res, nil
}

// echo sends back what it reads until the stream ends, then closes it.
func echo(st tunnel.Stream) {
	defer st.Close()
	var buf [64]byte
	for {
		n, err := st.Read(buf[:])
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
