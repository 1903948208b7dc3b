package spemu

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync"

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
