package store

// SetApplyHook installs a function that Apply runs at each stage of its
// transaction ("delete", "delete_prefix", "delete_folder", "upsert" with the index, then
// "record"); an error aborts the transaction there, as a crash would.
// Set it before any concurrent use.
func SetApplyHook(e *Embedded, h func(stage string, i int) error) { e.hook = h }

// Migrations are the schema steps, for tests that build an old database.
var Migrations = migrations
