// Package s3test runs, for tests, what the S3 connector talks to: a fake
// AWS STS endpoint that implements the Query API's AssumeRole action as
// AWS documents it, and a real S3-compatible server (gofakes3 with its
// in-memory backend) behind a front that authenticates requests the way
// S3 does (SigV4 with the keys and session tokens the fake STS issued).
// Both record what they received and take injected faults.
//
// Flow of a test:
//
//	sts := s3test.NewSTS(s3test.STSConfig{Base: base, RoleARN: role, ExternalID: ext})
//	srv := s3test.NewS3(s3test.S3Config{STS: sts, Buckets: []string{"reports"}})
//	defer srv.Close(); defer sts.Close()
//	// connector: base keys -> POST sts.URL AssumeRole -> ASIA... keys -> srv.URL/reports/key
package s3test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Keys is an AWS credential: an access key pair and, for temporary
// credentials, a session token.
type Keys struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// Issued is a temporary credential the fake STS handed out.
type Issued struct {
	Keys
	Expiration  time.Time
	SessionName string
	// Revoked credentials are refused by the S3 server as expired.
	Revoked bool
}

// AssumeRoleCall is one request the fake STS received.
type AssumeRoleCall struct {
	// AccessKeyID and SecurityToken are those of the signing credential
	// (the Authorization header's Credential= and X-Amz-Security-Token).
	AccessKeyID   string
	SecurityToken string
	// SignatureValid says the SigV4 signature verified with the base secret.
	SignatureValid bool
	// The form parameters.
	Action, Version, RoleARN, RoleSessionName, ExternalID string
	DurationSeconds                                       int
	// ErrorCode is the error returned, "" for success.
	ErrorCode string
}

// Fault is a failure to inject into the next request a fake serves.
type Fault struct {
	// Status and Code (and Message) make the vendor's error body.
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Delay stalls the response (or until the client gives up).
	Delay time.Duration
}

// STSConfig configures the fake STS.
type STSConfig struct {
	// Base is the one credential allowed to call AssumeRole (the relay's).
	Base Keys
	// RoleARN is the one role that can be assumed.
	RoleARN string
	// ExternalID is what the role's trust policy requires; "" means the
	// trust policy has no sts:ExternalId condition.
	ExternalID string
	// Account is the role's account id, for AssumedRoleUser. Zero means
	// "111122223333".
	Account string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// STS is a fake AWS Security Token Service endpoint.
type STS struct {
	// URL is the endpoint, e.g. http://127.0.0.1:port.
	URL string

	cfg STSConfig
	srv *httptest.Server

	mu     sync.Mutex
	calls  []AssumeRoleCall   // guarded by mu
	issued map[string]*Issued // guarded by mu; by access key id
	faults []Fault            // guarded by mu
	seq    int                // guarded by mu
}

// NewSTS starts a fake STS on 127.0.0.1. Close it when done.
func NewSTS(cfg STSConfig) *STS {
	if cfg.Account == "" {
		cfg.Account = "111122223333"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &STS{cfg: cfg, issued: map[string]*Issued{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *STS) Close() { s.srv.Close() }

// Calls returns the AssumeRole requests received so far.
func (s *STS) Calls() []AssumeRoleCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AssumeRoleCall(nil), s.calls...)
}

// Issued returns the credentials handed out so far.
func (s *STS) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Issued
	for _, i := range s.issued {
		out = append(out, *i)
	}
	return out
}

// RevokeAll makes every credential issued so far expired (S3 answers
// ExpiredToken), like revoking the role's active sessions.
func (s *STS) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range s.issued {
		i.Revoked = true
	}
}

// Inject queues faults for the next requests, one each.
func (s *STS) Inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// lookup returns the issued credential with access key id, if any.
func (s *STS) lookup(akid string) (Issued, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.issued[akid]
	if !ok {
		return Issued{}, false
	}
	return *i, true
}

// sessionNameRE is RoleSessionName's documented pattern and length.
var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		stsError(w, http.StatusBadRequest, "Sender", "InvalidRequest", "could not read the request body")
		return
	}
	sum := sha256.Sum256(body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		stsError(w, http.StatusBadRequest, "Sender", "MalformedInput", "the request body is not a form")
		return
	}
	call := AssumeRoleCall{
		SecurityToken: r.Header.Get("X-Amz-Security-Token"),
		Action:        r.PostForm.Get("Action"), Version: r.PostForm.Get("Version"),
		RoleARN: r.PostForm.Get("RoleArn"), RoleSessionName: r.PostForm.Get("RoleSessionName"),
		ExternalID: r.PostForm.Get("ExternalId"),
	}
	fail := func(status int, typ, code, msg string) {
		call.ErrorCode = code
		s.record(call)
		stsError(w, status, typ, code, msg)
	}

	a, err := parseAuth(r.Header.Get("Authorization"))
	if err != nil {
		fail(http.StatusForbidden, "Sender", "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	call.AccessKeyID = a.AccessKeyID
	if r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "Sender", "InvalidAction", "AssumeRole is called with POST")
		return
	}
	if a.AccessKeyID != s.cfg.Base.AccessKeyID || call.SecurityToken != s.cfg.Base.SessionToken || a.Service != "sts" {
		fail(http.StatusForbidden, "Sender", "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	if err := verifySigV4(r, a, s.cfg.Base.SecretAccessKey, hex.EncodeToString(sum[:]), false, s.cfg.Now()); err != nil {
		fail(http.StatusForbidden, "Sender", "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
		return
	}
	call.SignatureValid = true

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
			typ := "Sender"
			if f.Status >= 500 {
				typ = "Receiver"
			}
			fail(f.Status, typ, f.Code, f.Message)
			return
		}
	}

	if call.Action != "AssumeRole" || call.Version != "2011-06-15" {
		fail(http.StatusBadRequest, "Sender", "InvalidAction", "Could not find operation "+call.Action+" for version "+call.Version)
		return
	}
	call.DurationSeconds = 3600
	if d := r.PostForm.Get("DurationSeconds"); d != "" {
		call.DurationSeconds, err = strconv.Atoi(d)
		if err != nil || call.DurationSeconds < 900 || call.DurationSeconds > 43200 {
			fail(http.StatusBadRequest, "Sender", "ValidationError", "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint")
			return
		}
	}
	if len(call.RoleARN) < 20 || !sessionNameRE.MatchString(call.RoleSessionName) {
		fail(http.StatusBadRequest, "Sender", "ValidationError", "1 validation error detected: roleArn or roleSessionName failed to satisfy constraint")
		return
	}
	if call.RoleARN != s.cfg.RoleARN || call.ExternalID != s.cfg.ExternalID {
		fail(http.StatusForbidden, "Sender", "AccessDenied",
			"User: arn:aws:iam::"+s.cfg.Account+":user/relay is not authorized to perform: sts:AssumeRole on resource: "+call.RoleARN)
		return
	}

	s.mu.Lock()
	s.seq++
	iss := &Issued{
		Keys: Keys{
			AccessKeyID:     fmt.Sprintf("ASIA%012d%s", s.seq, randHex(2)),
			SecretAccessKey: randHex(20),
			SessionToken:    "FwoGZXIvYXdzE" + randHex(48),
		},
		Expiration:  s.cfg.Now().Add(time.Duration(call.DurationSeconds) * time.Second).UTC().Truncate(time.Second),
		SessionName: call.RoleSessionName,
	}
	s.issued[iss.AccessKeyID] = iss
	s.calls = append(s.calls, call)
	s.mu.Unlock()

	roleName := call.RoleARN[strings.LastIndexByte(call.RoleARN, '/')+1:]
	resp := assumeRoleResponse{Xmlns: stsNS, RequestID: randUUID()}
	resp.Result.Credentials = stsCredentials{
		AccessKeyID: iss.AccessKeyID, SecretAccessKey: iss.SecretAccessKey, SessionToken: iss.SessionToken,
		Expiration: iss.Expiration.Format(time.RFC3339),
	}
	resp.Result.AssumedRoleUser.Arn = "arn:aws:sts::" + s.cfg.Account + ":assumed-role/" + roleName + "/" + call.RoleSessionName
	resp.Result.AssumedRoleUser.AssumedRoleID = "AROA" + randHex(8) + ":" + call.RoleSessionName
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", resp.RequestID)
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(resp)
}

func (s *STS) record(c AssumeRoleCall) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

// assumeRoleResponse is the documented AssumeRoleResponse document.
type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		AssumedRoleUser struct {
			Arn           string `xml:"Arn"`
			AssumedRoleID string `xml:"AssumedRoleId"`
		} `xml:"AssumedRoleUser"`
		Credentials      stsCredentials `xml:"Credentials"`
		PackedPolicySize int            `xml:"PackedPolicySize"`
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// stsErrorResponse is the Query API's documented ErrorResponse document.
type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func stsError(w http.ResponseWriter, status int, typ, code, msg string) {
	e := stsErrorResponse{Xmlns: stsNS, RequestID: randUUID()}
	e.Error.Type, e.Error.Code, e.Error.Message = typ, code, msg
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", e.RequestID)
	w.WriteHeader(status)
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(e)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%X", b)
}

func randUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
