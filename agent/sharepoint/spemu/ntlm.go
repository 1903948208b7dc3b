package spemu

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

// The server side of MS-NLMP (NTLMv2 only), following the fake proxy of
// tunnel/proxy's tests: parse NEGOTIATE, answer a CHALLENGE with a random
// server challenge and target info, verify the NTLMv2 response of
// AUTHENTICATE against the account's password.

// MS-NLMP 2.2.2.5 NEGOTIATE flags.
const (
	ntlmFlagUnicode        = 0x00000001
	ntlmFlagRequestTarget  = 0x00000004
	ntlmFlagNTLM           = 0x00000200
	ntlmFlagAlwaysSign     = 0x00008000
	ntlmFlagTargetDomain   = 0x00010000
	ntlmFlagExtendedSecure = 0x00080000
	ntlmFlagTargetInfo     = 0x00800000
	ntlmFlag128            = 0x20000000
	ntlmFlag56             = 0x80000000
)

// MS-NLMP 2.2.2.1 AV_PAIR ids.
const (
	avNbComputerName  = 1
	avNbDomainName    = 2
	avDNSComputerName = 3
	avDNSDomainName   = 4
	avTimestamp       = 7
)

var (
	errNTLMProof   = errors.New("NTProofStr mismatch: wrong password")
	errNTLMMessage = errors.New("not an NTLMSSP message")
)

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

// ntProofStr is HMAC_MD5(NTOWFv2, ConcatenationOf(serverChallenge, temp)).
func ntProofStr(key, serverChallenge, temp []byte) []byte {
	return hmacMD5(key, serverChallenge, temp)
}

// avPairs encodes (id, value) AV_PAIRs followed by MsvAvEOL.
func avPairs(pairs ...any) []byte {
	var b []byte
	for i := 0; i < len(pairs); i += 2 {
		v := pairs[i+1].([]byte)
		b = binary.LittleEndian.AppendUint16(b, uint16(pairs[i].(int)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return append(b, 0, 0, 0, 0)
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
	binary.LittleEndian.PutUint32(b[20:], ntlmFlagUnicode|ntlmFlagRequestTarget|ntlmFlagNTLM|ntlmFlagAlwaysSign|
		ntlmFlagTargetDomain|ntlmFlagExtendedSecure|ntlmFlagTargetInfo|ntlmFlag128|ntlmFlag56)
	copy(b[24:32], serverChallenge)
	binary.LittleEndian.PutUint16(b[40:], uint16(len(targetInfo)))
	binary.LittleEndian.PutUint16(b[42:], uint16(len(targetInfo)))
	binary.LittleEndian.PutUint32(b[44:], uint32(headLen+len(name)))
	return append(append(b, name...), targetInfo...)
}

// newChallenge builds the target info and CHALLENGE message for domain.
func newChallenge(serverChallenge []byte, domain string, now time.Time) (msg, targetInfo []byte) {
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, uint64(now.UnixNano()/100+116444736000000000))
	targetInfo = avPairs(avNbDomainName, utf16le(domain), avNbComputerName, utf16le("SPSERVER"),
		avDNSDomainName, utf16le(strings.ToLower(domain)+".local"),
		avDNSComputerName, utf16le("spserver."+strings.ToLower(domain)+".local"), avTimestamp, ts)
	return buildChallenge(serverChallenge, domain, targetInfo), targetInfo
}

// parseNTLM checks the NTLMSSP signature and returns the message type.
func parseNTLM(b []byte) (uint32, error) {
	if len(b) < 12 || string(b[:8]) != "NTLMSSP\x00" {
		return 0, errNTLMMessage
	}
	return binary.LittleEndian.Uint32(b[8:]), nil
}

// ntlmField reads the payload of the security buffer whose header is at off.
func ntlmField(b []byte, off int) ([]byte, error) {
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

// ntlmAuthenticate is the part of an AUTHENTICATE_MESSAGE (MS-NLMP
// 2.2.1.3) the server checks.
type ntlmAuthenticate struct {
	nt                        []byte
	domain, user, workstation string
}

func parseAuthenticate(b []byte) (*ntlmAuthenticate, error) {
	if len(b) < 64 {
		return nil, fmt.Errorf("AUTHENTICATE too short: %d bytes", len(b))
	}
	if flags := binary.LittleEndian.Uint32(b[60:]); flags&ntlmFlagUnicode == 0 {
		return nil, errors.New("AUTHENTICATE is not UNICODE")
	}
	m := &ntlmAuthenticate{}
	var err error
	if m.nt, err = ntlmField(b, 20); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		off int
		dst *string
	}{{28, &m.domain}, {36, &m.user}, {44, &m.workstation}} {
		raw, err := ntlmField(b, f.off)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = fromUTF16le(raw); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// verifyNTLMv2 checks an AUTHENTICATE message's NTLMv2 response against
// password, the way a domain controller would.
func verifyNTLMv2(m *ntlmAuthenticate, password string, serverChallenge, targetInfo []byte) error {
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
	want := ntProofStr(ntowfv2(password, m.user, m.domain), serverChallenge, temp)
	if !hmac.Equal(want, m.nt[:16]) {
		return errNTLMProof
	}
	return nil
}
