package store

// syncDir is a no-op on Windows, which cannot open a directory for fsync.
// NTFS journals its metadata, so a rename is never half done, but a power
// failure just after PutBlob returns may undo it; OpenBlob then reports
// ErrNotFound and Apply refuses batches naming the blob until it is put again.
func syncDir(string) error { return nil }
