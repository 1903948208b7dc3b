package audit

// syncDir is a no-op on Windows, which cannot open a directory for fsync.
// NTFS journals its metadata; a power failure just after a tenant's first
// record may lose the new file, and with it only that record.
func syncDir(string) error { return nil }
