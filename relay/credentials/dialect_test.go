package credentials

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestOKFalseTransport(t *testing.T) {
	tests := []struct {
		name, ctype, body string
		wantStatus        int
		wantError         string // "" means the body passes untouched
	}{
		{"dead refresh token", "application/json; charset=utf-8", `{"ok":false,"error":"invalid_refresh_token"}`, 400, "invalid_grant"},
		{"wrong client", "application/json", `{"ok":false,"error":"bad_client_secret"}`, 400, "invalid_client"},
		{"rate limited", "application/json", `{"ok":false,"error":"ratelimited"}`, 429, ""},
		{"unknown error kept", "application/json", `{"ok":false,"error":"team_not_found"}`, 400, "team_not_found"},
		{"internal error is transient", "application/json", `{"ok":false,"error":"internal_error"}`, 400, "server_error"},
		{"success", "application/json", `{"ok":true,"access_token":"xoxe.xoxb-1"}`, 200, ""},
		{"RFC 6749 success", "application/json", `{"access_token":"a","token_type":"Bearer"}`, 200, ""},
		{"not JSON", "text/html", `{"ok":false}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			resp, err := tokenClient(srv.Client()).Post(srv.URL, "application/x-www-form-urlencoded", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				if string(b) != tt.body {
					t.Errorf("body changed: %s", b)
				}
				return
			}
			var got struct{ Error string }
			json.Unmarshal(b, &got)
			if got.Error != tt.wantError {
				t.Errorf("error %q, want %q (body %s)", got.Error, tt.wantError, b)
			}
		})
	}
}
