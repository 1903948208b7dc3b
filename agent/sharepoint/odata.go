package sharepoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SharePoint answers in two OData shapes: verbose
// ({"d":{"results":[...],"__next":...}} or {"d":{entity}}) and JSON Light
// ({"value":[...],"odata.nextLink":...} or the bare entity).

// decodeCollection returns a collection's entries and its next link (empty
// at the end) from either format.
func decodeCollection(body []byte) ([]json.RawMessage, string, error) {
	return decodeCollectionOf[json.RawMessage](body)
}

// collectionOf is a collection page in either format, its entries decoded
// as T in the same pass.
type collectionOf[T any] struct {
	D *struct {
		Results []T    `json:"results"`
		Next    string `json:"__next"`
	} `json:"d"`
	Value    []T    `json:"value"`
	NextLink string `json:"odata.nextLink"`
	// JSON Light with full metadata names it "@odata.nextLink" on newer servers.
	NextLink4 string `json:"@odata.nextLink"`
}

// decodeCollectionOf is decodeCollection with the entries decoded as T in
// one pass over the page (a page of items is most of what a crawl parses).
func decodeCollectionOf[T any](body []byte) ([]T, string, error) {
	var c collectionOf[T]
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, "", fmt.Errorf("decode collection: %w", err)
	}
	if c.D != nil {
		return c.D.Results, c.D.Next, nil
	}
	next := c.NextLink
	if next == "" {
		next = c.NextLink4
	}
	return c.Value, next, nil
}

// decodeEntity returns one entity's JSON from either format.
func decodeEntity(body []byte) (json.RawMessage, error) {
	var env struct {
		D json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decode entity: %w", err)
	}
	if len(env.D) > 0 {
		return env.D, nil
	}
	return body, nil
}

// Int64 is an Edm.Int64, which SharePoint serializes as a JSON string.
type Int64 int64

// UnmarshalJSON accepts a number or a string.
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("Int64 %s: %w", b, err)
	}
	*n = Int64(v)
	return nil
}

// Time is an Edm.DateTime: with an offset, or (some fields) in the site's
// local time without one, or the verbose "/Date(ms)/" form.
type Time struct {
	time.Time
	// NoOffset is true when the server sent no offset: the time is then
	// in the site's local zone, and Time holds it as if it were UTC.
	NoOffset bool
}

// UnmarshalJSON parses the forms SharePoint uses. Times without an offset
// are taken as UTC here; the client re-reads them in the site's zone.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		t.Time = time.Time{}
		return nil
	}
	if strings.HasPrefix(s, "/Date(") {
		ms, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(s, "/Date("), ")/"), 10, 64)
		if err != nil {
			return fmt.Errorf("time %s: %w", b, err)
		}
		t.Time = time.UnixMilli(ms).UTC()
		return nil
	}
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t.Time, t.NoOffset = v.UTC(), false
		return nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time, t.NoOffset = v, true
			return nil
		}
	}
	return fmt.Errorf("time %s: unknown format", b)
}

// deferred reports whether raw is a verbose {"__deferred":...} navigation
// property or null rather than an expanded entity.
func deferred(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Contains(raw[:min(len(raw), 20)], []byte(`"__deferred"`))
}

// apiErrorBody is both error envelopes.
type apiErrorBody struct {
	Error *struct {
		Code    string `json:"code"`
		Message struct {
			Value string `json:"value"`
		} `json:"message"`
	} `json:"error"`
	LightError *struct {
		Code    string `json:"code"`
		Message struct {
			Value string `json:"value"`
		} `json:"message"`
	} `json:"odata.error"`
}

// Well-known SharePoint error codes.
const (
	CodeThrottled      = -2147024860 // SPQueryThrottledException: list view threshold
	CodeNotFound       = -2130575338
	CodeBadDigest      = -2130575251
	CodeTokenExpired   = -2130575172 // change token before the start of the change log
	CodeTokenWrongObj  = -2130575173 // change token for another object
	CodeInvalidRequest = -1
)

// APIError is an error SharePoint answered with.
type APIError struct {
	Status  int
	Code    int
	Type    string
	Message string
	URL     string // without query, for logs
}

func (e *APIError) Error() string {
	if e.Code != 0 || e.Type != "" {
		return fmt.Sprintf("sharepoint %s: HTTP %d: %d, %s: %s", e.URL, e.Status, e.Code, e.Type, e.Message)
	}
	return fmt.Sprintf("sharepoint %s: HTTP %d %s", e.URL, e.Status, e.Message)
}

func parseAPIError(status int, body []byte, url string) *APIError {
	e := &APIError{Status: status, URL: url}
	var eb apiErrorBody
	if json.Unmarshal(body, &eb) == nil {
		inner := eb.Error
		if inner == nil {
			inner = eb.LightError
		}
		if inner != nil {
			code, typ, _ := strings.Cut(inner.Code, ",")
			e.Code, _ = strconv.Atoi(strings.TrimSpace(code))
			e.Type = strings.TrimSpace(typ)
			e.Message = inner.Message.Value
			return e
		}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	e.Message = msg
	return e
}

// IsCode reports whether err is an APIError with one of codes.
func IsCode(err error, codes ...int) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.Code == c {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err says the object does not exist (a 404 or
// SharePoint's "does not exist" code).
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == CodeNotFound)
}

// odataLiteral quotes s as an OData string literal inside a URL path:
// apostrophes doubled, then escaped for the URL.
func odataLiteral(s string) string {
	return "'" + pathEscape(strings.ReplaceAll(s, "'", "''")) + "'"
}

// pathEscape escapes for a URL path segment, keeping '/' readable.
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-._~/()!*,;:@$", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
