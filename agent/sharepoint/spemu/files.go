package spemu

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// streamContent serves a file's bytes after the content lock is released:
// Content-Length, ETag, Last-Modified and single Range requests (206, 416),
// streamed from the generator without buffering.
func (c *rctx) streamContent(it *item) {
	ref, ct, mod := it.fileRef(), it.content, it.modified
	etag := `"` + it.uniqueID.braced() + "," + strconv.Itoa(it.hidden) + `"`
	c.after = func() { c.s.serveContent(c.w, c.r, ref, etag, mod, ct) }
}

func (s *Server) serveContent(w http.ResponseWriter, r *http.Request, ref, etag string, mod time.Time, ct content) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", etag)
	h.Set("X-Download-Options", "noopen")
	h.Set("Accept-Ranges", "bytes")
	var ww http.ResponseWriter = w
	if after, ok := s.ctl.takeReset(ref); ok {
		ww = &resetWriter{ResponseWriter: w, left: after, s: s}
	}
	http.ServeContent(ww, r, "", mod, ct.reader())
}

// direct serves a file by its own URL (GET /sites/x/Shared Documents/a.docx).
func (c *rctx) direct(path string) error {
	if !c.isGet() {
		return ErrNotFound
	}
	t, err := c.s.resolve(path)
	if err != nil || t.item == nil || !t.item.isFile {
		return ErrNotFound
	}
	c.streamContent(t.item)
	return nil
}

var errReset = errors.New("spemu: connection reset by fault injection")

// resetWriter passes left bytes, then cuts the TCP connection.
type resetWriter struct {
	http.ResponseWriter
	left int64
	s    *Server
	done bool
}

// Write passes bytes until the budget is spent, then cuts the connection.
func (rw *resetWriter) Write(p []byte) (int, error) {
	if rw.done {
		return 0, errReset
	}
	if int64(len(p)) <= rw.left {
		rw.left -= int64(len(p))
		return rw.ResponseWriter.Write(p)
	}
	n, _ := rw.ResponseWriter.Write(p[:rw.left])
	rw.left, rw.done = 0, true
	rw.cut()
	return n, errReset
}

// cut flushes what was written and closes the connection under the client.
func (rw *resetWriter) cut() {
	rw.s.ctl.add(&rw.s.ctl.stats.Resets)
	rc := http.NewResponseController(rw.ResponseWriter)
	rc.Flush()
	conn, bufw, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	bufw.Flush()
	conn.Close()
}
