package dashboard

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// view is a Snapshot formatted for the template: every value is a string
// ready to print, so the template holds no logic and the formatting is
// tested on its own.
type view struct {
	Relay, Version, Uptime string
	Updated                string // Now as hh:mm:ss UTC
	NowISO                 string
	Systems                []systemRow
	Credentials            []credentialRow
	Errors                 []errorRow
	Volume                 []volumeRow
	Max1h, Max24h          string // the bars' full scale
	Agents                 []agentRow

	Style  template.CSS
	Script template.JS
}

type systemRow struct {
	Name, Status, StatusClass, Uptime, P50, P95 string
}

type credentialRow struct {
	Name, Detail, ExpiresAt, Remaining, State, StateClass string
}

type errorRow struct {
	Name, Rate, Detail string
	Points             string // SVG polyline points, one per hour
	Peak               string
}

type volumeRow struct {
	Name, Calls1h, Calls24h string
	Width1h, Width24h       string // bar widths in a 100-wide viewBox
}

type agentRow struct {
	Tenant, Agent, Transport, Sessions, Since, Crawl string
}

// Sparkline geometry: 24 points 5 units apart, values drawn between
// sparkTop and sparkBottom.
const (
	sparkStep   = 5
	sparkWidth  = sparkStep * (Hours - 1)
	sparkTop    = 1.0
	sparkBottom = 23.0
)

// newView formats s, whose Now must be set.
func newView(s Snapshot) view {
	v := view{
		Relay:   orDash(s.Relay),
		Version: orDash(s.Version),
		Uptime:  formatSpan(s.Uptime),
		Updated: s.Now.UTC().Format("15:04:05 UTC"),
		NowISO:  s.Now.UTC().Format(time.RFC3339),
	}
	var max1h, max24h int64
	for _, st := range s.Systems {
		max1h, max24h = max(max1h, st.Calls1h), max(max24h, st.Calls24h)
	}
	v.Max1h, v.Max24h = formatCount(max1h), formatCount(max24h)
	for _, st := range s.Systems {
		v.Systems = append(v.Systems, systemRow{
			Name:        st.System,
			Status:      orDash(st.Status),
			StatusClass: known(st.Status, StatusUp, StatusDegraded, StatusDown, StatusIdle),
			Uptime:      formatPercent(st.Uptime24h),
			P50:         formatLatency(st.P50),
			P95:         formatLatency(st.P95),
		})
		points, peak := sparkline(st.Hourly)
		v.Errors = append(v.Errors, errorRow{
			Name:   st.System,
			Rate:   formatPercent(st.ErrorRate24h),
			Detail: formatCount(st.Errors24h) + " of " + formatCount(st.Calls24h),
			Points: points,
			Peak:   formatPercent(peak),
		})
		v.Volume = append(v.Volume, volumeRow{
			Name:     st.System,
			Calls1h:  formatCount(st.Calls1h),
			Calls24h: formatCount(st.Calls24h),
			Width1h:  barWidth(st.Calls1h, max1h),
			Width24h: barWidth(st.Calls24h, max24h),
		})
	}
	for _, c := range s.Credentials {
		state := c.State
		if state == "" {
			state = StateOK
			if !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(s.Now) {
				state = StateExpired
			}
		}
		class := known(state, StateOK, StateExpiring, StateExpired)
		if state == StateReenrollmentNeeded {
			class = "reenroll"
		}
		detail := orDash(c.Kind)
		if c.Tenant != "" {
			detail += " · " + c.Tenant
		}
		v.Credentials = append(v.Credentials, credentialRow{
			Name:       c.Name,
			Detail:     detail,
			ExpiresAt:  formatTime(c.ExpiresAt),
			Remaining:  formatRemaining(c.ExpiresAt, s.Now),
			State:      state,
			StateClass: class,
		})
	}
	for _, a := range s.Agents {
		since := formatTime(a.ConnectedSince)
		if !a.ConnectedSince.IsZero() {
			since += " (" + formatSpan(s.Now.Sub(a.ConnectedSince)) + ")"
		}
		v.Agents = append(v.Agents, agentRow{
			Tenant:    a.Tenant,
			Agent:     a.Agent,
			Transport: orDash(a.Transport),
			Sessions:  formatCount(int64(a.Sessions)),
			Since:     since,
			Crawl:     orDash(a.Crawl),
		})
	}
	return v
}

// known returns v when it is one of the allowed values, for use as a CSS
// class name, and "unknown" otherwise.
func known(v string, allowed ...string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return "unknown"
}

// orDash returns s, or an em dash when s is empty.
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// sparkline returns the polyline points of the hourly error rates and the
// peak rate. The scale tops out at the peak, or at DegradedErrorRate when
// the peak is lower, so that a healthy system's stray errors stay near the
// bottom. Hours without calls draw as 0.
func sparkline(hourly [Hours]Bucket) (string, float64) {
	var rates [Hours]float64
	var peak float64
	for i, b := range hourly {
		if b.Calls > 0 {
			rates[i] = float64(b.Errors) / float64(b.Calls)
			peak = max(peak, rates[i])
		}
	}
	scale := max(peak, DegradedErrorRate)
	var sb strings.Builder
	for i, r := range rates {
		y := sparkBottom - r/scale*(sparkBottom-sparkTop)
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(strconv.Itoa(i * sparkStep))
		sb.WriteByte(',')
		sb.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return sb.String(), peak
}

// barWidth is n's share of full on a 0..100 scale, at least 1 when n > 0 so
// that a little traffic stays visible.
func barWidth(n, full int64) string {
	if n <= 0 || full <= 0 {
		return "0"
	}
	return strconv.FormatFloat(max(1, 100*float64(n)/float64(full)), 'f', 1, 64)
}

// formatCount prints n with thousands separators: 4,292.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var sb strings.Builder
	if neg {
		sb.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

// formatPercent prints a share in [0, 1] as a percentage with at most one
// decimal, never rounding a nonzero share to 0% or a share below 1 to 100%.
func formatPercent(f float64) string {
	switch {
	case f <= 0:
		return "0%"
	case f >= 1:
		return "100%"
	case f < 0.001:
		return "<0.1%"
	case f > 0.999:
		return ">99.9%"
	}
	s := strconv.FormatFloat(f*100, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + "%"
}

// formatLatency prints a latency with a unit and two or three significant
// digits: 850 µs, 4.2 ms, 120 ms, 1.25 s, 14.0 s; an em dash for 0.
func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// formatSpan prints a duration coarsely, in its two largest units:
// 29 d 4 h, 3 h 12 m, 4 m 10 s, 45 s.
func formatSpan(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Truncate(time.Second)
	const day = 24 * time.Hour
	units := []struct {
		size time.Duration
		name string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units[:len(units)-1] {
		if d >= u.size {
			next := units[i+1]
			big, small := d/u.size, (d%u.size)/next.size
			if small == 0 {
				return fmt.Sprintf("%d %s", big, u.name)
			}
			return fmt.Sprintf("%d %s %d %s", big, u.name, small, next.name)
		}
	}
	return fmt.Sprintf("%d s", d/time.Second)
}

// formatRemaining prints the time from now to expiry, or how long ago it
// expired.
func formatRemaining(expires, now time.Time) string {
	if expires.IsZero() {
		return "—"
	}
	d := expires.Sub(now)
	if d <= 0 {
		return "expired " + formatSpan(d) + " ago"
	}
	return formatSpan(d)
}

// formatTime prints t in UTC to the minute (the column headers say UTC);
// an em dash for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04")
}
