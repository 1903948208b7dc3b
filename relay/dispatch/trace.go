package dispatch

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// TraceID returns the request's trace id: the trace-id of a valid W3C
// traceparent header, else a valid X-Trace-Id header, else a new random
// one. fromTraceparent reports which header it came from.
func TraceID(r *http.Request) (id string, fromTraceparent bool) {
	if id, ok := parseTraceparent(r.Header.Get("traceparent")); ok {
		return id, true
	}
	if id := r.Header.Get("X-Trace-Id"); validTraceID(id) {
		return id, false
	}
	return newTraceID(), false
}

// parseTraceparent reads "version-traceid-parentid-flags" (W3C Trace
// Context): 2, 32, 16 and 2 lower-case hex digits, the version not "ff",
// and neither id all zeros.
func parseTraceparent(h string) (string, bool) {
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || (parts[0] == "00" && len(parts) != 4) {
		return "", false
	}
	for i, n := range []int{2, 32, 16, 2} {
		if len(parts[i]) != n || !isLowerHex(parts[i]) {
			return "", false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return "", false
	}
	return parts[1], true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validTraceID accepts 1 to 128 characters of letters, digits, '-', '_' and '.'.
func validTraceID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newTraceID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// traceparent makes a traceparent header for the response: the trace id
// when it is a W3C one, and a new span id.
func traceparent(traceID string) string {
	if len(traceID) != 32 || !isLowerHex(traceID) {
		return ""
	}
	var b [8]byte
	rand.Read(b[:])
	return "00-" + traceID + "-" + hex.EncodeToString(b[:]) + "-01"
}
