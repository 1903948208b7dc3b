package tunnelbench

import (
	"math"
	"runtime"
	"slices"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of d,
// which it sorts; zero when d is empty.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// median is the 50th percentile of a copy of d.
func median(d []time.Duration) time.Duration {
	return percentile(slices.Clone(d), 50)
}

// memInUse collects garbage and returns the heap and stack memory in use.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
