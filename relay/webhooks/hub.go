package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"golang.org/x/time/rate"
)

// Event is one accepted webhook request, as queued and delivered.
type Event struct {
	// ID is the event's queue id, increasing in order of acceptance; it
	// stays the same across retries and replays (an idempotency key).
	ID int64 `json:"id"`
	// System and Tenant name the endpoint that received it.
	System string `json:"system"`
	Tenant string `json:"tenant"`
	// ReceivedAt is when the Hub accepted it.
	ReceivedAt time.Time `json:"receivedAt"`
	// ContentType is the request's Content-Type.
	ContentType string `json:"contentType,omitempty"`
	// Body is the request body, byte for byte as signed. Subscribers must
	// not modify it.
	Body []byte `json:"-"`
	// Attempt numbers the delivery being made, from 1; in a DeadLetter,
	// the number of attempts made.
	Attempt int `json:"attempt"`
}

// Subscriber receives the events of one system. Deliver returns nil once
// the event is handled; an error makes the Hub try again later, or give
// up at once when it wraps ErrPermanent. Deliver is called from one
// goroutine per endpoint at a time, for different endpoints concurrently.
type Subscriber interface {
	Deliver(ctx context.Context, ev Event) error
}

// SubscriberFunc adapts a function to Subscriber.
type SubscriberFunc func(ctx context.Context, ev Event) error

// Deliver calls f.
func (f SubscriberFunc) Deliver(ctx context.Context, ev Event) error { return f(ctx, ev) }

// DeadLetter is an event the Hub gave up delivering.
type DeadLetter struct {
	// Event is the event; Event.Attempt is the number of attempts made.
	Event Event
	// LastError is the last attempt's error.
	LastError string
	// DiedAt is when the last attempt failed.
	DiedAt time.Time
}

// Filter selects dead letters to list.
type Filter struct {
	// System and Tenant, when set, restrict the list to them.
	System, Tenant string
	// AfterID lists only events with a greater ID, for paging.
	AfterID int64
	// Limit bounds the list. Zero means 100.
	Limit int
}

// Selection selects dead letters to replay: the events IDs names, or, when
// IDs is empty, every dead event of System (required then) and Tenant
// (empty means all its tenants). System and Tenant also narrow IDs.
type Selection struct {
	IDs            []int64
	System, Tenant string
}

// Hub receives, verifies, queues and delivers webhook events. Its methods
// are safe for concurrent use.
type Hub struct {
	cfg       Config
	log       *slog.Logger
	store     *store
	metrics   *metrics
	endpoints map[endpointKey]verifier // read-only after Open
	secrets   *hookSecrets
	// rejections rate-limits the logging of refused requests, which
	// anyone on the internet can cause.
	rejections rate.Sometimes

	wake    chan struct{} // capacity 1: something to deliver may have changed
	closing chan struct{} // closed by Close

	mu      sync.Mutex
	subs    map[string]Subscriber // guarded by mu
	closed  bool                  // guarded by mu
	running bool                  // guarded by mu
	runs    sync.WaitGroup        // Run calls in progress; Add under mu while !closed

	closeOnce sync.Once
	closeErr  error
}

// Open opens the Hub's database in cfg.Dir, creating it if needed, and
// loads the stored Asana hook secrets. Events queued before are delivered
// once Run is called and their systems have subscribers.
func Open(ctx context.Context, cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("open webhook hub: metrics: %w", err)
	}
	st, err := openStore(ctx, cfg.Dir)
	if err != nil {
		return nil, err
	}
	stored, err := st.hookSecrets(ctx)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("open webhook hub: %w", err)
	}
	h := &Hub{
		cfg:        cfg,
		log:        cfg.Logger,
		store:      st,
		metrics:    m,
		endpoints:  make(map[endpointKey]verifier, len(cfg.Endpoints)),
		secrets:    newHookSecrets(),
		rejections: rate.Sometimes{First: 10, Interval: time.Minute},
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		subs:       make(map[string]Subscriber),
	}
	for k, s := range stored {
		h.secrets.set(k, s)
	}
	for _, ep := range cfg.Endpoints {
		h.endpoints[endpointKey{ep.System, ep.Tenant}] = newVerifier(ep, h.secrets)
	}
	return h, nil
}

// Subscribe makes s the subscriber of system's events, replacing any
// earlier one. Events of a system without a subscriber stay queued.
func (h *Hub) Subscribe(system string, s Subscriber) {
	h.mu.Lock()
	if s == nil {
		delete(h.subs, system)
	} else {
		h.subs[system] = s
	}
	h.mu.Unlock()
	h.signal()
}

func (h *Hub) subscriber(system string) Subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs[system]
}

// signal wakes Run's loop.
func (h *Hub) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// DeadLetters lists the dead events f selects, oldest first.
func (h *Hub) DeadLetters(ctx context.Context, f Filter) ([]DeadLetter, error) {
	if f.Limit < 0 || f.AfterID < 0 {
		return nil, invalidf("dead letters: negative limit or id")
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if err := h.checkOpen(); err != nil {
		return nil, err
	}
	return h.store.deadLetters(ctx, f)
}

// Replay moves the dead events sel selects back to the queue, with a
// fresh count of attempts, and returns how many it moved. Run delivers
// them in order of their IDs, before later events of their endpoints.
func (h *Hub) Replay(ctx context.Context, sel Selection) (int, error) {
	if len(sel.IDs) == 0 && sel.System == "" {
		return 0, invalidf("replay: name the events or at least their system")
	}
	if err := h.checkOpen(); err != nil {
		return 0, err
	}
	n, err := h.store.replay(ctx, sel, h.cfg.Now())
	if err != nil {
		return 0, err
	}
	h.log.Info("webhook dead letters replayed", "system", sel.System, "tenant", sel.Tenant, "ids", len(sel.IDs), "events", n)
	h.signal()
	return n, nil
}

// ResetHookSecret forgets the Asana hook secret of an endpoint, so that
// the next X-Hook-Secret handshake (a re-created webhook) is accepted.
// Until then the endpoint's events are refused.
func (h *Hub) ResetHookSecret(ctx context.Context, system, tenant string) error {
	k := endpointKey{system, tenant}
	if _, ok := h.endpoints[k].(*asanaVerifier); !ok {
		return invalidf("reset hook secret: %s/%s is not an asana endpoint", system, tenant)
	}
	if err := h.checkOpen(); err != nil {
		return err
	}
	if err := h.store.deleteHookSecret(ctx, k); err != nil {
		return err
	}
	h.secrets.set(k, "")
	h.log.Info("asana hook secret reset", "system", system, "tenant", tenant)
	return nil
}

func (h *Hub) checkOpen() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	return nil
}

// Close stops Run, waits for it to return, and closes the database.
// Requests after Close are answered 503. Close is idempotent.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		close(h.closing)
		h.runs.Wait()
		if err := h.store.close(); err != nil {
			h.closeErr = fmt.Errorf("close webhook hub: %w", err)
		}
	})
	return h.closeErr
}

// storeSecret stores an Asana handshake's secret for ep, reporting whether
// it is the endpoint's secret now.
func (h *Hub) storeSecret(ctx context.Context, ep endpointKey, secret connectors.Secret) (bool, error) {
	ok, err := h.store.putHookSecret(ctx, ep, secret, h.cfg.Now())
	if err != nil || !ok {
		return ok, err
	}
	h.secrets.set(ep, secret)
	return true, nil
}
