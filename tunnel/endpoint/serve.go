package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcc-bridge/bridge/tunnel"
)

// Parts are the pieces of a running agent or relay that Run ties together.
type Parts struct {
	// Name names the process in errors, such as "agent".
	Name string
	// Ops is the operations server; its Listen must have run.
	Ops *Ops
	// Tunnel runs the tunnel until ctx ends and it has drained.
	Tunnel func(ctx context.Context) error
	// Streams is the listener of streams the peers open.
	Streams net.Listener
	// Handler serves the HTTP requests that arrive on those streams.
	Handler http.Handler
	// Logger receives the HTTP server's errors.
	Logger *slog.Logger
	// Background are more tasks to run until ctx ends, such as certificate
	// renewal; each must return when ctx ends. An error from one stops all.
	Background []func(ctx context.Context) error
}

// Run runs the ops server, the tunnel and an HTTP server on the tunnel's
// streams until ctx ends. The HTTP server stops only after the tunnel has
// drained, so requests in flight finish; every handler sees the peer's
// identity through tunnel.PeerFromContext.
func Run(ctx context.Context, p Parts) error {
	srv := &http.Server{
		Handler:           p.Handler,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       tunnel.ConnContext,
		ErrorLog:          slog.NewLogLogger(p.Logger.Handler(), slog.LevelWarn),
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Ops.Run(gctx) })
	for _, f := range p.Background {
		g.Go(func() error { return f(gctx) })
	}
	g.Go(func() error {
		err := p.Tunnel(gctx)
		// The tunnel has drained: nothing more can arrive for the server.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return err
	})
	g.Go(func() error {
		if err := srv.Serve(p.Streams); err != nil && !errors.Is(err, http.ErrServerClosed) && gctx.Err() == nil {
			return fmt.Errorf("%s server: %w", p.Name, err)
		}
		return nil
	})
	return g.Wait()
}
