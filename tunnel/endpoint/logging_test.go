package endpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogConfigOpenWritesBothAndRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs", "agent.log")
	var term bytes.Buffer
	log, closer, err := LogConfig{File: path, MaxSizeMB: 1, MaxBackups: 2}.Open(&term)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("first line", "n", 1)
	if !strings.Contains(term.String(), "first line") {
		t.Fatalf("terminal got %q", term.String())
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "first line") {
		t.Fatalf("file got %q, %v", b, err)
	}
	// 3 MiB of lines at 1 MiB per file: rotated, and at most 2 backups kept.
	line := strings.Repeat("x", 1000)
	for i := 0; i < 3*1024; i++ {
		log.Info(line)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 {
		t.Fatalf("no rotation: %d files", len(entries))
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Size() > 1<<20+4096 {
			t.Errorf("%s is %d bytes, over the 1 MiB limit", e.Name(), info.Size())
		}
	}
}

func TestLogConfigOpenErrors(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]LogConfig{
		"dir is a file": {File: filepath.Join(blocker, "agent.log")},
		"bad level":     {File: filepath.Join(dir, "a.log"), Level: "loud"},
	} {
		if _, _, err := c.Open(&bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, c, err := (LogConfig{}).Open(&bytes.Buffer{}); err != nil || c.Close() != nil {
		t.Errorf("no file: %v", err)
	}
}
