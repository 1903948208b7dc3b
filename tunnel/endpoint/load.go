package endpoint

import (
	"fmt"
	"path/filepath"
)

// Checked is what LoadConfig needs of a configuration type: a check for
// mistakes an admin can fix, and the file and directory paths it names.
type Checked interface {
	Validate() error
	Paths() []*string
}

// LoadConfig reads the YAML file at path strictly over defaults, takes the
// relative paths it names as relative to the file's directory, and
// validates the result.
func LoadConfig[C any, PC interface {
	*C
	Checked
}](path string, defaults C) (C, error) {
	cfg := defaults
	if err := LoadYAML(path, &cfg); err != nil {
		return *new(C), err
	}
	pc := PC(&cfg)
	dir := filepath.Dir(path)
	for _, p := range pc.Paths() {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if err := pc.Validate(); err != nil {
		return *new(C), fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}
