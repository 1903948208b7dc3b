package ntlmserver

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// TestArithmeticMatchesSpec checks NTOWFv2 and NTProofStr against the
// test vectors of MS-NLMP 4.2.4, so that the verdicts of the emulator and
// the fake proxy do not merely mirror go-ntlmssp.
func TestArithmeticMatchesSpec(t *testing.T) {
	mustHex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	key := NTOWFv2("Password", "User", "Domain")
	if got, want := hex.EncodeToString(key), "0c868a403bfd7a93a3001ef22ef02e3f"; got != want {
		t.Fatalf("NTOWFv2: got %s, want %s", got, want)
	}
	serverChallenge := mustHex("01 23 45 67 89 ab cd ef")
	targetInfo := AVPairs(AvNbDomainName, UTF16LE("Domain"), AvNbComputerName, UTF16LE("Server"))
	var temp []byte
	temp = append(temp, 1, 1, 0, 0, 0, 0, 0, 0)
	temp = append(temp, make([]byte, 8)...)
	temp = append(temp, bytes.Repeat([]byte{0xaa}, 8)...)
	temp = append(temp, 0, 0, 0, 0)
	temp = append(temp, targetInfo...)
	temp = append(temp, 0, 0, 0, 0)
	if got, want := hex.EncodeToString(NTProofStr(key, serverChallenge, temp)), "68cd0ab851e51c96aabc927bebef6a1c"; got != want {
		t.Fatalf("NTProofStr: got %s, want %s", got, want)
	}
}
