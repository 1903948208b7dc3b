package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event types of the relay's dispatch path. Other packages may use their
// own; EventType is free text.
const (
	// EventDispatch is an action that was allowed and carried out.
	EventDispatch = "dispatch"
	// EventDispatchDenied is an action refused by policy.
	EventDispatchDenied = "dispatch.denied"
	// EventDispatchFailed is an allowed action that the target system failed.
	EventDispatchFailed = "dispatch.failed"
)

// Policy effects, for PolicyDecision.Effect.
const (
	// EffectAllow means policy allowed the action.
	EffectAllow = "allow"
	// EffectDeny means policy refused the action.
	EffectDeny = "deny"
)

// zeroHash is the PrevHash of the first record of every chain.
const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one audited action. The JSON field names are the stored format;
// do not change them.
type Record struct {
	// Timestamp is when the action happened; Append fills it from
	// Options.Now when zero and stores it in UTC.
	Timestamp time.Time `json:"timestamp"`
	// TraceID links the record to the request's trace.
	TraceID string `json:"traceId"`
	// EventType says what happened, e.g. EventDispatch. Required.
	EventType string `json:"eventType"`
	// TargetSystem is the system acted on, e.g. "sharepoint".
	TargetSystem string `json:"targetSystem"`
	// Operation is the operation requested of the target system.
	Operation string `json:"operation"`
	// User is who asked for the action.
	User User `json:"user"`
	// Tenant is whose log the record goes to. Tenant.ID is required and must
	// be a DNS label (1 to 63 lowercase letters, digits and inner hyphens),
	// or one after an underscore for a reserved pseudo-tenant such as the
	// one of unauthenticated requests.
	Tenant Tenant `json:"tenant"`
	// Request is the request body, already passed through Redact. It must
	// be valid JSON or nil (stored as null).
	Request json.RawMessage `json:"request"`
	// Response is the outcome.
	Response Response `json:"response"`
	// AuthMethod is how the user authenticated, e.g. "oidc" or "dev",
	// followed by how the relay authenticated to the target, e.g.
	// "oidc/integration-owner".
	AuthMethod string `json:"authMethod"`
	// Policy is the policy decision that allowed or refused the action.
	Policy PolicyDecision `json:"policy"`

	// Seq is the record's position in its tenant's chain, from 1. Set by
	// Append; any value passed in is ignored.
	Seq uint64 `json:"seq"`
	// PrevHash is the Hash of the previous record of the tenant, or 64
	// zeros for the first. Set by Append.
	PrevHash string `json:"prevHash"`
	// Hash is the hex SHA-256 of PrevHash followed by the record's canonical
	// JSON with Hash empty. Set by Append.
	Hash string `json:"hash"`
}

// User is the person on whose behalf the relay acted.
type User struct {
	// ID is the identity provider's subject.
	ID string `json:"id"`
	// Email is the user's e-mail address.
	Email string `json:"email"`
	// Roles are the roles the user held when acting.
	Roles []string `json:"roles"`
}

// Tenant is the customer organisation the action belongs to.
type Tenant struct {
	// ID is the tenant's identifier; it names the tenant's directory.
	ID string `json:"id"`
	// Name is the tenant's display name.
	Name string `json:"name"`
}

// Response is the outcome of the action.
type Response struct {
	// Success reports whether the action was carried out.
	Success bool `json:"success"`
	// IDs are the identifiers of objects created or changed.
	IDs []string `json:"ids"`
	// LatencyMs is how long the target system took, in milliseconds.
	LatencyMs float64 `json:"latencyMs"`
	// Error is the problem type URI when the action failed or was refused.
	Error string `json:"error,omitempty"`
}

// PolicyDecision is what policy evaluation decided about the action.
type PolicyDecision struct {
	// Effect is EffectAllow or EffectDeny.
	Effect string `json:"effect"`
	// Policies name the policies that decided.
	Policies []string `json:"policies"`
	// Reason explains the decision.
	Reason string `json:"reason"`
}

// chainTail is how Marshal ends a Record whose chain fields are zero: the
// writer replaces it with the real values, so the expensive part of the
// encoding runs in the appending goroutine.
var chainTail = []byte(`"seq":0,"prevHash":"","hash":""}`)

// hashTailLen is the length of `<64 hex digits>"}` that ends every stored
// line; what precedes it is the canonical JSON up to the value of Hash.
const hashTailLen = 64 + 2

// encodeBody returns the canonical JSON of r, which must have zero chain
// fields, without chainTail. It is safe to call from any goroutine.
func encodeBody(r *Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	// Marshal writes invalid UTF-8 as the escape \ufffd, which decodes to a
	// U+FFFD that Marshal writes back unescaped. Encode the decoded record
	// so the stored line is what Verify re-encodes.
	if bytes.Contains(b, []byte(`\ufffd`)) {
		var again Record
		if err := json.Unmarshal(b, &again); err != nil {
			return nil, err
		}
		if b, err = json.Marshal(&again); err != nil {
			return nil, err
		}
	}
	body, ok := bytes.CutSuffix(b, chainTail)
	if !ok {
		return nil, fmt.Errorf("encoding does not end in the chain fields: %.40q", b[max(0, len(b)-40):])
	}
	return body, nil
}

// appendLine appends to dst the stored line of the record whose body is
// body (from encodeBody), with the given Seq and PrevHash, and returns it
// with the record's Hash.
func appendLine(dst, body []byte, seq uint64, prev string) ([]byte, string) {
	start := len(dst)
	dst = append(dst, body...)
	dst = append(dst, `"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prevHash":"`...)
	dst = append(dst, prev...)
	dst = append(dst, `","hash":"`...)
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(dst[start:])
	h.Write([]byte(`"}`))
	var sum [sha256.Size]byte
	hash := hex.EncodeToString(h.Sum(sum[:0]))
	dst = append(dst, hash...)
	dst = append(dst, "\"}\n"...)
	return dst, hash
}

// checkLine decodes one stored line (without its newline) and checks that
// it is exactly the encoding of its Record and that its Hash is right. It
// returns the record and, when the line decodes but is wrong, why.
func checkLine(line []byte) (Record, string, error) {
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return Record{}, "", err
	}
	again, err := json.Marshal(&r)
	if err != nil {
		return r, "record cannot be re-encoded (edited)", nil
	}
	if !bytes.Equal(again, line) {
		return r, "encoding differs from the record's canonical JSON (edited)", nil
	}
	if len(r.PrevHash) != 64 || len(r.Hash) != 64 {
		return r, "prevHash or hash is not 64 hex digits (edited)", nil
	}
	h := sha256.New()
	h.Write([]byte(r.PrevHash))
	h.Write(line[:len(line)-hashTailLen])
	h.Write([]byte(`"}`))
	if hex.EncodeToString(h.Sum(nil)) != r.Hash {
		return r, "hash mismatch (record edited)", nil
	}
	return r, "", nil
}

// lineSeq reads Seq from the end of a stored line without decoding it: the
// line ends `"seq":N,"prevHash":"<64>","hash":"<64>"}`.
func lineSeq(line []byte) (uint64, bool) {
	const tail = len(`,"prevHash":"`) + 64 + len(`","hash":"`) + 64 + len(`"}`)
	end := len(line) - tail
	if end <= 0 {
		return 0, false
	}
	i := bytes.LastIndexByte(line[:end], ':')
	if i < 0 || !bytes.HasSuffix(line[:i+1], []byte(`"seq":`)) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(line[i+1:end]), 10, 64)
	return n, err == nil
}

// lineTime reads Timestamp from the start of a stored line without
// decoding it.
func lineTime(line []byte) (time.Time, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"timestamp":"`))
	if !ok {
		return time.Time{}, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:i]))
	return t, err == nil
}

// checkTenant accepts what tunnel.Identity and the store accept, a DNS
// label of lowercase letters, digits and inner hyphens, 1 to 63
// characters, and also such a label after an underscore: a reserved name,
// such as dispatch's "_unauthenticated", that no real tenant can take.
// Tenants name directories, so nothing else may pass.
func checkTenant(s string) error {
	label := strings.TrimPrefix(s, "_")
	if label == "" || len(s) > 63 {
		return fmt.Errorf("%w: tenant must be 1 to 63 characters", ErrInvalid)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(label)-1
		if !ok {
			return fmt.Errorf("%w: tenant %q: only lowercase letters, digits and inner hyphens are allowed, after an optional leading underscore", ErrInvalid, s)
		}
	}
	return nil
}
