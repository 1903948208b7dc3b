package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/tunnel"
)

// Store is what the handler needs of the ingest store; *store.Embedded
// implements it. Errors are classified with the store package's typed
// errors (*store.HashMismatchError, *store.MissingBlobError,
// *store.BatchConflictError, store.ErrInvalid, store.ErrClosed).
type Store interface {
	PutBlob(ctx context.Context, tenant, sha256 string, r io.Reader) (created bool, size int64, err error)
	Apply(ctx context.Context, tenant string, b ingestapi.Batch) (ingestapi.BatchResult, error)
	FinishGeneration(ctx context.Context, tenant string, g ingestapi.Generation) (ingestapi.GenerationResult, error)
}

// DefaultMaxBlobBytes is Config.MaxBlobBytes's default: 4 GiB.
const DefaultMaxBlobBytes = 4 << 30

// maxGenerationBytes bounds a generation's JSON body.
const maxGenerationBytes = 64 << 10

// Config tunes the handler. The zero value is ready to use.
type Config struct {
	// MaxBlobBytes caps a blob upload; larger bodies are refused with 413.
	// Zero means DefaultMaxBlobBytes.
	MaxBlobBytes int64
	// Metrics records requests. Nil records nothing.
	Metrics *Metrics
}

// Handler serves the ingest endpoints. It is safe for concurrent use.
type Handler struct {
	store   Store
	log     *slog.Logger
	metrics *Metrics
	maxBlob int64
	mux     *http.ServeMux
}

// New returns a handler storing into s and logging to log.
func New(s Store, log *slog.Logger, cfg Config) (*Handler, error) {
	if s == nil {
		return nil, errors.New("ingest: a store is required")
	}
	if cfg.MaxBlobBytes < 0 {
		return nil, errors.New("ingest: max blob bytes must not be negative")
	}
	if cfg.MaxBlobBytes == 0 {
		cfg.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{store: s, log: log, metrics: cfg.Metrics, maxBlob: cfg.MaxBlobBytes, mux: http.NewServeMux()}
	h.Register(h.mux)
	return h, nil
}

// Register adds the three endpoints to mux, at the paths of ingestapi.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT "+ingestapi.BlobsPath+"{sha256}", h.putBlob)
	mux.HandleFunc("POST "+ingestapi.BatchesPath, h.postBatch)
	mux.HandleFunc("POST "+ingestapi.GenerationsPath, h.postGeneration)
}

// ServeHTTP serves the ingest endpoints; other paths get 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// peer returns the verified tunnel peer of r, or answers 401.
func (h *Handler) peer(w http.ResponseWriter, r *http.Request, endpoint string) (tunnel.Identity, bool) {
	id, ok := tunnel.PeerFromContext(r.Context())
	if !ok || id.IsZero() {
		h.log.Warn("ingest request without a tunnel peer", "endpoint", endpoint, "remote", r.RemoteAddr)
		h.fail(w, endpoint, problem(http.StatusUnauthorized, ProblemUnauthenticated,
			"ingest endpoints are served only to agents on a verified tunnel"))
		return tunnel.Identity{}, false
	}
	return id, true
}

func (h *Handler) fail(w http.ResponseWriter, endpoint string, p *Problem) {
	h.metrics.problem(endpoint, p.Type)
	writeProblem(w, p)
}

// recordingReader remembers the error of the request body, to tell a
// client that went away from a store that failed.
type recordingReader struct {
	r   io.Reader
	err error
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF {
		rr.err = err
	}
	return n, err
}

// bodyProblem classifies an error of reading the body, or returns nil.
func bodyProblem(err error, body *recordingReader, limit int64) *Problem {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return problem(http.StatusRequestEntityTooLarge, ProblemBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit))
	}
	if body.err != nil && errors.Is(err, body.err) {
		return problem(http.StatusBadRequest, ProblemIncompleteBody, "the body could not be read to its end")
	}
	return nil
}

// storeProblem classifies the errors every store call may return.
func storeProblem(err error) *Problem {
	switch {
	case errors.Is(err, store.ErrClosed):
		return problem(http.StatusServiceUnavailable, ProblemUnavailable, "the relay is shutting down; retry")
	case errors.Is(err, store.ErrInvalid):
		return problem(http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusServiceUnavailable, ProblemUnavailable, "the request was cancelled before it completed; retry")
	}
	return problem(http.StatusInternalServerError, ProblemInternal, "the relay could not store the request; retry")
}

// blobResult is the body of a successful blob upload.
type blobResult struct {
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Created bool   `json:"created"`
}

func (h *Handler) putBlob(w http.ResponseWriter, r *http.Request) {
	const endpoint = "blobs"
	peer, ok := h.peer(w, r, endpoint)
	if !ok {
		return
	}
	sha := r.PathValue("sha256")
	log := h.log.With("tenant", peer.Tenant, "agent", peer.Agent, "sha256", sha)
	if !ingestapi.ValidSHA256(sha) {
		log = h.log.With("tenant", peer.Tenant, "agent", peer.Agent) // not a hash: do not log it
		log.Warn("blob refused: path is not a SHA-256")
		h.fail(w, endpoint, problem(http.StatusBadRequest, ProblemInvalidSHA256,
			"path: the last segment must be the content's SHA-256 as 64 lower-case hex digits"))
		return
	}
	if r.ContentLength > h.maxBlob {
		log.Warn("blob refused: too large", "size", r.ContentLength, "max", h.maxBlob)
		h.fail(w, endpoint, problem(http.StatusRequestEntityTooLarge, ProblemBodyTooLarge,
			fmt.Sprintf("the body exceeds %d bytes", h.maxBlob)))
		return
	}
	body := &recordingReader{r: http.MaxBytesReader(w, r.Body, h.maxBlob)}
	created, size, err := h.store.PutBlob(r.Context(), peer.Tenant, sha, body)
	if err != nil {
		p := bodyProblem(err, body, h.maxBlob)
		var mm *store.HashMismatchError
		switch {
		case p != nil:
		case errors.As(err, &mm):
			p = problem(http.StatusUnprocessableEntity, ProblemHashMismatch,
				fmt.Sprintf("the body (%d bytes) does not hash to the SHA-256 in the path", mm.Size))
		default:
			p = storeProblem(err)
		}
		log.Warn("blob refused", "problem", p.Type, "err", err)
		h.fail(w, endpoint, p)
		return
	}
	h.metrics.blobStored(peer.Tenant, created, size)
	log.Debug("blob stored", "size", size, "created", created)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, blobResult{SHA256: sha, Size: size, Created: created})
}

func (h *Handler) postBatch(w http.ResponseWriter, r *http.Request) {
	const endpoint = "batches"
	start := time.Now()
	peer, ok := h.peer(w, r, endpoint)
	if !ok {
		return
	}
	log := h.log.With("tenant", peer.Tenant, "agent", peer.Agent)
	refuse := func(p *Problem, outcome string, err error, args ...any) {
		h.metrics.batch(peer.Tenant, outcome, 0, 0, time.Since(start))
		args = append(args, "problem", p.Type, "detail", p.Detail)
		if err != nil {
			args = append(args, "err", err)
		}
		log.Warn("batch refused", args...)
		h.fail(w, endpoint, p)
	}
	var b ingestapi.Batch
	if p := decodeStrict(w, r, &b, ingestapi.MaxBatchBytes); p != nil {
		refuse(p, "refused", nil)
		return
	}
	log = log.With("batch", b.ID)
	if err := b.Validate(); err != nil {
		refuse(problem(http.StatusUnprocessableEntity, ProblemInvalidBatch, err.Error()), "refused", nil)
		return
	}
	res, err := h.store.Apply(r.Context(), peer.Tenant, b)
	if err != nil {
		var (
			mb *store.MissingBlobError
			bc *store.BatchConflictError
			p  *Problem
		)
		outcome := "refused"
		switch {
		case errors.As(err, &mb):
			p = problem(http.StatusConflict, ProblemMissingBlob, mb.Error()+"; upload the blobs first, then send the batch again")
			for _, m := range mb.Missing {
				p.MissingBlobs = append(p.MissingBlobs, MissingBlob{Upsert: m.Upsert, SHA256: m.SHA256})
			}
		case errors.As(err, &bc):
			p = problem(http.StatusConflict, ProblemBatchConflict,
				"id: a batch with this id was applied with different content; a changed batch needs a new id")
		default:
			p = storeProblem(err)
			if p.Status >= 500 {
				outcome = "failed"
			}
		}
		refuse(p, outcome, err)
		return
	}
	outcome := "applied"
	if res.Duplicate {
		outcome = "duplicate"
	}
	h.metrics.batch(peer.Tenant, outcome, res.Upserted, res.Deleted, time.Since(start))
	log.Debug("batch applied", "upserted", res.Upserted, "deleted", res.Deleted, "duplicate", res.Duplicate,
		"took", time.Since(start))
	writeJSON(w, http.StatusOK, res)
}

func (h *Handler) postGeneration(w http.ResponseWriter, r *http.Request) {
	const endpoint = "generations"
	peer, ok := h.peer(w, r, endpoint)
	if !ok {
		return
	}
	log := h.log.With("tenant", peer.Tenant, "agent", peer.Agent)
	var g ingestapi.Generation
	if p := decodeStrict(w, r, &g, maxGenerationBytes); p != nil {
		log.Warn("generation refused", "problem", p.Type, "detail", p.Detail)
		h.fail(w, endpoint, p)
		return
	}
	log = log.With("site", g.Site, "generation", g.Generation)
	var missing []string
	if g.Site == "" {
		missing = append(missing, "site")
	}
	if g.Generation == "" {
		missing = append(missing, "generation")
	}
	if len(missing) > 0 {
		p := problem(http.StatusUnprocessableEntity, ProblemInvalidGeneration, strings.Join(missing, " and ")+": required")
		log.Warn("generation refused", "problem", p.Type, "detail", p.Detail)
		h.fail(w, endpoint, p)
		return
	}
	res, err := h.store.FinishGeneration(r.Context(), peer.Tenant, g)
	if err != nil {
		p := storeProblem(err)
		log.Warn("generation refused", "problem", p.Type, "err", err)
		h.fail(w, endpoint, p)
		return
	}
	h.metrics.orphansDeleted(peer.Tenant, res.Deleted)
	log.Info("generation finished", "orphans_deleted", res.Deleted)
	writeJSON(w, http.StatusOK, res)
}

// decodeStrict decodes exactly one JSON object of at most limit bytes into
// v, refusing unknown members and trailing data. Details name the field or
// offset at fault and never quote values from the body.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any, limit int64) *Problem {
	if r.ContentLength > limit {
		return problem(http.StatusRequestEntityTooLarge, ProblemBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit))
	}
	body := &recordingReader{r: http.MaxBytesReader(w, r.Body, limit)}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		var extra json.RawMessage
		if err = dec.Decode(&extra); err == io.EOF {
			return nil
		}
		if p := bodyProblem(err, body, limit); p != nil {
			return p
		}
		return problem(http.StatusBadRequest, ProblemInvalidJSON, "the body holds data after the JSON object")
	}
	if p := bodyProblem(err, body, limit); p != nil {
		return p
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return problem(http.StatusBadRequest, ProblemInvalidJSON, "the body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, ProblemInvalidJSON, "the JSON ends before the object is complete")
	case errors.As(err, &syn):
		return problem(http.StatusBadRequest, ProblemInvalidJSON, fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		field := jsonPath(typ.Field)
		if field == "" {
			field = "the body"
		}
		return problem(http.StatusBadRequest, ProblemInvalidJSON, fmt.Sprintf("%s: want a JSON %s", field, jsonKind(typ.Type)))
	}
	var te *time.ParseError
	if errors.As(err, &te) {
		return problem(http.StatusBadRequest, ProblemInvalidJSON, "created or modified: want an RFC 3339 time")
	}
	if name, ok := unknownField(err); ok {
		return problem(http.StatusBadRequest, ProblemUnknownField, fmt.Sprintf("unknown field %q: the wire format has no such member", name))
	}
	return problem(http.StatusBadRequest, ProblemInvalidJSON, "the body is not a valid JSON object")
}

// unknownField extracts the member name from encoding/json's error for
// DisallowUnknownFields (json: unknown field "name"), cut to 64 bytes.
func unknownField(err error) (string, bool) {
	_, rest, ok := strings.Cut(err.Error(), `unknown field "`)
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, `"`)
	if len(name) > 64 {
		name = strings.ToValidUTF8(name[:64], "") + "…"
	}
	return name, true
}

// jsonKind names the JSON type that decodes into a Go type.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return "string (RFC 3339 time)"
		}
		return "object"
	}
	return "value"
}

// jsonPath turns encoding/json's field path into wire names: the Go name
// of the embedded ingestapi.Key is not part of the JSON.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	parts = slices.DeleteFunc(parts, func(p string) bool { return p == "Key" })
	return strings.Join(parts, ".")
}
