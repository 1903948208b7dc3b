package spemu

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/mcc-bridge/bridge/tunnel/proxy/ntlmserver"
)

// connAuth is one TCP connection's NTLM state.
type connAuth struct {
	mu         sync.Mutex
	challenge  []byte // pending server challenge, after NEGOTIATE
	targetInfo []byte
	account    string // authenticated account; "" before
}

// password finds the configured password of user (with optional domain).
func (s *Server) password(user, domain string) (account, password string, ok bool) {
	if d, u, found := strings.Cut(user, "\\"); found && domain == "" {
		user, domain = u, d
	}
	for k, pw := range s.opts.Users {
		kd, ku, hasDomain := strings.Cut(k, "\\")
		if !hasDomain {
			ku, kd = k, ""
		}
		// An account without domain matches any domain; a user without
		// domain matches the account in any domain (IIS's default domain).
		if strings.EqualFold(ku, user) && (kd == "" || domain == "" || strings.EqualFold(kd, domain)) {
			return k, pw, true
		}
	}
	return "", "", false
}

// authenticate runs the configured authentication; on false it has
// answered the request (401).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	switch s.opts.Auth {
	case AuthBasic:
		u, p, ok := r.BasicAuth()
		if ok {
			if acct, pw, found := s.password(u, ""); found && pw == p {
				return acct, true
			}
		}
		s.ctl.add(&s.ctl.stats.AuthFailures)
		s.unauthorized(w, r, `Basic realm="`+r.Host+`"`)
		return "", false
	case AuthNTLM:
		return s.ntlm(w, r)
	case AuthKerberos:
		return s.kerberos(w, r)
	}
	return "", true
}

// unauthorized answers 401 offering the given challenges, after draining
// the body so that the connection stays usable for the next leg.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, challenges ...string) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
	for _, c := range challenges {
		w.Header().Add("WWW-Authenticate", c)
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, "<!DOCTYPE html><html><head><title>401 UNAUTHORIZED</title></head><body>401 UNAUTHORIZED</body></html>")
}

// ntlm authenticates the connection with an NTLM handshake, then lets
// every later request of that connection through.
func (s *Server) ntlm(w http.ResponseWriter, r *http.Request) (string, bool) {
	ca := s.ctl.conn(r.RemoteAddr)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme == "" {
		if ca.account != "" {
			return ca.account, true
		}
		s.unauthorized(w, r, "Negotiate", "NTLM")
		return "", false
	}
	fail := func(why string) (string, bool) {
		s.log.Debug("ntlm authentication failed", "remote", r.RemoteAddr, "reason", why)
		ca.account, ca.challenge = "", nil
		s.ctl.add(&s.ctl.stats.AuthFailures)
		s.unauthorized(w, r, "Negotiate", "NTLM")
		return "", false
	}
	if !strings.EqualFold(scheme, "NTLM") && !strings.EqualFold(scheme, "Negotiate") {
		return fail("scheme " + scheme)
	}
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return fail("token is not base64")
	}
	typ, err := ntlmserver.MessageType(msg)
	if err != nil {
		return fail(err.Error())
	}
	switch typ {
	case 1:
		ca.account = ""
		ca.challenge = make([]byte, 8)
		rand.Read(ca.challenge)
		var chal []byte
		chal, ca.targetInfo = ntlmserver.NewChallenge(ca.challenge, s.opts.Domain, s.Now())
		s.unauthorized(w, r, scheme+" "+base64.StdEncoding.EncodeToString(chal))
		return "", false
	case 3:
		if ca.challenge == nil {
			return fail("AUTHENTICATE before a CHALLENGE on this connection")
		}
		m, err := ntlmserver.ParseAuthenticate(msg)
		if err != nil {
			return fail(err.Error())
		}
		acct, pw, ok := s.password(m.User, m.Domain)
		if !ok {
			return fail("unknown account " + m.Domain + "\\" + m.User)
		}
		if err := ntlmserver.VerifyNTLMv2(m, pw, ca.challenge, ca.targetInfo); err != nil {
			return fail(err.Error())
		}
		ca.account, ca.challenge, ca.targetInfo = acct, nil, nil
		s.ctl.add(&s.ctl.stats.AuthHandshakes)
		return acct, true
	}
	return fail("unexpected NTLM message type")
}

// kerberosSkew is the clock skew allowed between a client and the
// emulator, Active Directory's default. Kerberos checks use the real
// clock, not the emulator's.
const kerberosSkew = 5 * time.Minute

// negotiateAccepted is the SPNEGO NegTokenResp (accept-completed, mech
// Kerberos) sent with an authenticated response; IIS would add a mutual
// authentication AP-REP, which gokrb5 cannot make.
const negotiateAccepted = "Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg=="

// kerberos checks the request's Negotiate token; every request carries
// its own.
func (s *Server) kerberos(w http.ResponseWriter, r *http.Request) (string, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme == "" {
		s.unauthorized(w, r, "Negotiate")
		return "", false
	}
	acct, err := s.verifyNegotiate(scheme, token, r.RemoteAddr)
	if err != nil {
		s.log.Info("kerberos authentication failed", "remote", r.RemoteAddr, "reason", err)
		s.ctl.add(&s.ctl.stats.AuthFailures)
		s.unauthorized(w, r, "Negotiate")
		return "", false
	}
	w.Header().Set("WWW-Authenticate", negotiateAccepted)
	return acct, true
}

// verifyNegotiate checks a SPNEGO (or bare Kerberos GSS-API) token: the
// ticket must decrypt with a key of Options.Keytab (so it is for one of
// the service's principals), be current, name the same client as its
// authenticator, and the authenticator must be fresh and not seen before.
// The account is Domain\name, as Active Directory maps a realm to its
// NetBIOS domain.
func (s *Server) verifyNegotiate(scheme, token, remote string) (string, error) {
	if !strings.EqualFold(scheme, "Negotiate") {
		return "", fmt.Errorf("scheme %s, want Negotiate", scheme)
	}
	if s.opts.Keytab == nil {
		return "", errors.New("the emulator has no keytab (Options.Keytab)")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return "", errors.New("token is not base64")
	}
	mech := b // a bare Kerberos GSS-API token, as some clients send
	var st spnego.SPNEGOToken
	if st.Unmarshal(b) == nil {
		if !st.Init || len(st.NegTokenInit.MechTypes) == 0 {
			return "", errors.New("SPNEGO token is not a NegTokenInit")
		}
		oid := st.NegTokenInit.MechTypes[0]
		if !oid.Equal(gssapi.OIDKRB5.OID()) && !oid.Equal(gssapi.OIDMSLegacyKRB5.OID()) {
			return "", fmt.Errorf("SPNEGO offers mechanism %s first, not Kerberos", oid)
		}
		mech = st.NegTokenInit.MechTokenBytes
	}
	var kt spnego.KRB5Token
	if err := kt.Unmarshal(mech); err != nil {
		return "", fmt.Errorf("not a Kerberos token (NTLM is not offered in this mode): %w", err)
	}
	if !kt.IsAPReq() {
		return "", errors.New("Kerberos token is not an AP-REQ")
	}
	ap := kt.APReq
	addr, _ := types.GetHostAddress(remote)
	if ok, err := ap.Verify(s.opts.Keytab, kerberosSkew, addr, nil); !ok || err != nil {
		return "", fmt.Errorf("ticket for %s refused: %v", ap.Ticket.SName.PrincipalNameString(), err)
	}
	if s.krb.replayed(ap.EncryptedAuthenticator.Cipher, time.Now()) {
		return "", fmt.Errorf("authenticator of %s replayed", ap.Authenticator.CName.PrincipalNameString())
	}
	return s.opts.Domain + `\` + ap.Authenticator.CName.PrincipalNameString(), nil
}

// replayCache remembers the Kerberos authenticators accepted within twice
// the clock skew, so that a captured Negotiate header cannot be sent again
// (RFC 4120 3.2.3). It keys on a hash of the encrypted authenticator, which
// differs for every token (as MIT krb5 1.18+ does), so that tokens a client
// makes in the same microsecond do not collide. The zero value is ready.
type replayCache struct {
	mu        sync.Mutex
	seen      map[[32]byte]time.Time // guarded by mu: forget after
	lastPrune time.Time              // guarded by mu
}

// replayed reports whether cipher was seen before, and remembers it.
func (c *replayCache) replayed(cipher []byte, now time.Time) bool {
	key := sha256.Sum256(cipher)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[[32]byte]time.Time{}
	}
	if now.Sub(c.lastPrune) > time.Minute {
		for k, until := range c.seen {
			if now.After(until) {
				delete(c.seen, k)
			}
		}
		c.lastPrune = now
	}
	if until, ok := c.seen[key]; ok && now.Before(until) {
		return true
	}
	c.seen[key] = now.Add(2 * kerberosSkew)
	return false
}
