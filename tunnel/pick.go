package tunnel

// Pick chooses the link for a new stream: among links that are not draining,
// a healthy one (heard from recently) before a stale one, and among those the
// one with the fewest open streams. Ties go to the first at or after start,
// so callers can rotate start to spread load. Pick returns nil when every
// link is draining or closed.
func Pick(links []*Link, start int) *Link {
	var best *Link
	bestHealthy := false
	n := len(links)
	for i := range n {
		l := links[(start+i)%n]
		if l.Draining() || l.isDone() {
			continue
		}
		h := l.Healthy()
		switch {
		case best == nil,
			h && !bestHealthy,
			h == bestHealthy && l.ActiveStreams() < best.ActiveStreams():
			best, bestHealthy = l, h
		}
	}
	return best
}

func (l *Link) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}
