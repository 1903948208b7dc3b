package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsConfig is the ops section of a configuration file.
type OpsConfig struct {
	// Listen is the ops server's address; keep it on loopback.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ (off by default).
	Pprof bool `yaml:"pprof"`
}

// Ops is the operations HTTP server of an agent or relay, meant for a
// loopback address:
//
//	/healthz  200 while the process runs
//	/readyz   200 when Ready returns nil, else 503 with the reason
//	/metrics  Prometheus metrics from Gatherer
//	/status   JSON from Status
//	/debug/pprof/  Go's profiles, when Pprof is set
type Ops struct {
	// Addr is the listen address. Zero means "127.0.0.1:0".
	Addr string
	// Gatherer serves /metrics. Nil means no /metrics.
	Gatherer prometheus.Gatherer
	// Ready says whether the process is ready: nil, or why it is not.
	Ready func() error
	// Status returns the JSON body of /status. Nil means no /status.
	Status func() any
	// Extra adds more handlers to the mux, such as a dashboard. Optional.
	Extra func(*http.ServeMux)
	// Logger receives the server's errors. Nil means no logging.
	Logger *slog.Logger
	// Pprof serves net/http/pprof's profiles under /debug/pprof/.
	Pprof bool

	ln net.Listener
}

// Listen binds Addr, so that the bound address is known before Serve.
func (o *Ops) Listen() error {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops server: %w", err)
	}
	o.ln = ln
	return nil
}

// BoundAddr is the address the server listens on, once Listen has run.
func (o *Ops) BoundAddr() string {
	if o.ln == nil {
		return ""
	}
	return o.ln.Addr().String()
}

// Handler returns the server's routes.
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	if o.Status != nil {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(o.Status())
		})
	}
	if o.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if o.Extra != nil {
		o.Extra(mux)
	}
	return mux
}

// Run serves until ctx ends, then shuts down within five seconds.
func (o *Ops) Run(ctx context.Context) error {
	if o.ln == nil {
		if err := o.Listen(); err != nil {
			return err
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           o.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(o.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ops server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, for a process's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
