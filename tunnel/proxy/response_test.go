package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func connectReq(target string) *http.Request {
	return &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
}

func TestReadConnectResponse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantCode int
		wantBody string // what Body yields
		wantRest string // what stays in the reader for the tunnel or the next response
		wantErr  string
	}{
		{name: "200", in: "HTTP/1.1 200 Connection established\r\n\r\n", wantCode: 200},
		{name: "200 then tunnel bytes", in: "HTTP/1.1 200 OK\r\nVia: 1.1 squid\r\n\r\n\x16\x03\x01tls", wantCode: 200, wantRest: "\x16\x03\x01tls"},
		{name: "200 ignores Content-Length", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", wantCode: 200, wantRest: "abcdef"},
		{name: "LF line endings", in: "HTTP/1.0 200 OK\nProxy-agent: x\n\nrest", wantCode: 200, wantRest: "rest"},
		{name: "407 with Content-Length body", in: "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200", wantCode: 407, wantBody: "hello", wantRest: "HTTP/1.1 200"},
		{name: "407 chunked with trailer", in: "HTTP/1.1 407 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nnext", wantCode: 407, wantBody: "abcde", wantRest: "next"},
		{name: "403 body until close", in: "HTTP/1.0 403 Forbidden\r\n\r\ndenied", wantCode: 403, wantBody: "denied"},
		{name: "long header line spans buffer fills", in: "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("b", 10000) + "\r\n\r\nz", wantCode: 200, wantRest: "z"},
		{name: "nothing", in: "", wantErr: "closed the connection before responding"},
		{name: "truncated", in: "HTTP/1.1 200 OK\r\nVia: x\r\n", wantErr: "in the middle of its response"},
		{name: "garbage", in: "\x00\x01\x02\r\n\r\n", wantErr: "malformed HTTP response"},
		{name: "bad status code", in: "HTTP/1.1 2000 OK\r\n\r\n", wantErr: "parse response"},
		{name: "too large", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 10000) + "\r\n", wantErr: "exceeds 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			resp, err := readConnectResponse(br, connectReq("relay:443"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readConnectResponse: %v", err)
			}
			if resp.StatusCode != tt.wantCode {
				t.Errorf("StatusCode: got %d, want %d", resp.StatusCode, tt.wantCode)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tt.wantRest {
				t.Errorf("left in reader: got %q, want %q", rest, tt.wantRest)
			}
		})
	}
}

// endless is a reader that never ends and counts what was read from it.
type endless struct {
	fill byte
	n    int
}

func (r *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.fill
	}
	r.n += len(p)
	return len(p), nil
}

// TestReadConnectResponseIsBounded feeds endless headers and checks the
// reader stops after about maxHeaderBytes.
func TestReadConnectResponseIsBounded(t *testing.T) {
	tests := []struct {
		name string
		head string
		fill byte
	}{
		{"one endless line", "HTTP/1.1 200 OK\r\nX: ", 'a'},
		{"a bare LF ends the head", "HTTP/1.1 200 OK\r\n", '\n'}, // then endless blank lines stay unread
		{"endless status line", "HTTP/1.1 200 ", 'x'},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &endless{fill: tt.fill}
			br := bufio.NewReader(io.MultiReader(strings.NewReader(tt.head), src))
			resp, err := readConnectResponse(br, connectReq("relay:443"))
			if tt.fill == '\n' {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("got %v, %v; want a 200 ended by the blank line", resp, err)
				}
				return
			}
			if !errors.Is(err, errHeaderTooLarge) {
				t.Fatalf("got error %v, want errHeaderTooLarge", err)
			}
			if limit := maxHeaderBytes + br.Size() + len(tt.head); src.n > limit {
				t.Errorf("read %d bytes from the proxy, want at most %d", src.n, limit)
			}
		})
	}
}

func TestReadConnectResponseMemory(t *testing.T) {
	// Bytes allocated while rejecting an endless header stay near the limit.
	const runs = 5
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		br := bufio.NewReader(io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\nX: "), &endless{fill: 'a'}))
		if _, err := readConnectResponse(br, connectReq("relay:443")); !errors.Is(err, errHeaderTooLarge) {
			t.Fatalf("got %v, want errHeaderTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d bytes allocated per rejected response", perRun)
	if limit := uint64(3 * maxHeaderBytes); perRun > limit {
		t.Errorf("bytes allocated per rejected response: got %d, want at most %d", perRun, limit)
	}
}

func TestAuthSchemes(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"none", nil, nil},
		{"one per header", []string{"NTLM", `Basic realm="corp"`}, []string{"NTLM", "Basic"}},
		{"several in one header", []string{`Negotiate, NTLM, Basic realm="x", charset="UTF-8"`}, []string{"Negotiate", "NTLM", "Basic"}},
		{"comma inside quotes", []string{`Basic realm="a, Fake b", Digest realm="r", nonce="n, Evil x"`}, []string{"Basic", "Digest"}},
		{"token68 after scheme", []string{"NTLM TlRMTVNTUAACAAAA=="}, []string{"NTLM"}},
		{"param with spaces before =", []string{`Basic realm ="x"`}, []string{"Basic"}},
		{"duplicates folded", []string{"NTLM", "ntlm", "Basic", "BASIC"}, []string{"NTLM", "Basic"}},
		{"hostile names dropped", []string{"\x1b[31mRed", strings.Repeat("L", 40), `"quoted"`}, nil},
		{"at most eight", []string{"A1, A2, A3, A4, A5, A6, A7, A8, A9, A10"}, []string{"A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authSchemes(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("authSchemes(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestConnReadsBufferedBytesFirst(t *testing.T) {
	tests := []struct {
		name     string
		buffered string
		network  string
		bufSize  int // size of each Read
	}{
		{"nothing buffered", "", "from the network", 64},
		{"buffered then network", "early", " then network", 64},
		{"small reads across the boundary", "abcdef", "ghij", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := netPipe(t)
			br := bufio.NewReader(io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\n\r\n"+tt.buffered), client))
			// Fill br's buffer with the head and tt.buffered, as the Dialer's reader is.
			if _, err := readConnectResponse(br, connectReq("relay:443")); err != nil {
				t.Fatal(err)
			}
			if got := br.Buffered(); got != len(tt.buffered) {
				t.Fatalf("buffered: got %d, want %d", got, len(tt.buffered))
			}
			c := newConn(client, br)
			if tt.buffered == "" && c != client {
				t.Errorf("newConn wrapped the connection with nothing buffered, want it returned as is")
			}
			go func() {
				io.WriteString(server, tt.network)
				server.Close()
			}()
			var got bytes.Buffer
			buf := make([]byte, tt.bufSize)
			for {
				n, err := c.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if want := tt.buffered + tt.network; got.String() != want {
				t.Errorf("read: got %q, want %q", got.String(), want)
			}
		})
	}
}
