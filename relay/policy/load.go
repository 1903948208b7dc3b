package policy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
)

const (
	// globalDir is the folder of the policies applied to every tenant.
	globalDir = "_global"
	// globalPrefix starts the id of every global policy.
	globalPrefix = globalDir + "/"
	// fileExt is the extension of policy files.
	fileExt = ".cedar"
	// maxFileSize bounds one policy file.
	maxFileSize = 4 << 20
)

// Run polls Config.Dir every Config.ReloadInterval and reloads the folders
// whose content changed, until ctx ends; it returns nil then. A folder that
// fails to load keeps its previous policies (see [Engine.Reload]).
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = e.Reload(ctx) // logged and reported by Loaded
		}
	}
}

// Reload reads Config.Dir once and applies the folders whose content
// changed; a tenant folder that disappeared loses its policies. A folder
// that cannot be read or parsed keeps its previous policies; its error is
// logged and counted once per change. Reload returns the errors of all the
// folders currently not loaded as they are on disk, as [Engine.Loaded] does.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed := e.ld.scan(ctx, e.log, e.metrics)
	old := e.snap.Load()
	next := &snapshot{err: e.ld.err()}
	switch {
	case old == nil:
		// Decide reads the published map; the loader keeps mutating its own.
		next.version, next.sets = 1, maps.Clone(e.ld.sets)
	case changed:
		next.version, next.sets = old.version+1, maps.Clone(e.ld.sets)
		e.log.LogAttrs(ctx, slog.LevelInfo, "policies reloaded", slog.Int64("version", next.version),
			slog.Any("tenants", slices.Sorted(maps.Keys(next.sets))))
	default:
		next.version, next.sets = old.version, old.sets
	}
	e.snap.Store(next)
	return next.err
}

// loader holds what the last scans read. It is owned by the goroutine
// holding Engine.mu.
type loader struct {
	dir string
	// dirErr is the error reading dir, nil when it was read.
	dirErr error
	global folder
	// tenants are the tenant folders present at the last scan.
	tenants map[string]*folder
	// sets are the compiled policy sets of the tenants with policies.
	sets map[string]*cedar.PolicySet
}

// folder is one folder of policy files.
type folder struct {
	// hash is the content hash last parsed, valid when hashed.
	hash   [sha256.Size]byte
	hashed bool
	// loaded is true once policies holds a successful parse.
	loaded   bool
	policies []namedPolicy
	// err is why the content on disk is not loaded; nil when it is.
	err error
}

// namedPolicy is a parsed policy and its id.
type namedPolicy struct {
	id     cedar.PolicyID
	policy *cedar.Policy
}

// policyFile is one file read from a folder.
type policyFile struct {
	name string
	data []byte
}

func newLoader(dir string) loader {
	return loader{dir: dir, tenants: map[string]*folder{}, sets: map[string]*cedar.PolicySet{}}
}

// scan reads the directory and updates l, reporting whether any tenant's
// compiled policies changed.
func (l *loader) scan(ctx context.Context, log *slog.Logger, m *Metrics) bool {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		err = fmt.Errorf("read policy directory: %w", err)
		if l.dirErr == nil || l.dirErr.Error() != err.Error() {
			log.LogAttrs(ctx, slog.LevelError, "policy reload failed; keeping the loaded policies", slog.Any("err", err))
			m.reloadError()
		}
		l.dirErr = err
		return false
	}
	l.dirErr = nil

	globalChanged, globalSeen := false, false
	present := map[string]bool{}
	changed := map[string]bool{}
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(l.dir, name)); err != nil || !fi.IsDir() {
			continue
		}
		switch {
		case name == globalDir:
			globalSeen = true
			globalChanged = l.global.update(ctx, log, m, filepath.Join(l.dir, name), globalPrefix, "")
		case strings.HasPrefix(name, "_"):
			continue
		default:
			present[name] = true
			f := l.tenants[name]
			if f == nil {
				f = &folder{}
				l.tenants[name] = f
			}
			changed[name] = f.update(ctx, log, m, filepath.Join(l.dir, name), "", name)
		}
	}
	if !globalSeen && (l.global.loaded || l.global.err != nil) {
		globalChanged = l.global.loaded && len(l.global.policies) > 0
		l.global = folder{}
	}

	anyChanged := globalChanged
	for name := range l.tenants {
		if !present[name] {
			delete(l.tenants, name)
			if _, ok := l.sets[name]; ok {
				delete(l.sets, name)
				anyChanged = true
			}
		}
	}
	for name, f := range l.tenants {
		if f.loaded && (globalChanged || changed[name]) {
			l.sets[name] = compile(l.global.policies, f.policies)
			anyChanged = true
		}
	}
	return anyChanged
}

// err joins the errors of the folders not loaded as they are on disk.
func (l *loader) err() error {
	errs := []error{l.dirErr, l.global.err}
	for _, name := range slices.Sorted(maps.Keys(l.tenants)) {
		errs = append(errs, l.tenants[name].err)
	}
	return errors.Join(errs...)
}

// update reads the folder at path and parses it when its content changed,
// reporting whether its policies changed. Ids get prefix; tenant is "" for
// the global folder.
func (f *folder) update(ctx context.Context, log *slog.Logger, m *Metrics, path, prefix, tenant string) bool {
	files, hash, err := readFolder(path)
	if err == nil {
		if f.hashed && hash == f.hash {
			return false
		}
		f.hash, f.hashed = hash, true
		var policies []namedPolicy
		if policies, err = parseFolder(path, files, prefix); err == nil {
			f.policies, f.loaded, f.err = policies, true, nil
			return true
		}
	} else {
		// Unreadable: retry on every scan, but log only a new error.
		f.hashed = false
		if f.err != nil && f.err.Error() == err.Error() {
			return false
		}
	}
	f.err = err
	scope := slog.String("tenant", tenant)
	if tenant == "" {
		scope = slog.String("folder", globalDir)
	}
	msg := "policy reload failed; keeping the previous policies"
	if !f.loaded {
		msg = "policy load failed; no policies loaded for it"
	}
	log.LogAttrs(ctx, slog.LevelError, msg, scope, slog.Any("err", err))
	m.reloadError()
	return false
}

// readFolder reads the policy files of the folder at path, in name order,
// and hashes their names and contents.
func readFolder(path string) ([]policyFile, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, sum, fmt.Errorf("read policy folder: %w", err)
	}
	h := sha256.New()
	var files []policyFile
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, fileExt) {
			continue
		}
		p := filepath.Join(path, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile, or a dangling link
		}
		if err != nil {
			return nil, sum, fmt.Errorf("stat policy file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if fi.Size() > maxFileSize {
			return nil, sum, fmt.Errorf("%s: %d bytes, more than the limit of %d", p, fi.Size(), maxFileSize)
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, sum, fmt.Errorf("read policy file: %w", err)
		}
		files = append(files, policyFile{name: name, data: data})
		h.Write(binary.AppendUvarint(nil, uint64(len(name))))
		h.Write([]byte(name))
		h.Write(binary.AppendUvarint(nil, uint64(len(data))))
		h.Write(data)
	}
	h.Sum(sum[:0])
	return files, sum, nil
}

// parseFolder parses the files of the folder at dir into policies with ids:
// the @id annotation, or "<file name>#<index>", after prefix.
func parseFolder(dir string, files []policyFile, prefix string) ([]namedPolicy, error) {
	var out []namedPolicy
	where := map[cedar.PolicyID]cedar.Position{}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		list, err := cedar.NewPolicyListFromBytes(path, f.data)
		if err != nil {
			return nil, newParseError(path, err)
		}
		for i, p := range list {
			pos := p.Position()
			id := fmt.Sprintf("%s#%d", f.name, i)
			if v, ok := p.Annotations()["id"]; ok {
				id = string(v)
				if strings.TrimSpace(id) == "" {
					return nil, &ParseError{File: path, Line: pos.Line, Column: pos.Column, Err: errors.New("empty @id")}
				}
				if prefix == "" && strings.HasPrefix(id, globalPrefix) {
					return nil, &ParseError{File: path, Line: pos.Line, Column: pos.Column,
						Err: fmt.Errorf("@id %q: ids starting with %q are reserved for %s policies", id, globalPrefix, globalDir)}
				}
			}
			pid := cedar.PolicyID(prefix + id)
			if first, dup := where[pid]; dup {
				return nil, &ParseError{File: path, Line: pos.Line, Column: pos.Column,
					Err: fmt.Errorf("duplicate policy id %q, first used at %s:%d:%d", id, first.Filename, first.Line, first.Column)}
			}
			where[pid] = pos
			out = append(out, namedPolicy{id: pid, policy: p})
		}
	}
	return out, nil
}

// compile builds a tenant's policy set. Ids cannot collide: global ids carry
// globalPrefix, which tenant ids may not.
func compile(global, tenant []namedPolicy) *cedar.PolicySet {
	ps := cedar.NewPolicySet()
	for _, np := range global {
		ps.Add(np.id, np.policy)
	}
	for _, np := range tenant {
		ps.Add(np.id, np.policy)
	}
	return ps
}
