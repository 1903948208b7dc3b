package s3test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Signature Version 4, verified from AWS's published description ("Create
// a signed AWS API request"), independently of the SDK that signs: the
// fakes recompute the signature with the secret they know and compare.

// authHeader is a parsed SigV4 Authorization header.
type authHeader struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

// scope is the credential scope: date/region/service/aws4_request.
func (a authHeader) scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
}

// errNoAuth says a request carries no SigV4 Authorization header.
var errNoAuth = errors.New("no AWS4-HMAC-SHA256 Authorization header")

// parseAuth parses "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=hex".
func parseAuth(h string) (authHeader, error) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return authHeader{}, errNoAuth
	}
	var a authHeader
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authHeader{}, fmt.Errorf("malformed Authorization component %q", k)
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return authHeader{}, errors.New("malformed credential scope")
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
		case "Signature":
			a.Signature = v
		}
	}
	if a.AccessKeyID == "" || len(a.SignedHeaders) == 0 || a.Signature == "" {
		return authHeader{}, errors.New("incomplete Authorization header")
	}
	return a, nil
}

// verifySigV4 checks r's signature (already parsed into a) with secret.
// payloadHash is the hex SHA-256 of the body, or the literal S3 puts in
// X-Amz-Content-Sha256 (e.g. UNSIGNED-PAYLOAD). s3Path says the canonical
// URI is encoded once (S3) rather than twice (every other service).
func verifySigV4(r *http.Request, a authHeader, secret, payloadHash string, s3Path bool, now time.Time) error {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return errors.New("missing or malformed X-Amz-Date")
	}
	if d := now.Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return errors.New("request time too skewed")
	}
	if t.Format("20060102") != a.Date {
		return errors.New("credential scope date differs from X-Amz-Date")
	}
	signed := map[string]bool{}
	for _, h := range a.SignedHeaders {
		signed[h] = true
	}
	if !signed["host"] || !signed["x-amz-date"] {
		return errors.New("host and x-amz-date must be signed")
	}
	if r.Header.Get("X-Amz-Security-Token") != "" && !signed["x-amz-security-token"] {
		return errors.New("x-amz-security-token must be signed")
	}

	uri := awsEncode(r.URL.Path, false)
	if !s3Path {
		uri = awsEncode(uri, false)
	}
	if uri == "" {
		uri = "/"
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n" + uri + "\n" + canonicalQuery(r) + "\n")
	for _, h := range a.SignedHeaders {
		canon.WriteString(h + ":" + canonicalHeader(r, h) + "\n")
	}
	canon.WriteString("\n" + strings.Join(a.SignedHeaders, ";") + "\n" + payloadHash)

	sum := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + a.scope() + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + secret)
	for _, p := range []string{a.Date, a.Region, a.Service, "aws4_request"} {
		key = hmacSHA256(key, p)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return errors.New("signature does not match")
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalHeader is the canonical value of header h (lower-case name).
func canonicalHeader(r *http.Request, h string) string {
	var vals []string
	switch h {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		vals = []string{fmt.Sprint(r.ContentLength)}
	default:
		vals = r.Header.Values(h)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// canonicalQuery sorts the query's encoded name=value pairs.
func canonicalQuery(r *http.Request) string {
	var pairs []string
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			pairs = append(pairs, awsEncode(k, true)+"="+awsEncode(v, true))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// awsEncode percent-encodes every byte but the unreserved characters
// (A-Z a-z 0-9 - . _ ~), with upper-case hex; '/' too when slash is true.
func awsEncode(s string, slash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && !slash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
