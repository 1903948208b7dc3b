package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	kservice "github.com/kardianos/service"
)

// Runner is the program a service manager starts: Start runs Run with a
// context that Stop cancels, and Stop waits for Run to return, at most
// StopTimeout, so that the agent drains its tunnel and flushes its
// checkpoints inside the time the service manager allows.
type Runner struct {
	// Run runs the agent until ctx ends.
	Run func(ctx context.Context) error
	// StopTimeout bounds the wait in Stop. Default 30s.
	StopTimeout time.Duration

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
	stopping bool
}

// Start implements kardianos/service.Interface; it must not block.
func (r *Runner) Start(kservice.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("service: already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		err := r.Run(ctx)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(r.done)
	}()
	return nil
}

// Stop implements kardianos/service.Interface.
func (r *Runner) Stop(kservice.Service) error {
	r.mu.Lock()
	if r.done == nil {
		r.mu.Unlock()
		return nil
	}
	r.stopping = true
	r.cancel()
	done := r.done
	r.mu.Unlock()
	timeout := r.StopTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-done:
		return r.Err()
	case <-time.After(timeout):
		return fmt.Errorf("service: the agent did not stop within %s", timeout)
	}
}

// Done is closed when Run has returned; nil before Start.
func (r *Runner) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Err is what Run returned.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stopping reports whether Stop was called: a Run that returns without it
// failed on its own.
func (r *Runner) Stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// RunService runs r under the service manager that started this process
// and returns when the service stops. On Linux it returns when SIGTERM or
// SIGINT arrives or when the agent ends on its own; the caller should then
// exit non-zero if Err is set, so that the service manager restarts it.
func RunService(spec Spec, r *Runner) error {
	cfg, err := spec.ServiceConfig()
	if err != nil {
		return err
	}
	cfg.Option["RunWait"] = func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		defer signal.Stop(sig)
		select {
		case <-sig:
		case <-r.Done():
		}
	}
	svc, err := kservice.New(r, cfg)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return svc.Run()
}

// Interactive reports whether this process runs from a terminal rather than
// under a service manager.
func Interactive() bool { return kservice.Interactive() }

// SystemLogger returns the service manager's log for spec: the Windows
// event log when running as a Windows service.
func SystemLogger(spec Spec) (kservice.Logger, error) {
	cfg, err := spec.ServiceConfig()
	if err != nil {
		return nil, err
	}
	svc, err := kservice.New(noProgram{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	return svc.Logger(nil)
}
