package audit

import (
	"errors"
	"fmt"
)

// Sentinel errors, compared with errors.Is.
var (
	// ErrClosed is returned by Append, Query and Head after Close.
	ErrClosed = errors.New("audit log closed")
	// ErrInvalid wraps every refusal of an argument: a malformed tenant, a
	// record that cannot be encoded, a bad query.
	ErrInvalid = errors.New("invalid argument")
	// ErrLocked is returned by Open when another Log, in this process or
	// another, has the directory open.
	ErrLocked = errors.New("audit log directory locked")
	// ErrChainBroken wraps every *ChainError: a tenant's chain does not
	// verify.
	ErrChainBroken = errors.New("audit chain broken")
)

// ChainError names where a tenant's hash chain first fails to verify. It
// unwraps to ErrChainBroken.
type ChainError struct {
	// Tenant is the tenant whose chain is broken.
	Tenant string
	// Seq is the sequence number of the record at which the break was
	// found; for a line that does not parse, the number it should have had.
	Seq uint64
	// Line is the 1-based line number in the tenant's file, or 0 when not
	// known (Open checks only the last line).
	Line int
	// Reason says what is wrong, e.g. "hash mismatch (record edited)".
	Reason string
}

// Error names the tenant, sequence number, line and reason.
func (e *ChainError) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("tenant %s: seq %d: %s", e.Tenant, e.Seq, e.Reason)
	}
	return fmt.Sprintf("tenant %s: seq %d (line %d): %s", e.Tenant, e.Seq, e.Line, e.Reason)
}

// Unwrap returns ErrChainBroken.
func (e *ChainError) Unwrap() error { return ErrChainBroken }
