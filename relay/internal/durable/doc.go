// Package durable holds the file-system steps that make the relay's
// on-disk state survive a crash: syncing a directory after creating or
// renaming entries in it.
package durable
