package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// alert sends text to Config.AlertURL as a Slack incoming-webhook message,
// {"text": text}. Callers build text from names and error codes only,
// never from a secret or a provider's free-text response. Without an
// AlertURL the alert is only logged.
func (m *Manager) alert(ctx context.Context, text string) error {
	m.log.Warn("credentials alert", "text", text)
	if m.cfg.AlertURL == "" {
		return nil
	}
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.AlertURL.Reveal(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert: bad AlertURL") // the URL holds the hook's key: never quoted
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("alert: the webhook could not be reached") // *url.Error would quote the URL
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert: the webhook answered %s", resp.Status)
	}
	return nil
}
