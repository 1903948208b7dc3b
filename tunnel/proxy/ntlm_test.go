package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/tunnel/proxy/ntlmserver"
)

// The fake NTLM proxy below is the server side of MS-NLMP (package
// ntlmserver, written from the specification independently of go-ntlmssp):
// it parses NEGOTIATE, sends a CHALLENGE with a random server challenge and
// target info, and verifies the NTLMv2 response in AUTHENTICATE against the
// account's password.

const ntlmPassword = "NtLm-s3cret-Pw-4Kq"

var errProofMismatch = ntlmserver.ErrProof

// ntlmFaults are the faults a fakeNTLMProxy can inject.
type ntlmFaults struct {
	closeAfterChallenge bool   // answer NEGOTIATE with Connection: close
	chunkedChallenge    bool   // send the 407 body chunked, with a trailer
	offer               string // if set, answer every CONNECT with 407 offering only this
}

// fakeNTLMProxy is a CONNECT proxy that authenticates connections with NTLMv2.
type fakeNTLMProxy struct {
	user, domain, password string // the one account
	target                 string // where an authenticated CONNECT goes
	ntlmFaults

	mu      sync.Mutex
	seq     map[int][]uint32 // message types per connection; guarded by mu
	lastErr error            // last verification failure; guarded by mu
	nextID  int              // guarded by mu
}

func (p *fakeNTLMProxy) record(id int, typ uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seq == nil {
		p.seq = make(map[int][]uint32)
	}
	p.seq[id] = append(p.seq[id], typ)
}

func (p *fakeNTLMProxy) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr = err
}

func (p *fakeNTLMProxy) sequences() (map[int][]uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq, p.lastErr
}

func (p *fakeNTLMProxy) handle(c net.Conn) {
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	p.mu.Unlock()

	br := bufio.NewReader(c)
	var serverChallenge, targetInfo []byte // set once the CHALLENGE went out on this connection
	reject := func(why error) {
		p.fail(why)
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	}
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method != http.MethodConnect || req.Host != p.target {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
			return
		}
		if p.offer != "" {
			fmt.Fprintf(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: %s\r\nContent-Length: 0\r\n\r\n", p.offer)
			continue
		}
		scheme, token, _ := strings.Cut(req.Header.Get("Proxy-Authorization"), " ")
		msg, err := base64.StdEncoding.DecodeString(token)
		if scheme != "NTLM" || err != nil {
			reject(fmt.Errorf("Proxy-Authorization is not NTLM: scheme %q", scheme))
			return
		}
		typ, err := ntlmserver.MessageType(msg)
		if err != nil {
			reject(err)
			return
		}
		p.record(id, typ)
		switch typ {
		case 1:
			if len(msg) < 16 {
				reject(errors.New("NEGOTIATE too short"))
				return
			}
			if flags := binary.LittleEndian.Uint32(msg[12:]); flags&ntlmserver.FlagUnicode == 0 || flags&ntlmserver.FlagNTLM == 0 {
				reject(fmt.Errorf("NEGOTIATE flags %#x lack UNICODE or NTLM", flags))
				return
			}
			serverChallenge = make([]byte, 8)
			rand.Read(serverChallenge)
			ts := make([]byte, 8)
			binary.LittleEndian.PutUint64(ts, uint64(time.Now().UnixNano()/100+116444736000000000))
			targetInfo = ntlmserver.AVPairs(ntlmserver.AvNbDomainName, ntlmserver.UTF16LE(p.domain), ntlmserver.AvNbComputerName, ntlmserver.UTF16LE("PROXY"), ntlmserver.AvTimestamp, ts)
			challenge := base64.StdEncoding.EncodeToString(ntlmserver.BuildChallenge(serverChallenge, "BRIDGE", targetInfo))
			body := "<html><body>Cache Access Denied: authentication required</body></html>"
			hdr := "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM " + challenge + "\r\n"
			switch {
			case p.closeAfterChallenge:
				io.WriteString(c, hdr+"Connection: close\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body)
				return
			case p.chunkedChallenge:
				fmt.Fprintf(c, "%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n", hdr, len(body), body)
			default:
				io.WriteString(c, hdr+"Content-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body)
			}
		case 3:
			if serverChallenge == nil {
				reject(errors.New("AUTHENTICATE before a CHALLENGE on this connection"))
				return
			}
			if err := p.verify(msg, serverChallenge, targetInfo); err != nil {
				reject(err)
				return
			}
			tunnel(c, br, p.target)
			return
		default:
			reject(fmt.Errorf("unexpected NTLM message type %d", typ))
			return
		}
	}
}

// verify checks an AUTHENTICATE message the way a domain controller would.
func (p *fakeNTLMProxy) verify(msg, serverChallenge, targetInfo []byte) error {
	m, err := ntlmserver.ParseAuthenticate(msg)
	if err != nil {
		return err
	}
	if !strings.EqualFold(m.User, p.user) || !strings.EqualFold(m.Domain, p.domain) {
		return fmt.Errorf("unknown account %q\\%q", m.Domain, m.User)
	}
	return ntlmserver.VerifyNTLMv2(m, p.password, serverChallenge, targetInfo)
}

func TestDialContextNTLM(t *testing.T) {
	tests := []struct {
		name        string
		auth        string
		user        string // as in the proxy URL
		password    string
		account     [2]string // domain, user the proxy knows
		faults      ntlmFaults
		wantSeq     []uint32 // NTLM message types, all on one connection
		wantAuthErr bool
		wantOffered []string
		wantProxy   error  // the proxy's verdict
		wantErr     string // substring of the error
	}{
		{
			name:     "DOMAIN\\user with the right password",
			auth:     "ntlm",
			user:     `BRIDGE\alice`,
			password: ntlmPassword,
			account:  [2]string{"BRIDGE", "alice"},
			wantSeq:  []uint32{1, 3},
		},
		{
			name:     "user without domain, Auth in capitals",
			auth:     "NTLM",
			user:     "bob",
			password: ntlmPassword,
			account:  [2]string{"", "bob"},
			wantSeq:  []uint32{1, 3},
		},
		{
			name:     "chunked 407 body with trailer is drained",
			auth:     "ntlm",
			user:     `BRIDGE\alice`,
			password: ntlmPassword,
			account:  [2]string{"BRIDGE", "alice"},
			faults:   ntlmFaults{chunkedChallenge: true},
			wantSeq:  []uint32{1, 3},
		},
		{
			name:        "wrong password",
			auth:        "ntlm",
			user:        `BRIDGE\alice`,
			password:    ntlmPassword + "-wrong",
			account:     [2]string{"BRIDGE", "alice"},
			wantSeq:     []uint32{1, 3},
			wantAuthErr: true,
			wantOffered: []string{"NTLM"},
			wantProxy:   errProofMismatch,
			wantErr:     "proxy authentication failed at",
		},
		{
			name:        "proxy offers only Basic",
			auth:        "ntlm",
			user:        `BRIDGE\alice`,
			password:    ntlmPassword,
			account:     [2]string{"BRIDGE", "alice"},
			faults:      ntlmFaults{offer: `Basic realm="corp"`},
			wantAuthErr: true,
			wantOffered: []string{"Basic"},
			wantErr:     "with scheme NTLM (the proxy offers Basic)",
		},
		{
			name:     "proxy closes the connection after the challenge",
			auth:     "ntlm",
			user:     `BRIDGE\alice`,
			password: ntlmPassword,
			account:  [2]string{"BRIDGE", "alice"},
			faults:   ntlmFaults{closeAfterChallenge: true},
			wantSeq:  []uint32{1},
			wantErr:  "NTLM needs one persistent connection",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			fp := &fakeNTLMProxy{
				domain: tt.account[0], user: tt.account[1], password: ntlmPassword, target: echo,
				ntlmFaults: tt.faults,
			}
			srv := startServer(t, fp.handle)
			logger, logs := testLogger(t)
			d := &Dialer{
				URL:    proxyURL("http", srv.addr(), url.UserPassword(tt.user, tt.password)),
				Auth:   tt.auth,
				Logger: logger,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", echo)
			if c != nil {
				defer c.Close()
			}

			if n := srv.conns.Load(); n != 1 {
				t.Errorf("connections to the proxy: got %d, want 1", n)
			}
			seqs, proxyErr := fp.sequences()
			if tt.wantSeq != nil && !reflect.DeepEqual(seqs, map[int][]uint32{0: tt.wantSeq}) {
				t.Errorf("NTLM messages per connection: got %v, want %v on connection 0", seqs, tt.wantSeq)
			}
			if !errors.Is(proxyErr, tt.wantProxy) {
				t.Errorf("proxy verdict: got %v, want %v", proxyErr, tt.wantProxy)
			}
			assertNoSecret(t, "log", logs.String(), ntlmPassword)

			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DialContext: %v", err)
				}
				assertEcho(t, c, "hello over NTLM")
				return
			}
			if err == nil {
				t.Fatal("DialContext: got a connection, want an error")
			}
			t.Logf("error: %v", err)
			assertNoSecret(t, "error", err.Error(), ntlmPassword)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantErr)
			}
			var ae *AuthError
			if got := errors.As(err, &ae); got != tt.wantAuthErr {
				t.Fatalf("errors.As(err, *AuthError): got %v, want %v", got, tt.wantAuthErr)
			}
			if ae != nil {
				if ae.Scheme != "NTLM" || !reflect.DeepEqual(ae.Offered, tt.wantOffered) || ae.Proxy != srv.addr() {
					t.Errorf("AuthError: got %+v, want Scheme NTLM, Offered %q, Proxy %s", *ae, tt.wantOffered, srv.addr())
				}
			}
		})
	}
}
