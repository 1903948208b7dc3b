package crawl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/tunnel/backoff"
)

// Relay is where the crawl delivers: the relay's ingest endpoints, reached
// over HTTP on tunnel streams.
type Relay struct {
	// Client carries requests to BaseURL (the agent's tunnel transport).
	Client *http.Client
	// BaseURL is the relay's address on the tunnel, e.g. "http://relay.tunnel".
	BaseURL string
	// Backoff paces retries while the relay cannot be reached. Zero means
	// 1s growing to 30s.
	Backoff backoff.Policy
	// Logger receives retries.
	Logger *slog.Logger
}

// permanentError is a refusal that retrying cannot fix (4xx but 408/429).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// retry runs fn until it succeeds, ctx ends, or it fails permanently. While
// the tunnel is down this is where the crawl pauses: nothing is lost, the
// checkpoint has not moved.
func (r *Relay) retry(ctx context.Context, what string, fn func() error) error {
	pol := r.Backoff
	if pol.Base <= 0 {
		pol.Base = time.Second
	}
	if pol.Max <= 0 {
		pol.Max = 30 * time.Second
	}
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if _, ok := err.(permanentError); ok || ctx.Err() != nil {
			return err
		}
		d := pol.Delay(attempt)
		if attempt == 1 || attempt%10 == 0 {
			r.Logger.Warn("delivery to the relay failed; the crawl waits and retries", "what", what, "err", err, "retry_in", d.Round(time.Millisecond), "attempt", attempt)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Relay) call(ctx context.Context, method, path string, body func() (io.Reader, int64, error), out any) error {
	b, n, err := body()
	if err != nil {
		return permanentError{err}
	}
	req, err := http.NewRequestWithContext(ctx, method, r.BaseURL+path, b)
	if err != nil {
		return permanentError{err}
	}
	req.ContentLength = n
	if method == http.MethodPut {
		req.Header.Set("Content-Type", "application/octet-stream")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := fmt.Errorf("relay %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(rb))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return permanentError{e}
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("relay %s %s: %w", method, path, err)
		}
	}
	return nil
}

// PutBlob uploads the file at path, whose SHA-256 is sum, and returns once
// the relay has it durably.
func (r *Relay) PutBlob(ctx context.Context, sum, path string) error {
	return r.retry(ctx, "blob "+sum[:12], func() error {
		return r.call(ctx, http.MethodPut, ingestapi.BlobsPath+sum, func() (io.Reader, int64, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, 0, err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, 0, err
			}
			return f, st.Size(), nil
		}, nil)
	})
}

// Apply delivers a batch and returns the relay's acknowledgement, given
// only after a durable commit.
func (r *Relay) Apply(ctx context.Context, b *ingestapi.Batch) (ingestapi.BatchResult, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return ingestapi.BatchResult{}, err
	}
	var res ingestapi.BatchResult
	err = r.retry(ctx, "batch "+b.ID, func() error {
		return r.call(ctx, http.MethodPost, ingestapi.BatchesPath, func() (io.Reader, int64, error) {
			return bytes.NewReader(body), int64(len(body)), nil
		}, &res)
	})
	return res, err
}

// FinishGeneration ends a full crawl: the relay deletes the site's orphans.
func (r *Relay) FinishGeneration(ctx context.Context, g ingestapi.Generation) (ingestapi.GenerationResult, error) {
	body, _ := json.Marshal(g)
	var res ingestapi.GenerationResult
	err := r.retry(ctx, "generation "+g.Generation, func() error {
		return r.call(ctx, http.MethodPost, ingestapi.GenerationsPath, func() (io.Reader, int64, error) {
			return bytes.NewReader(body), int64(len(body)), nil
		}, &res)
	})
	return res, err
}
