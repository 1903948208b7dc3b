package audit

import (
	"context"
	"io/fs"
)

// File is what the log needs of an open tenant file, for tests that inject
// faults.
type File = file

// OpenWithFiles is Open with tenant files opened by open instead of
// os.OpenFile.
func OpenWithFiles(ctx context.Context, dir string, opts Options, open func(name string, flag int, perm fs.FileMode) (File, error)) (*Log, error) {
	return openLog(ctx, dir, opts, open)
}

// Syncs returns how many fsyncs of tenant files the log has made since Open.
func Syncs(l *Log) int64 { return l.syncs.Load() }
