package credentials_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
)

// shapeOf strips digits: what is left of a master-key error is one of its
// fixed messages.
func shapeOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}

// FuzzParseMasterKey: any input either decodes to exactly 32 bytes or is
// refused with ErrMasterKey, with a message that cannot carry any of the
// input (one of the fixed messages, numbers aside).
func FuzzParseMasterKey(f *testing.F) {
	shapes := map[string]bool{}
	for _, in := range []string{"", "!", "AAAA"} {
		_, err := credentials.ParseMasterKey(connectors.Secret(in))
		shapes[shapeOf(err.Error())] = true
	}
	if len(shapes) != 3 {
		f.Fatalf("got %d message shapes, want 3", len(shapes))
	}
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add(base64.RawStdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("c2hvcnQ=")
	f.Add(" \n")
	f.Fuzz(func(t *testing.T, in string) {
		k, err := credentials.ParseMasterKey(connectors.Secret(in))
		if err == nil {
			if len(k) != 32 {
				t.Fatalf("accepted %d bytes", len(k))
			}
			return
		}
		if !errors.Is(err, credentials.ErrMasterKey) {
			t.Fatalf("got %v, want ErrMasterKey", err)
		}
		if !shapes[shapeOf(err.Error())] {
			t.Fatalf("error %q is not one of the fixed messages", err)
		}
	})
}
