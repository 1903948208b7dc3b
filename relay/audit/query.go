package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Query limits.
const (
	// DefaultLimit is the page size when Query.Limit is zero.
	DefaultLimit = 100
	// MaxLimit is the largest page Query returns.
	MaxLimit = 1000
)

// Query selects records of one tenant. Zero fields other than Tenant do
// not filter; string fields match exactly.
type Query struct {
	// Tenant is the tenant whose records are read. Required.
	Tenant string
	// Since and Until bound Timestamp: Since inclusive, Until exclusive.
	Since, Until time.Time
	// UserID matches User.ID.
	UserID string
	// TargetSystem matches TargetSystem.
	TargetSystem string
	// Operation matches Operation.
	Operation string
	// TraceID matches TraceID.
	TraceID string
	// EventType matches EventType.
	EventType string
	// Limit is the most records returned: zero means DefaultLimit, more
	// than MaxLimit means MaxLimit; negative is refused.
	Limit int
	// After skips records with Seq <= After. To page, pass the Seq of the
	// last record of the previous page.
	After uint64
}

// Query returns the tenant's durable records that match q, in Seq order,
// at most q.Limit of them. It reads only the tenant's file, and only as far
// as the last fsync, so it never returns a record whose Append could still
// fail. A line that does not decode fails the query with ErrChainBroken:
// run Verify.
func (l *Log) Query(ctx context.Context, q Query) ([]Record, error) {
	if err := checkTenant(q.Tenant); err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("audit query: %w: limit must not be negative", ErrInvalid)
	}
	limit := min(q.Limit, MaxLimit)
	if limit == 0 {
		limit = DefaultLimit
	}
	c, err := l.lookup(q.Tenant)
	if err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	out := []Record{}
	if c == nil {
		return out, nil
	}
	size := c.head.Load().size
	f, err := os.Open(c.path)
	if err != nil {
		return nil, fmt.Errorf("audit query: tenant %s: %w", q.Tenant, err)
	}
	defer f.Close()

	// Needles reject most lines without decoding them; the decoded record
	// is then matched exactly.
	var needles [][]byte
	for _, n := range []struct{ prefix, value string }{
		{`"traceId":`, q.TraceID},
		{`"eventType":`, q.EventType},
		{`"targetSystem":`, q.TargetSystem},
		{`"operation":`, q.Operation},
		{`"user":{"id":`, q.UserID},
	} {
		if n.value != "" {
			v, _ := json.Marshal(n.value) // a string always encodes
			needles = append(needles, append([]byte(n.prefix), v...))
		}
	}

	lr := newLineReader(io.NewSectionReader(f, 0, size))
	for n := 1; ; n++ {
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) || err == nil && !complete {
			break // the durable size ends with a whole line
		}
		if err != nil {
			return nil, fmt.Errorf("audit query: tenant %s: %w", q.Tenant, err)
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("audit query: %w", err)
			}
		}
		if q.After > 0 {
			if seq, ok := lineSeq(line); ok && seq <= q.After {
				continue
			}
		}
		if !q.Since.IsZero() || !q.Until.IsZero() {
			if ts, ok := lineTime(line); ok && !inRange(ts, q.Since, q.Until) {
				continue
			}
		}
		if !containsAll(line, needles) {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("audit query: %w", &ChainError{Tenant: q.Tenant, Line: n, Reason: "line does not parse: " + err.Error()})
		}
		if q.matches(&r) {
			out = append(out, r)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// matches reports whether r passes every filter of q.
func (q *Query) matches(r *Record) bool {
	return r.Seq > q.After &&
		inRange(r.Timestamp, q.Since, q.Until) &&
		(q.UserID == "" || r.User.ID == q.UserID) &&
		(q.TargetSystem == "" || r.TargetSystem == q.TargetSystem) &&
		(q.Operation == "" || r.Operation == q.Operation) &&
		(q.TraceID == "" || r.TraceID == q.TraceID) &&
		(q.EventType == "" || r.EventType == q.EventType)
}

// inRange reports whether since <= t < until; a zero bound is open.
func inRange(t, since, until time.Time) bool {
	return (since.IsZero() || !t.Before(since)) && (until.IsZero() || t.Before(until))
}

func containsAll(line []byte, needles [][]byte) bool {
	for _, n := range needles {
		if !bytes.Contains(line, n) {
			return false
		}
	}
	return true
}

// lineReader reads lines of any length.
type lineReader struct {
	r    *bufio.Reader
	long []byte // a line longer than r's buffer, assembled
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its newline, valid until the next
// call, and whether it had a newline (only the last line may not). It
// returns io.EOF when there are no more bytes.
func (lr *lineReader) next() (line []byte, complete bool, err error) {
	lr.long = lr.long[:0]
	for {
		b, err := lr.r.ReadSlice('\n')
		switch {
		case err == nil && len(lr.long) == 0:
			return b[:len(b)-1], true, nil
		case err == nil:
			lr.long = append(lr.long, b...)
			return lr.long[:len(lr.long)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			lr.long = append(lr.long, b...)
		case errors.Is(err, io.EOF):
			lr.long = append(lr.long, b...)
			if len(lr.long) == 0 {
				return nil, false, io.EOF
			}
			return lr.long, false, nil
		default:
			return nil, false, err
		}
	}
}
