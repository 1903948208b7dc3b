//go:build unix

package tunnelbench

import (
	"fmt"
	"syscall"
	"time"
)

// processCPU returns the user plus system CPU time of the whole process so
// far, every thread included.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
