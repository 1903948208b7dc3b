package custom

import (
	"encoding/json"
	"testing"
)

func TestExtract(t *testing.T) {
	doc := json.RawMessage(`{"data":{"items":[{"id":1},{"id":"b"}],"0":"zero"},"n":null}`)
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"data.items.1.id", `"b"`, true},
		{"data.items.0", `{"id":1}`, true},
		{"data.0", `"zero"`, true},
		{"n", `null`, true},
		{"data.items.2", "", false},
		{"data.items.-1", "", false},
		{"data.items.01", "", false},
		{"data.items.x", "", false},
		{"missing", "", false},
		{"n.x", "", false},
	} {
		got, err := extract(doc, tc.path)
		if (err == nil) != tc.ok || (tc.ok && string(got) != tc.want) {
			t.Errorf("extract(%q): got %s, %v; want %s (ok %v)", tc.path, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzExtract: any answer and path are handled without panicking.
func FuzzExtract(f *testing.F) {
	f.Add(`{"a":[1,{"b":2}]}`, "a.1.b")
	f.Add(`[[[]]]`, "0.0.0")
	f.Add(`"x"`, "a")
	f.Fuzz(func(t *testing.T, doc, path string) {
		if v, err := extract(json.RawMessage(doc), path); err == nil && json.Valid([]byte(doc)) && !json.Valid(v) {
			t.Errorf("extract(%q, %q) = %q, not JSON", doc, path, v)
		}
	})
}
