package spemu

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
)

// guid is a SharePoint GUID, written lowercase 8-4-4-4-12 in REST.
type guid [16]byte

var errBadGUID = errors.New("malformed GUID")

// newGUID draws a version-4 GUID from r.
func newGUID(r *rand.Rand) guid {
	var g guid
	a, b := r.Uint64(), r.Uint64()
	for i := range 8 {
		g[i] = byte(a >> (8 * i))
		g[8+i] = byte(b >> (8 * i))
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// String is the lowercase 8-4-4-4-12 form.
func (g guid) String() string {
	var b [36]byte
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], g[10:16])
	return string(b[:])
}

// braced is the "{UPPERCASE}" form of ETags and RenderListDataAsStream.
func (g guid) braced() string { return "{" + strings.ToUpper(g.String()) + "}" }

func (g guid) isZero() bool { return g == guid{} }

// parseGUID accepts 8-4-4-4-12 with or without braces, any case.
func parseGUID(s string) (guid, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	var g guid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, errBadGUID
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return g, errBadGUID
	}
	return g, nil
}
