package durable

// SyncDir is a no-op on Windows, which cannot open a directory for fsync.
// NTFS journals its metadata, so a rename is never half done, but a power
// failure just after one may undo it: callers document what that loses.
func SyncDir(string) error { return nil }
