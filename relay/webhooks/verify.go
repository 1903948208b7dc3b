package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// verifier checks the requests to one endpoint, one implementation per
// scheme. Implementations are safe for concurrent use and never keep a
// reference to the request.
type verifier interface {
	verify(in *inbound) verdict
}

// inbound is what a verifier sees of a request.
type inbound struct {
	header http.Header
	body   []byte
	now    time.Time
}

// verdict is a verifier's decision.
type verdict struct {
	// outcome is empty when the request verified. OutcomeForged with sig
	// set means a well-formed signature that did not match: the Hub turns
	// it into OutcomeTampered when it accepted that signature before.
	outcome Outcome
	// sig is the presented signature, decoded, when there was one.
	sig []byte
	// key is the replay key of a verified event.
	key [sha256.Size]byte
	// challenge, when set, is a Slack url_verification challenge to echo.
	challenge string
	// handshake, when set, is an Asana X-Hook-Secret to store and echo.
	handshake connectors.Secret
	// heartbeat is true for a verified request with no event to queue.
	heartbeat bool
}

// newVerifier returns the verifier of ep's scheme. ep has its defaults.
func newVerifier(ep Endpoint, secrets *hookSecrets) verifier {
	k := endpointKey{ep.System, ep.Tenant}
	switch ep.Scheme {
	case SchemeSlack:
		return &slackVerifier{ep: k, mac: newMACKey(ep.Secret), header: ep.Header, tsHeader: ep.TimestampHeader, window: ep.Window}
	case SchemeAsana:
		return &asanaVerifier{ep: k, secrets: secrets, header: ep.Header}
	case SchemeWorkfront:
		v := &workfrontVerifier{ep: k, AuthToken: ep.AuthToken, authHeader: ep.AuthHeader, header: ep.Header}
		if ep.Secret != "" {
			v.mac = newMACKey(ep.Secret)
		}
		return v
	default: // SchemeHMAC; Endpoint.withDefaults refused the others.
		return &hmacVerifier{ep: k, mac: newMACKey(ep.Secret), header: ep.Header, tsHeader: ep.TimestampHeader, window: ep.Window}
	}
}

// slackVerifier implements SchemeSlack.
type slackVerifier struct {
	ep       endpointKey
	mac      *macKey
	header   string // X-Slack-Signature
	tsHeader string // X-Slack-Request-Timestamp
	window   time.Duration
}

func (v *slackVerifier) verify(in *inbound) verdict {
	sigHdr, tsHdr := in.header.Get(v.header), in.header.Get(v.tsHeader)
	if sigHdr == "" || tsHdr == "" {
		return verdict{outcome: OutcomeMissing}
	}
	ts, err := strconv.ParseInt(tsHdr, 10, 64)
	if err != nil {
		return verdict{outcome: OutcomeMissing}
	}
	sig, ok := decodeSig(sigHdr, "v0=")
	if !ok {
		return verdict{outcome: OutcomeForged}
	}
	var buf [sha256.Size]byte
	if !hmac.Equal(v.mac.sum(buf[:0], in.body, "v0:", tsHdr, ":"), sig) {
		return verdict{outcome: OutcomeForged, sig: sig}
	}
	if outside(in.now, ts, v.window) {
		return verdict{outcome: OutcomeStale, sig: sig}
	}
	env := parseSlack(in.body)
	if env.Type == "url_verification" {
		return verdict{sig: sig, challenge: env.Challenge}
	}
	if env.EventID != "" {
		// Slack retries (X-Slack-Retry-Num) carry the same event_id under
		// a new timestamp and signature.
		return verdict{sig: sig, key: replayKey(v.ep, "slack-event", []byte(env.EventID))}
	}
	return verdict{sig: sig, key: replayKey(v.ep, "body+ts", in.body, []byte(tsHdr))}
}

// slackEnvelope is the part of a Slack Events API body the Hub reads.
type slackEnvelope struct {
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
	EventID   string `json:"event_id"`
}

// parseSlack reads the envelope of a JSON body; other bodies (the form
// bodies of slash commands and interactions) give the zero envelope.
func parseSlack(body []byte) slackEnvelope {
	var env slackEnvelope
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return env
	}
	if json.Unmarshal(body, &env) != nil {
		return slackEnvelope{}
	}
	return env
}

// asanaVerifier implements SchemeAsana.
type asanaVerifier struct {
	ep      endpointKey
	secrets *hookSecrets
	header  string // X-Hook-Signature
}

// asanaHandshakeHeader carries the secret of a new Asana webhook.
const asanaHandshakeHeader = "X-Hook-Secret"

func (v *asanaVerifier) verify(in *inbound) verdict {
	if s := in.header.Get(asanaHandshakeHeader); s != "" {
		return verdict{handshake: connectors.Secret(s)}
	}
	key := v.secrets.get(v.ep)
	if key == nil {
		return verdict{outcome: OutcomeNoHandshake}
	}
	sigHdr := in.header.Get(v.header)
	if sigHdr == "" {
		return verdict{outcome: OutcomeMissing}
	}
	sig, ok := decodeSig(sigHdr, "")
	if !ok {
		return verdict{outcome: OutcomeForged}
	}
	var buf [sha256.Size]byte
	if !hmac.Equal(key.mac.sum(buf[:0], in.body), sig) {
		return verdict{outcome: OutcomeForged, sig: sig}
	}
	if asanaHeartbeat(in.body) {
		return verdict{sig: sig, heartbeat: true}
	}
	// Asana gives no delivery id: the signature and body identify a delivery.
	return verdict{sig: sig, key: replayKey(v.ep, "sig+body", sig, in.body)}
}

// asanaHeartbeat reports whether body is Asana's periodic {"events": []}.
func asanaHeartbeat(body []byte) bool {
	if len(body) > 64 { // a heartbeat is a few bytes; spare events the parse
		return false
	}
	var b struct {
		Events *[]struct{} `json:"events"`
	}
	return json.Unmarshal(body, &b) == nil && b.Events != nil && len(*b.Events) == 0
}

// workfrontVerifier implements SchemeWorkfront.
type workfrontVerifier struct {
	ep endpointKey
	// AuthToken is exported so that printing the verifier redacts it.
	AuthToken  connectors.Secret
	authHeader string  // Authorization
	mac        *macKey // nil: no signature expected
	header     string  // X-Workfront-Signature
}

func (v *workfrontVerifier) verify(in *inbound) verdict {
	tok := in.header.Get(v.authHeader)
	if tok == "" || (v.mac != nil && in.header.Get(v.header) == "") {
		return verdict{outcome: OutcomeMissing}
	}
	if !tokenEqual(tok, v.AuthToken) {
		return verdict{outcome: OutcomeForged}
	}
	if v.mac == nil {
		return verdict{key: replayKey(v.ep, "body+ts", in.body)}
	}
	sig, ok := decodeSig(in.header.Get(v.header), "sha256=")
	if !ok {
		if sig, ok = decodeSig(in.header.Get(v.header), ""); !ok {
			return verdict{outcome: OutcomeForged}
		}
	}
	var buf [sha256.Size]byte
	if !hmac.Equal(v.mac.sum(buf[:0], in.body), sig) {
		return verdict{outcome: OutcomeForged, sig: sig}
	}
	return verdict{sig: sig, key: replayKey(v.ep, "body+ts", in.body)}
}

// tokenEqual compares a presented token, bare or after "Bearer ", with
// want in time independent of where they differ and of their lengths.
func tokenEqual(got string, want connectors.Secret) bool {
	w := sha256.Sum256([]byte(want.Reveal()))
	g := sha256.Sum256([]byte(got))
	bare := subtle.ConstantTimeCompare(g[:], w[:])
	bearer := 0
	if len(got) > 7 && strings.EqualFold(got[:7], "bearer ") {
		g = sha256.Sum256([]byte(strings.TrimLeft(got[7:], " ")))
		bearer = subtle.ConstantTimeCompare(g[:], w[:])
	}
	return bare|bearer == 1
}

// hmacVerifier implements SchemeHMAC.
type hmacVerifier struct {
	ep       endpointKey
	mac      *macKey
	header   string // X-Signature
	tsHeader string // empty: the body alone is signed
	window   time.Duration
}

func (v *hmacVerifier) verify(in *inbound) verdict {
	sigHdr := in.header.Get(v.header)
	var tsHdr string
	if v.tsHeader != "" {
		tsHdr = in.header.Get(v.tsHeader)
		if tsHdr == "" {
			return verdict{outcome: OutcomeMissing}
		}
	}
	if sigHdr == "" {
		return verdict{outcome: OutcomeMissing}
	}
	var ts int64
	if v.tsHeader != "" {
		var err error
		if ts, err = strconv.ParseInt(tsHdr, 10, 64); err != nil {
			return verdict{outcome: OutcomeMissing}
		}
	}
	sig, ok := decodeSig(sigHdr, "sha256=")
	if !ok {
		return verdict{outcome: OutcomeForged}
	}
	var buf [sha256.Size]byte
	var want []byte
	if v.tsHeader != "" {
		want = v.mac.sum(buf[:0], in.body, tsHdr, ".")
	} else {
		want = v.mac.sum(buf[:0], in.body)
	}
	if !hmac.Equal(want, sig) {
		return verdict{outcome: OutcomeForged, sig: sig}
	}
	if v.tsHeader != "" && outside(in.now, ts, v.window) {
		return verdict{outcome: OutcomeStale, sig: sig}
	}
	return verdict{sig: sig, key: replayKey(v.ep, "body+ts", in.body, []byte(tsHdr))}
}

// outside reports whether the Unix time ts is more than window from now,
// either way.
func outside(now time.Time, ts int64, window time.Duration) bool {
	d := now.Sub(time.Unix(ts, 0))
	return d > window || d < -window
}

// decodeSig decodes a hex SHA-256 MAC after prefix; ok is false unless
// the header is exactly that.
func decodeSig(h, prefix string) (sig []byte, ok bool) {
	if !strings.HasPrefix(h, prefix) {
		return nil, false
	}
	h = h[len(prefix):]
	if len(h) != 2*sha256.Size {
		return nil, false
	}
	sig = make([]byte, sha256.Size)
	if _, err := hex.Decode(sig, []byte(h)); err != nil {
		return nil, false
	}
	return sig, true
}

// replayKey derives the replay key of an event of endpoint ep from kind
// and parts, each length-prefixed so that no two inputs collide.
func replayKey(ep endpointKey, kind string, parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{"replay", ep.system, ep.tenant, kind} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// sigKey derives the key under which an accepted signature of ep is
// remembered, to tell tampering from forgery.
func sigKey(ep endpointKey, sig []byte) [sha256.Size]byte {
	return replayKey(ep, "accepted-signature", sig)
}

// macKey computes HMAC-SHA256 under one key. The key lives only in a
// closure, so printing a macKey shows no part of it.
type macKey struct {
	pool sync.Pool // of hash.Hash, keyed
}

func newMACKey(secret connectors.Secret) *macKey {
	key := []byte(secret.Reveal())
	return &macKey{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sum appends to dst the MAC of the concatenation of prefix and body.
func (k *macKey) sum(dst, body []byte, prefix ...string) []byte {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	for _, p := range prefix {
		h.Write([]byte(p))
	}
	h.Write(body)
	dst = h.Sum(dst)
	k.pool.Put(h)
	return dst
}

// hookSecrets holds the Asana hook secrets by endpoint, as stored.
type hookSecrets struct {
	mu   sync.RWMutex
	keys map[endpointKey]*hookKey // guarded by mu
}

// hookKey is one endpoint's Asana hook secret.
type hookKey struct {
	// Secret is exported so that printing a hookKey redacts it.
	Secret connectors.Secret
	mac    *macKey
}

func newHookSecrets() *hookSecrets {
	return &hookSecrets{keys: make(map[endpointKey]*hookKey)}
}

func (s *hookSecrets) get(ep endpointKey) *hookKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[ep]
}

func (s *hookSecrets) set(ep endpointKey, secret connectors.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if secret == "" {
		delete(s.keys, ep)
		return
	}
	s.keys[ep] = &hookKey{Secret: secret, mac: newMACKey(secret)}
}

// secretEqual compares two secrets in time independent of their contents
// and lengths.
func secretEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
