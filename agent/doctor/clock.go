package doctor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
)

// pingPath is the relay's endpoint for agents that answers with its clock.
const pingPath = "/v1/tunnel/ping"

// clockSample is one reading of the relay's clock over a tunnel session.
type clockSample struct {
	transport     tunnel.Transport
	relay         time.Time     // the relay's clock
	coarse        bool          // relay comes from the Date header, to the second
	before, after time.Time     // Options.Now around the request
	took          time.Duration // the round trip, on the real clock
	peer          string        // who the relay says we are
	err           error
}

// sample reads the relay's clock with one request over a new stream of l,
// then lets the session go: GOAWAY right after the request, so that the
// relay sends nothing of its own on the doctor's session, and a drain once
// the answer is in.
func (r *runner) sample(ctx context.Context, l *tunnel.Link) clockSample {
	s := clockSample{transport: l.Transport()}
	defer r.release(ctx, l)
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	st, err := l.OpenStream(ctx)
	if err != nil {
		l.GoAway("bridge-agent doctor is done")
		s.err = fmt.Errorf("open a tunnel stream: %w", err)
		return s
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://relay"+pingPath, nil)
	if err != nil {
		s.err = err
		return s
	}
	req.Close = true
	req.Header.Set("User-Agent", "bridge-agent-doctor")
	s.before = r.opts.Now()
	start := time.Now()
	err = req.Write(st)
	l.GoAway("bridge-agent doctor is done")
	if err != nil {
		s.err = fmt.Errorf("send GET %s: %w", pingPath, err)
		return s
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), req)
	s.after = r.opts.Now()
	s.took = time.Since(start)
	if err != nil {
		s.err = fmt.Errorf("read the answer to GET %s: %w", pingPath, err)
		return s
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ping struct {
		Peer string    `json:"peer"`
		Time time.Time `json:"time"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &ping) == nil && !ping.Time.IsZero() {
		s.relay, s.peer = ping.Time, ping.Peer
		return s
	}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		// A relay without the ping endpoint still dates its answers.
		s.relay, s.coarse = d, true
		return s
	}
	s.err = fmt.Errorf("GET %s: %s, without a time or a Date header", pingPath, resp.Status)
	return s
}

// release drains a test session: the relay sees it end cleanly.
func (r *runner) release(ctx context.Context, l *tunnel.Link) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.opts.Timeout, 2*time.Second))
	defer cancel()
	l.Drain(dctx, "bridge-agent doctor is done")
	l.Close()
}

// clock reports the clock step of an address from its samples.
func (r *runner) clock(st *relayState) {
	name := "clock " + st.addr
	if len(st.samples) == 0 {
		r.skip(name, "needs a tunnel session with the relay (tls or udp/quic step)")
		return
	}
	var best *clockSample
	var errs []error
	for i := range st.samples {
		s := &st.samples[i]
		if s.err != nil {
			errs = append(errs, fmt.Errorf("over %s: %w", s.transport, s.err))
			continue
		}
		// A precise reading beats a Date header; then the faster round trip.
		if best == nil || best.coarse && !s.coarse || best.coarse == s.coarse && s.took < best.took {
			best = s
		}
	}
	if best == nil {
		r.add(Result{Step: name, Status: Fail, Detail: "the relay accepted the session but did not answer over it: " + errors.Join(errs...).Error(),
			Hint: "the agent could not deliver anything to this relay: check the relay's log and version"})
		return
	}
	local := best.before.Add(best.after.Sub(best.before) / 2)
	skew := best.relay.Sub(local) // > 0: this machine is behind
	margin := best.after.Sub(best.before) / 2
	source := "relay clock"
	if best.coarse {
		margin += time.Second
		source = "relay's HTTP Date header"
	}
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	off := max(0, abs-margin) // the least the clocks can differ by
	var detail string
	switch {
	case off == 0:
		detail = "this machine's clock matches the relay's" // within what one round trip can tell
	case skew > 0:
		detail = fmt.Sprintf("this machine is %s behind the relay", roundSkew(abs))
	default:
		detail = fmt.Sprintf("this machine is %s ahead of the relay", roundSkew(abs))
	}
	detail += fmt.Sprintf(" (±%s; %s read over %s in %s)", showSkew(margin), source, best.transport, roundTook(best.took))
	if best.peer != "" {
		detail += "; the relay sees this agent as " + best.peer
	}
	res := Result{Step: name, Status: Pass, Detail: detail, Took: best.took}
	fail := max(skewFailFloor, r.opts.MaxSkew)
	if off > r.opts.MaxSkew {
		res.Status = Warn
		if off > fail {
			res.Status = Fail
		}
		res.Detail = fmt.Sprintf("%s; more than %s", detail, r.opts.MaxSkew)
		res.Hint = "synchronise this machine's clock with NTP (Windows: w32tm /resync and w32tm /query /status; Linux: timedatectl, chrony or ntpd); " +
			"if this machine is right, the relay's clock is wrong: tell the relay operator. Certificates and Kerberos fail beyond a few minutes"
	}
	r.add(res)
}

// showSkew prints a clock difference, "<1ms" when it rounds to nothing.
func showSkew(d time.Duration) string {
	if d = roundSkew(d); d == 0 {
		return "<1ms"
	}
	return d.String()
}

func roundSkew(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
