package endpoint

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// LogConfig is the log section of a configuration file.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// File, when set, also writes the log to this file, rotated by size.
	// Default: none (the journal, the Windows event log or the terminal
	// has it).
	File string `yaml:"file"`
	// MaxSizeMB rotates the file at this size. Default 50.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files to keep. Default 5.
	MaxBackups int `yaml:"max_backups"`
	// MaxAgeDays removes rotated files older than this. Default 0: by
	// count only.
	MaxAgeDays int `yaml:"max_age_days"`
}

// Open builds the process logger writing to w and, when File is set, to
// the rotating file too. Close the returned closer at exit.
func (c LogConfig) Open(w io.Writer) (*slog.Logger, io.Closer, error) {
	if c.File == "" {
		log, err := c.Logger(w)
		return log, io.NopCloser(nil), err
	}
	if err := os.MkdirAll(filepath.Dir(c.File), 0o750); err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	// Fail now, with the path, rather than at the first line.
	f, err := os.OpenFile(c.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	f.Close()
	size, backups := c.MaxSizeMB, c.MaxBackups
	if size <= 0 {
		size = 50
	}
	if backups <= 0 {
		backups = 5
	}
	file := &lumberjack.Logger{Filename: c.File, MaxSize: size, MaxBackups: backups, MaxAge: c.MaxAgeDays}
	log, err := c.Logger(io.MultiWriter(w, file))
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	return log, file, nil
}

// Logger builds the process logger writing to w.
func (c LogConfig) Logger(w io.Writer) (*slog.Logger, error) { return NewLogger(w, c.Format, c.Level) }

// NewLogger builds the process logger: format "text" (the default) or
// "json", level "debug", "info" (the default), "warn" or "error".
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
