package service

import (
	"context"
	"log/slog"
	"strings"

	kservice "github.com/kardianos/service"
)

// SystemLogHandler returns a handler that passes every record to next and
// copies warnings and errors to sys, the service manager's log (the Windows
// event log). The journal needs no copy: it already has standard error.
func SystemLogHandler(next slog.Handler, sys kservice.Logger) slog.Handler {
	opts := func(lv slog.Level) *slog.HandlerOptions { return &slog.HandlerOptions{Level: lv} }
	return &teeHandler{
		next: next,
		warn: slog.NewTextHandler(sysWriter(sys.Warning), opts(slog.LevelWarn)),
		err:  slog.NewTextHandler(sysWriter(sys.Error), opts(slog.LevelError)),
	}
}

type teeHandler struct {
	next, warn, err slog.Handler
}

func (h *teeHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return h.next.Enabled(ctx, lv) || lv >= slog.LevelWarn
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	switch {
	case r.Level >= slog.LevelError:
		_ = h.err.Handle(ctx, r)
	case r.Level >= slog.LevelWarn:
		_ = h.warn.Handle(ctx, r)
	}
	return err
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{next: h.next.WithAttrs(as), warn: h.warn.WithAttrs(as), err: h.err.WithAttrs(as)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{next: h.next.WithGroup(name), warn: h.warn.WithGroup(name), err: h.err.WithGroup(name)}
}

// sysWriter turns each formatted line into one system log entry.
type sysWriter func(v ...any) error

func (w sysWriter) Write(p []byte) (int, error) {
	return len(p), w(strings.TrimRight(string(p), "\n"))
}
