package webhooks

import (
	"errors"
	"fmt"
)

// Sentinel errors, compared with errors.Is.
var (
	// ErrClosed is returned by the Hub's methods after Close.
	ErrClosed = errors.New("webhook hub closed")
	// ErrRunning is returned by Run when another Run of the same Hub is
	// active.
	ErrRunning = errors.New("webhook hub already running")
	// ErrInvalid wraps every refusal of a configuration or argument.
	ErrInvalid = errors.New("invalid argument")
	// ErrPermanent marks a delivery error that retrying cannot fix: a
	// Subscriber returns an error wrapping it (see Permanent) and the event
	// goes to the dead-letter queue at once.
	ErrPermanent = errors.New("permanent delivery failure")
)

// Permanent wraps err so that it matches ErrPermanent as well as err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
