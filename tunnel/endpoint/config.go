package endpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadYAML decodes the YAML file at path into v strictly: a key that v has no
// field for, a value of the wrong type, or a second document is an error that
// names the file, the line and the key. An empty file leaves v as it is, so
// callers fill v with defaults first.
func LoadYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	return DecodeYAML(path, data, v)
}

// DecodeYAML is LoadYAML on bytes already read; name is used in errors.
func DecodeYAML(name string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("config %s: %s", name, cleanYAMLError(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: more than one YAML document; put everything in one", name)
	}
	return nil
}

// cleanYAMLError rewords yaml.v3's messages ("field x not found in type
// main.T") into ones an admin can act on ("unknown key x").
func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if i := strings.Index(l, "field "); i >= 0 && strings.Contains(l, " not found in type ") {
			key := l[i+len("field "):]
			key = key[:strings.Index(key, " not found in type ")]
			l = l[:i] + "unknown key " + fmt.Sprintf("%q", key)
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "; ")
}
