package tunnelbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
)

// patternPeriod is the period of the bytes Transfer sends: a prime, so that
// it divides no write or read size and a repeated, lost or reordered chunk
// shows up as a mismatch.
const patternPeriod = 65521

// pattern returns patternPeriod pseudo-random bytes followed by their first
// extra bytes again, so that any window of up to extra bytes starting within
// the period is one slice.
func pattern(extra int) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{'t', 'u', 'n', 'n', 'e', 'l', 'b', 'e', 'n', 'c', 'h'}))
	p := make([]byte, patternPeriod+extra)
	for i := range patternPeriod {
		p[i] = byte(rng.Uint32())
	}
	for i := patternPeriod; i < len(p); i++ {
		p[i] = p[i-patternPeriod]
	}
	return p
}

// TransferOptions tunes Transfer. The zero value of every field means its default.
type TransferOptions struct {
	// WriteSize is the size of each Write, and of the reader's buffer. Zero
	// means 256 KiB.
	WriteSize int
	// Verify compares every byte received with the byte sent. False means
	// the reader only counts what it receives and discards it.
	Verify bool
}

func (o TransferOptions) writeSize() int {
	if o.WriteSize <= 0 {
		return 256 << 10
	}
	return o.WriteSize
}

// TransferResult is one one-way transfer.
type TransferResult struct {
	// Bytes is how many bytes the reader received.
	Bytes int64
	// Verified is how many of them were compared with what was sent and
	// matched; zero unless TransferOptions.Verify.
	Verified int64
	// Elapsed runs from the first write to the reader receiving the last byte.
	Elapsed time.Duration
	// CPU is the user plus system CPU time of the whole process over Elapsed:
	// both ends, and whatever else the process runs.
	CPU time.Duration
}

// MBPerSec is the throughput in megabytes (10^6 bytes) per second.
func (r TransferResult) MBPerSec() float64 { return mbPerSec(r.Bytes, r.Elapsed) }

// CPUPerGB is the process CPU seconds spent per gigabyte (10^9 bytes) moved.
func (r TransferResult) CPUPerGB() float64 { return cpuPerGB(r.Bytes, r.CPU) }

func mbPerSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

func cpuPerGB(n int64, cpu time.Duration) float64 {
	if n <= 0 {
		return 0
	}
	return cpu.Seconds() / (float64(n) / 1e9)
}

// Transfer writes size bytes to w in writes of opts.WriteSize from one
// goroutine while reading exactly size bytes from r in the calling one, and
// times it. w and r are the two ends of one connection or stream, usually in
// this process. When ctx ends, their deadlines are set to now, which fails
// the transfer.
func Transfer(ctx context.Context, w, r net.Conn, size int64, opts TransferOptions) (TransferResult, error) {
	if size <= 0 {
		return TransferResult{}, fmt.Errorf("transfer: size %d, want > 0", size)
	}
	ws := opts.writeSize()
	pat := pattern(ws)
	stop := context.AfterFunc(ctx, func() {
		w.SetDeadline(time.Now())
		r.SetDeadline(time.Now())
	})
	defer stop()

	cpu0, err := processCPU()
	if err != nil {
		return TransferResult{}, fmt.Errorf("transfer: %w", err)
	}
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		err := writePattern(w, pat, size, ws)
		if err != nil {
			r.SetReadDeadline(time.Now()) // unblock the reader
		}
		werr <- err
	}()
	res, rerr := readPattern(r, pat, size, ws, opts.Verify)
	res.Elapsed = time.Since(start)
	cpu1, cerr := processCPU()
	if rerr != nil {
		w.SetWriteDeadline(time.Now()) // unblock the writer
	}
	err = errors.Join(rerr, <-werr, cerr)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return res, fmt.Errorf("transfer: %w", err)
	}
	res.CPU = cpu1 - cpu0
	return res, nil
}

func writePattern(w io.Writer, pat []byte, size int64, ws int) error {
	for off := int64(0); off < size; {
		n := int(min(int64(ws), size-off))
		o := int(off % patternPeriod)
		if _, err := w.Write(pat[o : o+n]); err != nil {
			return fmt.Errorf("write at byte %d: %w", off, err)
		}
		off += int64(n)
	}
	return nil
}

func readPattern(r io.Reader, pat []byte, size int64, ws int, verify bool) (TransferResult, error) {
	var res TransferResult
	buf := make([]byte, ws)
	for res.Bytes < size {
		n, err := r.Read(buf[:min(int64(ws), size-res.Bytes)])
		if n > 0 {
			if verify {
				o := int(res.Bytes % patternPeriod)
				if !bytes.Equal(buf[:n], pat[o:o+n]) {
					return res, fmt.Errorf("bytes %d to %d differ from those sent", res.Bytes, res.Bytes+int64(n))
				}
				res.Verified += int64(n)
			}
			res.Bytes += int64(n)
		}
		if err != nil && res.Bytes < size {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return res, fmt.Errorf("read after %d of %d bytes: %w", res.Bytes, size, err)
		}
	}
	return res, nil
}

// ThroughputOptions tunes Throughput. The zero value of every field means its default.
type ThroughputOptions struct {
	// Size is how many bytes each run moves. Zero means 1 GiB.
	Size int64
	// Runs is how many timed runs each kind has. Zero means 3.
	Runs int
	// Warmup is how many bytes each kind moves before the timed runs, on
	// the same connection. Zero means Size/4; negative means no warm-up.
	Warmup int64
	// Transfer tunes every run.
	Transfer TransferOptions
}

func (o ThroughputOptions) withDefaults() ThroughputOptions {
	if o.Size <= 0 {
		o.Size = 1 << 30
	}
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.Warmup == 0 {
		o.Warmup = o.Size / 4
	}
	return o
}

// ThroughputResult is the outcome of Throughput.
type ThroughputResult struct {
	// Kind is what carried the bytes.
	Kind Kind
	// Runs are the timed runs, in order.
	Runs []TransferResult
	// Bytes is the size of each run.
	Bytes int64
	// Elapsed and CPU are the medians over Runs, each taken separately.
	Elapsed, CPU time.Duration
	// Verified is how many bytes of the timed runs were checked and matched.
	Verified int64
}

// MBPerSec is the median throughput in megabytes (10^6 bytes) per second.
func (r ThroughputResult) MBPerSec() float64 { return mbPerSec(r.Bytes, r.Elapsed) }

// CPUPerGB is the median process CPU seconds per gigabyte (10^9 bytes) moved.
func (r ThroughputResult) CPUPerGB() float64 { return cpuPerGB(r.Bytes, r.CPU) }

// Throughput measures one-way throughput from client to server over a
// single stream of each tunnel kind (KindQUIC, KindYamux) or over one TLS
// connection (KindTLS). It connects every kind first and warms each up, then
// runs opts.Runs rounds in which each kind in turn moves opts.Size bytes after
// a garbage collection, so that a slow spell of the machine does not fall on
// one kind only. Every tunnel run goes on a new stream; the TLS runs share
// their connection. The results are in the order of kinds.
func Throughput(ctx context.Context, kinds []Kind, cfg Config, opts ThroughputOptions) ([]ThroughputResult, error) {
	opts = opts.withDefaults()
	carriers := make([]carrier, 0, len(kinds))
	defer func() {
		for _, c := range carriers {
			c.Close()
		}
	}()
	res := make([]ThroughputResult, len(kinds))
	for i, kind := range kinds {
		c, err := newCarrier(ctx, kind, cfg)
		if err != nil {
			return nil, fmt.Errorf("throughput over %s: %w", kind, err)
		}
		carriers = append(carriers, c)
		res[i] = ThroughputResult{Kind: kind, Bytes: opts.Size}
		if opts.Warmup > 0 {
			if _, err := runTransfer(ctx, c, opts.Warmup, opts.Transfer); err != nil {
				return nil, fmt.Errorf("throughput over %s: warm-up: %w", kind, err)
			}
		}
	}
	for run := range opts.Runs {
		for i, c := range carriers {
			runtime.GC()
			r, err := runTransfer(ctx, c, opts.Size, opts.Transfer)
			if err != nil {
				return nil, fmt.Errorf("throughput over %s: run %d: %w", kinds[i], run+1, err)
			}
			res[i].Runs = append(res[i].Runs, r)
			res[i].Verified += r.Verified
		}
	}
	for i := range res {
		var elapsed, cpu []time.Duration
		for _, r := range res[i].Runs {
			elapsed = append(elapsed, r.Elapsed)
			cpu = append(cpu, r.CPU)
		}
		res[i].Elapsed, res[i].CPU = median(elapsed), median(cpu)
	}
	return res, nil
}

func runTransfer(ctx context.Context, c carrier, size int64, opts TransferOptions) (TransferResult, error) {
	w, r, release, err := c.open(ctx)
	if err != nil {
		return TransferResult{}, err
	}
	defer release()
	return Transfer(ctx, w, r, size, opts)
}

// carrier hands out the two ends of a connection or stream to send over.
type carrier interface {
	// open returns a writer and the reader that receives what it writes, and
	// a function to call when done with them.
	open(ctx context.Context) (w, r net.Conn, release func(), err error)
	Close() error
}

func newCarrier(ctx context.Context, kind Kind, cfg Config) (carrier, error) {
	switch kind {
	case KindTLS:
		return newTLSPair(ctx, cfg)
	case KindQUIC, KindYamux:
		return NewPair(ctx, kind, cfg)
	}
	return nil, fmt.Errorf("%q is neither a tunnel transport nor the TLS baseline", kind)
}

func (p *tlsPair) open(context.Context) (w, r net.Conn, release func(), err error) {
	return p.client, p.server, func() {}, nil
}

func (p *Pair) open(ctx context.Context) (w, r net.Conn, release func(), err error) {
	c, s, err := p.OpenStreams(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, s, func() { c.Close(); s.Close() }, nil
}

// OpenStreams opens a stream from the client and accepts it on the server.
// It sends one byte on the new stream, which the peer needs to see it, and
// reads it on the other side, so both are ready for use when it returns. The
// caller must close both streams.
func (p *Pair) OpenStreams(ctx context.Context) (client, server tunnel.Stream, err error) {
	c, err := p.Client.OpenStream(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open stream: %w", err)
	}
	if _, err := c.Write([]byte{0}); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("open stream: write: %w", err)
	}
	s, err := p.Server.AcceptStream(ctx)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("accept stream: %w", err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		c.Close()
		s.Close()
		return nil, nil, fmt.Errorf("accept stream: read: %w", err)
	}
	return c, s, nil
}
