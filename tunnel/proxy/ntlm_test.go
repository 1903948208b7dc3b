package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
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
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// The fake NTLM proxy below is the server side of MS-NLMP written from the
// specification, independently of go-ntlmssp: it parses NEGOTIATE, sends a
// CHALLENGE with a random server challenge and target info, and verifies the
// NTLMv2 response in AUTHENTICATE against the account's password.

const ntlmPassword = "NtLm-s3cret-Pw-4Kq"

// MS-NLMP 2.2.2.5 NEGOTIATE flags.
const (
	flagUnicode        = 0x00000001
	flagRequestTarget  = 0x00000004
	flagNTLM           = 0x00000200
	flagAlwaysSign     = 0x00008000
	flagTargetDomain   = 0x00010000
	flagExtendedSecure = 0x00080000
	flagTargetInfo     = 0x00800000
	flag128            = 0x20000000
	flag56             = 0x80000000
)

// MS-NLMP 2.2.2.1 AV_PAIR ids.
const (
	avEOL            = 0
	avNbComputerName = 1
	avNbDomainName   = 2
	avTimestamp      = 7
)

var errProofMismatch = errors.New("NTProofStr mismatch: wrong password")

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

func fromUTF16le(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errors.New("odd UTF-16 length")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// ntowfv2 is MS-NLMP 3.3.2 NTOWFv2: HMAC_MD5(MD4(UNICODE(password)),
// UNICODE(ConcatenationOf(Uppercase(user), domain))).
func ntowfv2(password, user, domain string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	return hmacMD5(h.Sum(nil), utf16le(strings.ToUpper(user)+domain))
}

// ntProofStr is HMAC_MD5(NTOWFv2, ConcatenationOf(serverChallenge, temp)),
// where temp is the NTLMv2 client blob (MS-NLMP 3.3.2).
func ntProofStr(key, serverChallenge, temp []byte) []byte {
	return hmacMD5(key, serverChallenge, temp)
}

// avPairs encodes AV_PAIRs followed by MsvAvEOL.
func avPairs(pairs ...any) []byte {
	var b []byte
	for i := 0; i < len(pairs); i += 2 {
		v := pairs[i+1].([]byte)
		b = binary.LittleEndian.AppendUint16(b, uint16(pairs[i].(int)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return append(b, 0, 0, 0, 0) // MsvAvEOL, length 0
}

// buildChallenge encodes a CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2).
func buildChallenge(serverChallenge []byte, targetName string, targetInfo []byte) []byte {
	const headLen = 48
	name := utf16le(targetName)
	b := make([]byte, headLen)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 2)
	binary.LittleEndian.PutUint16(b[12:], uint16(len(name)))
	binary.LittleEndian.PutUint16(b[14:], uint16(len(name)))
	binary.LittleEndian.PutUint32(b[16:], headLen)
	binary.LittleEndian.PutUint32(b[20:], flagUnicode|flagRequestTarget|flagNTLM|flagAlwaysSign|
		flagTargetDomain|flagExtendedSecure|flagTargetInfo|flag128|flag56)
	copy(b[24:32], serverChallenge)
	binary.LittleEndian.PutUint16(b[40:], uint16(len(targetInfo)))
	binary.LittleEndian.PutUint16(b[42:], uint16(len(targetInfo)))
	binary.LittleEndian.PutUint32(b[44:], uint32(headLen+len(name)))
	return append(append(b, name...), targetInfo...)
}

// parseNTLM checks the NTLMSSP signature and returns the message type.
func parseNTLM(b []byte) (uint32, error) {
	if len(b) < 12 || string(b[:8]) != "NTLMSSP\x00" {
		return 0, errors.New("not an NTLMSSP message")
	}
	return binary.LittleEndian.Uint32(b[8:]), nil
}

// field reads the payload of the security buffer whose header is at off.
func field(b []byte, off int) ([]byte, error) {
	if off+8 > len(b) {
		return nil, fmt.Errorf("field header at %d past end", off)
	}
	n := int(binary.LittleEndian.Uint16(b[off:]))
	at := int(binary.LittleEndian.Uint32(b[off+4:]))
	if at > len(b) || n > len(b)-at {
		return nil, fmt.Errorf("field at %d: payload [%d:+%d] past end %d", off, at, n, len(b))
	}
	return b[at : at+n], nil
}

// authenticateMessage is the part of an AUTHENTICATE_MESSAGE (MS-NLMP
// 2.2.1.3) the fake proxy checks.
type authenticateMessage struct {
	nt                        []byte
	domain, user, workstation string
	negotiateFlags            uint32
}

func parseAuthenticate(b []byte) (*authenticateMessage, error) {
	if len(b) < 64 {
		return nil, fmt.Errorf("AUTHENTICATE too short: %d bytes", len(b))
	}
	m := &authenticateMessage{negotiateFlags: binary.LittleEndian.Uint32(b[60:])}
	var err error
	if m.nt, err = field(b, 20); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		off int
		dst *string
	}{{28, &m.domain}, {36, &m.user}, {44, &m.workstation}} {
		raw, err := field(b, f.off)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = fromUTF16le(raw); err != nil {
			return nil, err
		}
	}
	return m, nil
}

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
		typ, err := parseNTLM(msg)
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
			if flags := binary.LittleEndian.Uint32(msg[12:]); flags&flagUnicode == 0 || flags&flagNTLM == 0 {
				reject(fmt.Errorf("NEGOTIATE flags %#x lack UNICODE or NTLM", flags))
				return
			}
			serverChallenge = make([]byte, 8)
			rand.Read(serverChallenge)
			ts := make([]byte, 8)
			binary.LittleEndian.PutUint64(ts, uint64(time.Now().UnixNano()/100+116444736000000000))
			targetInfo = avPairs(avNbDomainName, utf16le(p.domain), avNbComputerName, utf16le("PROXY"), avTimestamp, ts)
			challenge := base64.StdEncoding.EncodeToString(buildChallenge(serverChallenge, "BRIDGE", targetInfo))
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
	m, err := parseAuthenticate(msg)
	if err != nil {
		return err
	}
	if !strings.EqualFold(m.user, p.user) || !strings.EqualFold(m.domain, p.domain) {
		return fmt.Errorf("unknown account %q\\%q", m.domain, m.user)
	}
	// NTLMv2 response: NTProofStr (16) || temp, temp = RespType 1, HiRespType 1, ... (MS-NLMP 2.2.2.7).
	if len(m.nt) < 16+28 {
		return fmt.Errorf("NtChallengeResponse of %d bytes is not NTLMv2", len(m.nt))
	}
	temp := m.nt[16:]
	if temp[0] != 1 || temp[1] != 1 {
		return fmt.Errorf("NTLMv2 blob version %d.%d, want 1.1", temp[0], temp[1])
	}
	if !bytes.Contains(temp, targetInfo[:len(targetInfo)-4]) {
		return errors.New("NTLMv2 blob does not carry the server's target info")
	}
	// Per the specification the user and domain come from the message.
	want := ntProofStr(ntowfv2(p.password, m.user, m.domain), serverChallenge, temp)
	if !hmac.Equal(want, m.nt[:16]) {
		return errProofMismatch
	}
	return nil
}

// TestFakeNTLMProxyMatchesSpec checks the fake proxy's NTLMv2 arithmetic
// against the test vectors of MS-NLMP 4.2.4, so that its verdicts do not
// merely mirror go-ntlmssp.
func TestFakeNTLMProxyMatchesSpec(t *testing.T) {
	mustHex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	key := ntowfv2("Password", "User", "Domain")
	if got, want := hex.EncodeToString(key), "0c868a403bfd7a93a3001ef22ef02e3f"; got != want {
		t.Fatalf("NTOWFv2: got %s, want %s", got, want)
	}
	serverChallenge := mustHex("01 23 45 67 89 ab cd ef")
	targetInfo := avPairs(avNbDomainName, utf16le("Domain"), avNbComputerName, utf16le("Server"))
	var temp []byte
	temp = append(temp, 1, 1, 0, 0, 0, 0, 0, 0)
	temp = append(temp, make([]byte, 8)...)               // timestamp 0
	temp = append(temp, bytes.Repeat([]byte{0xaa}, 8)...) // client challenge
	temp = append(temp, 0, 0, 0, 0)
	temp = append(temp, targetInfo...)
	temp = append(temp, 0, 0, 0, 0)
	if got, want := hex.EncodeToString(ntProofStr(key, serverChallenge, temp)), "68cd0ab851e51c96aabc927bebef6a1c"; got != want {
		t.Fatalf("NTProofStr: got %s, want %s", got, want)
	}
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
