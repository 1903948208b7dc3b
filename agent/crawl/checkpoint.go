package crawl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcc-bridge/bridge/pki/enroll"
)

// Phases of a site's crawl.
const (
	PhaseFull        = "full"
	PhaseIncremental = "incremental"
)

// Checkpoint is where a site's crawl stands. It moves only after the relay
// acknowledged what came before it, so a crash or restart resumes here and
// loses nothing.
type Checkpoint struct {
	Site string `json:"site"`
	// Phase is full (enumerating) or incremental (following the change log).
	Phase string `json:"phase"`
	// Generation names the current full crawl; documents carry it.
	Generation string `json:"generation"`
	// ChangeToken is where the change log is read from next: during a full
	// crawl, the token read before it started.
	ChangeToken string `json:"change_token"`
	// DoneLists are the lists finished in this full crawl.
	DoneLists []string `json:"done_lists,omitempty"`
	// ListID and AfterID: the list in progress, and the last item ID delivered from it.
	ListID  string `json:"list_id,omitempty"`
	AfterID int    `json:"after_id,omitempty"`
	// Counters for status.
	FullStarted  time.Time `json:"full_started,omitzero"`
	FullFinished time.Time `json:"full_finished,omitzero"`
	LastChange   time.Time `json:"last_change,omitzero"`
	LastPoll     time.Time `json:"last_poll,omitzero"`
	Delivered    int64     `json:"delivered"`
}

// checkpoints keeps one file per site in dir, written atomically.
type checkpoints struct{ dir string }

func (c checkpoints) path(site string) string {
	sum := sha256.Sum256([]byte(site))
	return filepath.Join(c.dir, "crawl-"+hex.EncodeToString(sum[:8])+".json")
}

func (c checkpoints) load(site string) (Checkpoint, error) {
	b, err := os.ReadFile(c.path(site))
	if errors.Is(err, os.ErrNotExist) {
		return Checkpoint{Site: site}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %s: %w", c.path(site), err)
	}
	if cp.Site != site {
		return Checkpoint{Site: site}, nil
	}
	return cp, nil
}

func (c checkpoints) save(cp Checkpoint) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	if err := enroll.WriteFileAtomic(c.path(cp.Site), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
