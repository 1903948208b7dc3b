package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Redaction limits.
const (
	// MaxString is the longest string Redact keeps, in bytes; a longer one
	// is replaced by its size and SHA-256.
	MaxString = 1024
	// MaxArray is the most elements of an array Redact keeps; a note
	// saying how many there were follows them.
	MaxArray = 100
)

// redacted replaces every secret.
const redacted = "[redacted]"

// Redact returns a JSON copy of v, which is a json.RawMessage (taken as
// JSON text) or any value json.Marshal accepts, fit for an audit record:
//
//   - the value of every object key that looks secret is "[redacted]",
//     whatever its type; a key looks secret when, lower-cased and with
//     everything but letters and digits removed, it contains password,
//     passwd, passphrase, pwd, secret, token, authorization, bearer,
//     apikey, accesskey, privatekey, cookie, session, credential or
//     signature (so client_secret, X-Api-Key and accessKey all do);
//   - secret values (connectors.Secret) are "[redacted]", as they marshal;
//   - strings that are themselves credentials are "[redacted]": HTTP
//     authorization values ("Bearer ...", "Basic ..."), JWTs and PEM
//     private keys; URLs keep their shape but lose a userinfo password and
//     the values of query parameters that look secret (and sig, code, key,
//     tempauth);
//   - a string longer than MaxString bytes becomes
//     {"redacted":"large","bytes":N,"sha256":"<hex>"};
//   - an array longer than MaxArray keeps its first MaxArray elements and
//     then the string "[truncated: N items, 100 kept]".
//
// Object keys come out sorted and numbers exactly as they went in. Redact
// never fails: JSON text that does not parse becomes the JSON string
// "[unparseable: N bytes]", and a value json.Marshal refuses becomes
// "[unencodable: <type>]". An empty RawMessage is null.
func Redact(v any) json.RawMessage {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case *json.RawMessage:
		if x != nil {
			raw = *x
		}
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return jsonString(fmt.Sprintf("[unencodable: %T]", v))
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return jsonString(fmt.Sprintf("[unparseable: %d bytes]", len(raw)))
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonString(fmt.Sprintf("[unparseable: %d bytes]", len(raw)))
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(redactValue(tree)); err != nil {
		// Only decoded values are encoded: this does not happen.
		return jsonString(fmt.Sprintf("[unencodable: %d bytes]", len(raw)))
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// redactValue redacts a value decoded with UseNumber, in place.
func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if secretKey(k) {
				x[k] = redacted
			} else {
				x[k] = redactValue(e)
			}
		}
		return x
	case []any:
		n := len(x)
		if n > MaxArray {
			x = append(x[:MaxArray], fmt.Sprintf("[truncated: %d items, %d kept]", n, MaxArray))
		}
		for i, e := range x[:min(n, MaxArray)] {
			x[i] = redactValue(e)
		}
		return x
	case string:
		return redactString(x)
	default:
		return v
	}
}

// redactString redacts a string that is a credential, is a URL carrying
// one, or is too long to keep.
func redactString(s string) any {
	if secretValue(s) {
		return redacted
	}
	if strings.Contains(s, "://") {
		s = redactURL(s)
	}
	if len(s) > MaxString {
		sum := sha256.Sum256([]byte(s))
		return map[string]any{"redacted": "large", "bytes": len(s), "sha256": hex.EncodeToString(sum[:])}
	}
	return s
}

// secretKey reports whether an object key names a secret.
func secretKey(k string) bool {
	var buf [64]byte
	n := buf[:0]
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			n = append(n, c)
		case c >= 'A' && c <= 'Z':
			n = append(n, c+'a'-'A')
		case c >= 0x80:
			n = append(n, c) // kept, so a non-ASCII letter does not join words
		}
	}
	for _, w := range [...]string{
		"password", "passwd", "passphrase", "pwd", "secret", "token", "authorization", "bearer",
		"apikey", "accesskey", "privatekey", "cookie", "session", "credential", "signature",
	} {
		if bytes.Contains(n, []byte(w)) {
			return true
		}
	}
	return false
}

// secretValue reports whether s is itself a credential: an HTTP
// authorization value, a JWT or a PEM private key.
func secretValue(s string) bool {
	t := strings.TrimSpace(s)
	if i := strings.IndexByte(t, ' '); i > 0 {
		switch strings.ToLower(t[:i]) {
		case "bearer", "basic", "digest", "negotiate", "ntlm":
			return true
		}
	}
	if strings.HasPrefix(t, "eyJ") && strings.Count(t, ".") >= 2 {
		return true
	}
	return strings.Contains(s, "PRIVATE KEY-----")
}

// redactURL removes the userinfo password and the secret parameter values
// of the query and fragment (OAuth puts tokens there) of a URL, keeping
// everything else as it was. A string that is not a URL is returned
// unchanged.
func redactURL(s string) string {
	base, frag, hasFrag := strings.Cut(s, "#")
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return s
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		// The authority runs from :// to the first / or ?, and its userinfo
		// to the last @ in it, as url.Parse reads it.
		i := strings.Index(base, "://") + len("://")
		auth := base[i:]
		if j := strings.IndexAny(auth, "/?"); j >= 0 {
			auth = auth[:j]
		}
		at := strings.LastIndexByte(auth, '@')
		if i < len("://") || at < 0 {
			return redacted
		}
		base = base[:i] + url.User(u.User.Username()).String() + ":" + redacted + base[i+at:]
		changed = true
	}
	if b, q, ok := strings.Cut(base, "?"); ok {
		if rq, c := redactParams(q); c {
			base, changed = b+"?"+rq, true
		}
	}
	if hasFrag {
		if rf, c := redactParams(frag); c {
			frag, changed = rf, true
		}
	}
	if !changed {
		return s
	}
	if hasFrag {
		return base + "#" + frag
	}
	return base
}

// redactParams replaces the values of secret-looking parameters of a query
// string (or fragment) with "[redacted]" and reports whether it did.
func redactParams(q string) (string, bool) {
	params := strings.Split(q, "&")
	changed := false
	for i, p := range params {
		name, _, _ := strings.Cut(p, "=")
		if dn, err := url.QueryUnescape(name); err == nil {
			name = dn
		}
		switch strings.ToLower(name) {
		case "sig", "code", "key", "tempauth":
		default:
			if !secretKey(name) {
				continue
			}
		}
		params[i], _, _ = strings.Cut(p, "=")
		params[i] += "=" + redacted
		changed = true
	}
	return strings.Join(params, "&"), changed
}

// jsonString returns s as a JSON string.
func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}
