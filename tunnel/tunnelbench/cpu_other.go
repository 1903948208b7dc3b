//go:build !unix && !windows

package tunnelbench

import (
	"errors"
	"time"
)

// processCPU is not available here.
func processCPU() (time.Duration, error) {
	return 0, errors.New("process CPU time is not available on this system")
}
