package s3test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Config configures the S3 server.
type S3Config struct {
	// STS issued the credentials the server accepts. Required.
	STS *STS
	// Buckets are created empty at start.
	Buckets []string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Request is one request the S3 server received (path-style).
type Request struct {
	Method, Bucket, Key string
	Query               url.Values
	// AccessKeyID is the Authorization header's Credential= key and
	// SecurityToken the X-Amz-Security-Token header.
	AccessKeyID   string
	SecurityToken string
	// ErrorCode is the error the front returned, "" when it passed the
	// request to gofakes3.
	ErrorCode string
}

// S3 is gofakes3's in-memory S3 behind a front that authenticates
// requests with the fake STS's credentials, records them and injects
// faults.
type S3 struct {
	// URL is the endpoint, for path-style requests (URL/bucket/key).
	URL string

	cfg     S3Config
	backend *s3mem.Backend
	srv     *httptest.Server

	mu       sync.Mutex
	requests []Request // guarded by mu
	faults   []Fault   // guarded by mu
}

// NewS3 starts the server on 127.0.0.1. Close it when done.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.STS == nil {
		return nil, fmt.Errorf("s3test: an STS is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &S3{cfg: cfg, backend: s3mem.New()}
	for _, b := range cfg.Buckets {
		if err := s.backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("s3test: create bucket %s: %w", b, err)
		}
	}
	inner := gofakes3.New(s.backend, gofakes3.WithAutoBucket(false)).Server()
	s.srv = httptest.NewServer(s.front(inner))
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server.
func (s *S3) Close() { s.srv.Close() }

// Put stores an object directly in the backend (test setup).
func (s *S3) Put(bucket, key, contentType string, content []byte) error {
	meta := map[string]string{"Content-Type": contentType}
	if _, err := s.backend.PutObject(bucket, key, meta, bytes.NewReader(content), int64(len(content)), nil); err != nil {
		return fmt.Errorf("s3test: put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Get reads an object directly from the backend (test inspection).
func (s *S3) Get(bucket, key string) (content []byte, contentType string, err error) {
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, "", fmt.Errorf("s3test: get %s/%s: %w", bucket, key, err)
	}
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	return b, obj.Metadata["Content-Type"], err
}

// Requests returns the requests received so far.
func (s *S3) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Inject queues faults for the next authenticated requests, one each.
func (s *S3) Inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// front authenticates a request as S3 does, then hands it to next.
func (s *S3) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		req := Request{Method: r.Method, Bucket: bucket, Key: key, Query: r.URL.Query(), SecurityToken: r.Header.Get("X-Amz-Security-Token")}
		fail := func(status int, code, msg string) {
			req.ErrorCode = code
			s.record(req)
			s3Error(w, r, status, code, msg)
		}

		a, err := parseAuth(r.Header.Get("Authorization"))
		if err != nil {
			fail(http.StatusForbidden, "AccessDenied", "Access Denied")
			return
		}
		req.AccessKeyID = a.AccessKeyID
		iss, ok := s.cfg.STS.lookup(a.AccessKeyID)
		switch {
		case !ok || a.Service != "s3":
			fail(http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
			return
		case req.SecurityToken != iss.SessionToken:
			fail(http.StatusBadRequest, "InvalidToken", "The provided token is malformed or otherwise invalid.")
			return
		case iss.Revoked || !s.cfg.Now().Before(iss.Expiration):
			fail(http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
			return
		}
		payload := r.Header.Get("X-Amz-Content-Sha256")
		if payload == "" {
			fail(http.StatusBadRequest, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
			return
		}
		if len(payload) == 64 {
			body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
			if err != nil {
				fail(http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
				return
			}
			if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != payload {
				fail(http.StatusBadRequest, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if err := verifySigV4(r, a, iss.SecretAccessKey, payload, true, s.cfg.Now()); err != nil {
			fail(http.StatusForbidden, "SignatureDoesNotMatch",
				"The request signature we calculated does not match the signature you provided. Check your key and signing method.")
			return
		}

		s.mu.Lock()
		var f *Fault
		if len(s.faults) > 0 {
			f = &s.faults[0]
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		if f != nil {
			if f.Delay > 0 {
				select {
				case <-time.After(f.Delay):
				case <-r.Context().Done():
				}
			}
			if f.Status != 0 {
				if f.RetryAfter != "" {
					w.Header().Set("Retry-After", f.RetryAfter)
				}
				fail(f.Status, f.Code, f.Message)
				return
			}
		}
		s.record(req)
		next.ServeHTTP(w, r)
	})
}

func (s *S3) record(r Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
}

// s3ErrorBody is S3's documented REST error document.
type s3ErrorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	e := s3ErrorBody{Code: code, Message: msg, Resource: r.URL.Path, RequestID: randHex(8), HostID: randHex(24)}
	w.Header().Set("X-Amz-Request-Id", e.RequestID)
	w.Header().Set("X-Amz-Id-2", e.HostID)
	if r.Method == http.MethodHead { // HEAD responses carry no body
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(e)
}
