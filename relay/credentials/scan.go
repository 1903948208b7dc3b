package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// Run scans every Config.ScanInterval (wall-clock) until ctx ends, then
// returns nil once the refreshes it started have finished. It owns its
// goroutines. Several processes sharing the store may each run it: leases
// keep their refreshes apart.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.ScanInterval)
	defer t.Stop()
	for {
		if err := m.Scan(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("credential scan failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan makes one pass of the background scanner:
//
//   - refreshes OAuth tokens that expire within Config.Window (skipping
//     connections backing off after failures), ScanParallelism at a time;
//   - sends the alerts of EXPIRED connections whose alert failed;
//   - sends API-key rotation reminders Config.APIKeyReminder ahead;
//   - deletes authorization states expired for longer than StateTTL;
//   - counts connections by state for bridge_credentials_connections.
//
// A failed refresh is logged and recorded on its connection; Scan's error
// reports store failures.
func (m *Manager) Scan(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	now := m.now()
	due, err := m.pairs(ctx, `SELECT tenant, system FROM connections WHERE method = ? AND state IN (?, ?)
		AND expiry > 0 AND expiry <= ? AND next_attempt <= ? ORDER BY expiry`,
		MethodOAuth2, StateActive, StateRefreshing, ms(now.Add(m.cfg.Window)), ms(now))
	if err != nil {
		return err
	}
	// Refreshes started are waited for even when ctx ends (each is
	// bounded by LeaseDuration + MaxRefreshDuration), so that Run returns
	// with none of its refreshes in flight; no new one starts then.
	var g errgroup.Group
	g.SetLimit(m.cfg.ScanParallelism)
	wctx := context.WithoutCancel(ctx)
	for _, p := range due {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil
			}
			if _, err := m.refreshShared(wctx, p[0], p[1], m.cfg.Window); err != nil {
				m.log.Warn("scheduled refresh failed", "tenant", p[0], "system", p[1], "err", err)
			}
			return nil
		})
	}
	g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	expired, err := m.pairs(ctx, `SELECT tenant, system FROM connections WHERE state = ?`, StateExpired)
	if err != nil {
		return err
	}
	for _, p := range expired {
		m.alertExpired(ctx, p[0], p[1])
	}
	err = errors.Join(m.remindAPIKeys(ctx, now), m.dropStates(ctx, now))
	m.recount(ctx)
	return err
}

// pairs runs a query of (tenant, system) rows.
func (m *Manager) pairs(ctx context.Context, q string, args ...any) ([][2]string, error) {
	rows, err := m.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// remindAPIKeys alerts once per rotation date for keys due within
// APIKeyReminder. The reminder is claimed in the store first, so that
// processes sharing it send one; a failed send releases the claim.
func (m *Manager) remindAPIKeys(ctx context.Context, now time.Time) error {
	due, err := m.pairs(ctx, `SELECT tenant, system FROM connections WHERE method = ? AND state = ? AND rotate_by > 0
		AND rotate_by <= ? AND reminded_at = 0`, MethodAPIKey, StateActive, ms(now.Add(m.cfg.APIKeyReminder)))
	if err != nil {
		return err
	}
	for _, p := range due {
		var rotateBy int64
		err := m.db.QueryRowContext(ctx, `UPDATE connections SET reminded_at = ?, version = version + 1
			WHERE tenant = ? AND system = ? AND reminded_at = 0 RETURNING rotate_by`, ms(now), p[0], p[1]).Scan(&rotateBy)
		if err != nil {
			continue // another process claimed it
		}
		left := fromMS(rotateBy).Sub(now).Round(time.Hour)
		when := fmt.Sprintf("by %s (in %v)", fromMS(rotateBy).Format(time.DateOnly), left)
		if left <= 0 {
			when = fmt.Sprintf("by %s (overdue)", fromMS(rotateBy).Format(time.DateOnly))
		}
		text := fmt.Sprintf("MCC Bridge: the %s API key of tenant %s must be rotated %s. "+
			"Store the new key in the relay's credential manager.", p[1], p[0], when)
		if err := m.alert(ctx, text); err != nil {
			m.log.Warn("API key reminder not sent; the scanner tries again", "tenant", p[0], "system", p[1], "err", err)
			m.db.ExecContext(ctx, `UPDATE connections SET reminded_at = 0 WHERE tenant = ? AND system = ?`, p[0], p[1])
		}
	}
	return nil
}

// dropStates deletes authorization states past their expiry by more than
// StateTTL (until then CompleteAuthorization can still say "expired").
func (m *Manager) dropStates(ctx context.Context, now time.Time) error {
	if _, err := m.db.ExecContext(ctx, `DELETE FROM oauth_states WHERE expires_at < ?`, ms(now.Add(-m.cfg.StateTTL))); err != nil {
		return fmt.Errorf("scan: drop expired authorization states: %w", err)
	}
	return nil
}
