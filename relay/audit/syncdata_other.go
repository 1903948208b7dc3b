//go:build !linux

package audit

import "os"

// syncData flushes f's data to stable storage (fsync: no fdatasync here).
func syncData(f *os.File) error { return f.Sync() }
