package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

const tinyproxyPassword = "T1ny-pr0xy-Pw-8Lm"

func TestDialContextTinyproxy(t *testing.T) {
	echo := startEcho(t)
	_, echoPort, _ := net.SplitHostPort(echo)
	other := startEcho(t) // a port ConnectPort does not allow
	proxy := tunneltest.StartTinyproxy(t, echoPort, "alice", tinyproxyPassword)

	tests := []struct {
		name        string
		user        *url.Userinfo
		target      string
		wantAuthErr bool
		wantScheme  string
		wantStatus  int
		wantErr     string
	}{
		{
			name:   "right password: bytes round-trip",
			user:   url.UserPassword("alice", tinyproxyPassword),
			target: echo,
		},
		{
			name:        "wrong password",
			user:        url.UserPassword("alice", tinyproxyPassword+"x"),
			target:      echo,
			wantAuthErr: true,
			wantScheme:  "Basic",
			wantErr:     "proxy authentication failed at " + proxy + " with scheme Basic (the proxy offers Basic)",
		},
		{
			name:        "no credentials",
			target:      echo,
			wantAuthErr: true,
			wantErr:     "proxy authentication required by " + proxy,
		},
		{
			name:       "port not allowed by ConnectPort",
			user:       url.UserPassword("alice", tinyproxyPassword),
			target:     other,
			wantStatus: http.StatusForbidden,
			wantErr:    "answered CONNECT with 403",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := testLogger(t)
			d := &Dialer{
				URL:    proxyURL("http", proxy, tt.user),
				Header: http.Header{"User-Agent": {"bridge-agent-test"}},
				Logger: logger,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", tt.target)
			assertNoSecret(t, "log", logs.String(), tinyproxyPassword)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DialContext: %v", err)
				}
				defer c.Close()
				for i := range 3 {
					assertEcho(t, c, fmt.Sprintf("message %d through tinyproxy", i))
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("DialContext: got a connection, want an error")
			}
			t.Logf("error: %v", err)
			assertNoSecret(t, "error", err.Error(), tinyproxyPassword)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantErr)
			}
			var ae *AuthError
			if got := errors.As(err, &ae); got != tt.wantAuthErr {
				t.Errorf("errors.As(err, *AuthError): got %v, want %v", got, tt.wantAuthErr)
			} else if got && ae.Scheme != tt.wantScheme {
				t.Errorf("AuthError.Scheme: got %q, want %q", ae.Scheme, tt.wantScheme)
			}
			var se *StatusError
			if got := errors.As(err, &se); got != (tt.wantStatus != 0) {
				t.Errorf("errors.As(err, *StatusError): got %v, want %v", got, tt.wantStatus != 0)
			} else if got && se.StatusCode != tt.wantStatus {
				t.Errorf("StatusCode: got %d, want %d", se.StatusCode, tt.wantStatus)
			}
		})
	}
}
