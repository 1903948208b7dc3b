// Package ntlmserver is the server side of NTLMv2 (MS-NLMP): it builds a
// CHALLENGE and verifies an AUTHENTICATE the way a domain controller
// would. The SharePoint emulator and the tests' fake NTLM proxy use it, so
// that the agent's NTLM clients are checked against the specification
// rather than against themselves.
package ntlmserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// MS-NLMP 2.2.2.5 NEGOTIATE flags.
const (
	FlagUnicode          = 0x00000001
	FlagRequestTarget    = 0x00000004
	FlagNTLM             = 0x00000200
	FlagAlwaysSign       = 0x00008000
	FlagTargetDomain     = 0x00010000
	FlagExtendedSecurity = 0x00080000
	FlagTargetInfo       = 0x00800000
	Flag128              = 0x20000000
	Flag56               = 0x80000000
)

// MS-NLMP 2.2.2.1 AV_PAIR ids.
const (
	AvNbComputerName  = 1
	AvNbDomainName    = 2
	AvDNSComputerName = 3
	AvDNSDomainName   = 4
	AvTimestamp       = 7
)

var (
	ErrProof   = errors.New("NTProofStr mismatch: wrong password")
	ErrMessage = errors.New("not an NTLMSSP message")
)

func UTF16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

func FromUTF16LE(b []byte) (string, error) {
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

// NTOWFv2 is MS-NLMP 3.3.2 NTOWFv2: HMAC_MD5(MD4(UNICODE(password)),
// UNICODE(ConcatenationOf(Uppercase(user), domain))).
func NTOWFv2(password, user, domain string) []byte {
	h := md4.New()
	h.Write(UTF16LE(password))
	return hmacMD5(h.Sum(nil), UTF16LE(strings.ToUpper(user)+domain))
}

// NTProofStr is HMAC_MD5(NTOWFv2, ConcatenationOf(serverChallenge, temp)).
func NTProofStr(key, serverChallenge, temp []byte) []byte {
	return hmacMD5(key, serverChallenge, temp)
}

// AVPairs encodes (id, value) AV_PAIRs followed by MsvAvEOL.
func AVPairs(pairs ...any) []byte {
	var b []byte
	for i := 0; i < len(pairs); i += 2 {
		v := pairs[i+1].([]byte)
		b = binary.LittleEndian.AppendUint16(b, uint16(pairs[i].(int)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return append(b, 0, 0, 0, 0)
}

// BuildChallenge encodes a CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2).
func BuildChallenge(serverChallenge []byte, targetName string, targetInfo []byte) []byte {
	const headLen = 48
	name := UTF16LE(targetName)
	b := make([]byte, headLen)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 2)
	binary.LittleEndian.PutUint16(b[12:], uint16(len(name)))
	binary.LittleEndian.PutUint16(b[14:], uint16(len(name)))
	binary.LittleEndian.PutUint32(b[16:], headLen)
	binary.LittleEndian.PutUint32(b[20:], FlagUnicode|FlagRequestTarget|FlagNTLM|FlagAlwaysSign|
		FlagTargetDomain|FlagExtendedSecurity|FlagTargetInfo|Flag128|Flag56)
	copy(b[24:32], serverChallenge)
	binary.LittleEndian.PutUint16(b[40:], uint16(len(targetInfo)))
	binary.LittleEndian.PutUint16(b[42:], uint16(len(targetInfo)))
	binary.LittleEndian.PutUint32(b[44:], uint32(headLen+len(name)))
	return append(append(b, name...), targetInfo...)
}

// NewChallenge builds the target info and CHALLENGE message for domain.
func NewChallenge(serverChallenge []byte, domain string, now time.Time) (msg, targetInfo []byte) {
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, uint64(now.UnixNano()/100+116444736000000000))
	targetInfo = AVPairs(AvNbDomainName, UTF16LE(domain), AvNbComputerName, UTF16LE("SPSERVER"),
		AvDNSDomainName, UTF16LE(strings.ToLower(domain)+".local"),
		AvDNSComputerName, UTF16LE("spserver."+strings.ToLower(domain)+".local"), AvTimestamp, ts)
	return BuildChallenge(serverChallenge, domain, targetInfo), targetInfo
}

// MessageType checks the NTLMSSP signature and returns the message type.
func MessageType(b []byte) (uint32, error) {
	if len(b) < 12 || string(b[:8]) != "NTLMSSP\x00" {
		return 0, ErrMessage
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

// Authenticate is the part of an AUTHENTICATE_MESSAGE (MS-NLMP
// 2.2.1.3) the server checks.
type Authenticate struct {
	// NT is the NtChallengeResponse.
	NT []byte
	// Domain, User and Workstation are as the client sent them.
	Domain, User, Workstation string
}

func ParseAuthenticate(b []byte) (*Authenticate, error) {
	if len(b) < 64 {
		return nil, fmt.Errorf("AUTHENTICATE too short: %d bytes", len(b))
	}
	if flags := binary.LittleEndian.Uint32(b[60:]); flags&FlagUnicode == 0 {
		return nil, errors.New("AUTHENTICATE is not UNICODE")
	}
	m := &Authenticate{}
	var err error
	if m.NT, err = field(b, 20); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		off int
		dst *string
	}{{28, &m.Domain}, {36, &m.User}, {44, &m.Workstation}} {
		raw, err := field(b, f.off)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = FromUTF16LE(raw); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// VerifyNTLMv2 checks an AUTHENTICATE message's NTLMv2 response against
// password, the way a domain controller would.
func VerifyNTLMv2(m *Authenticate, password string, serverChallenge, targetInfo []byte) error {
	// NTLMv2 response: NTProofStr (16) || temp, temp = RespType 1, HiRespType 1, ... (MS-NLMP 2.2.2.7).
	if len(m.NT) < 16+28 {
		return fmt.Errorf("NtChallengeResponse of %d bytes is not NTLMv2", len(m.NT))
	}
	temp := m.NT[16:]
	if temp[0] != 1 || temp[1] != 1 {
		return fmt.Errorf("NTLMv2 blob version %d.%d, want 1.1", temp[0], temp[1])
	}
	if !bytes.Contains(temp, targetInfo[:len(targetInfo)-4]) {
		return errors.New("NTLMv2 blob does not carry the server's target info")
	}
	want := NTProofStr(NTOWFv2(password, m.User, m.Domain), serverChallenge, temp)
	if !hmac.Equal(want, m.NT[:16]) {
		return ErrProof
	}
	return nil
}
