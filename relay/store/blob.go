package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/internal/durable"
)

// blobPath is where a tenant's blob lives: blobs/<tenant>/ab/cd/<sha>.
func (e *Embedded) blobPath(tenant, sha string) string {
	return filepath.Join(e.dir, blobDir, tenant, sha[0:2], sha[2:4], sha)
}

// PutBlob stores r under sha for the tenant. It writes to a temp file while
// hashing, refuses a mismatch (*HashMismatchError, the temp file removed),
// fsyncs the file, renames it into place and fsyncs the directory, so the
// blob is durable when PutBlob returns. A blob already on disk is not read
// again; r is then left unread.
func (e *Embedded) PutBlob(ctx context.Context, tenant, sha string, r io.Reader) (created bool, size int64, err error) {
	if err := e.begin(tenant); err != nil {
		return false, 0, fmt.Errorf("put blob: %w", err)
	}
	if !ingestapi.ValidSHA256(sha) {
		return false, 0, fmt.Errorf("put blob: %w: sha256 must be 64 lower-case hex digits", ErrInvalid)
	}
	if size, ok, err := e.dbBlobSize(ctx, tenant, sha); err != nil || ok {
		return false, size, err // a small blob a batch carried, or a blob already stored
	}
	final := e.blobPath(tenant, sha)
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() {
		// Durable already (it was fsynced before the rename); make sure the
		// database knows it, in case a crash came between the two.
		created, err := e.recordBlob(ctx, tenant, sha, fi.Size())
		return created, fi.Size(), err
	}

	f, err := os.CreateTemp(filepath.Join(e.dir, tmpDir), "put-*")
	if err != nil {
		return false, 0, fmt.Errorf("put blob %s: %w", sha, err)
	}
	tmp := f.Name()
	kept := false
	defer func() {
		if !kept {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err != nil {
		return false, n, fmt.Errorf("put blob %s: receive: %w", sha, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return false, n, &HashMismatchError{Want: sha, Got: got, Size: n}
	}
	if err := f.Sync(); err != nil {
		return false, n, fmt.Errorf("put blob %s: fsync: %w", sha, err)
	}
	if err := f.Close(); err != nil {
		return false, n, fmt.Errorf("put blob %s: %w", sha, err)
	}
	if err := mkdirAllSync(filepath.Join(e.dir, blobDir), tenant, sha[0:2], sha[2:4]); err != nil {
		return false, n, fmt.Errorf("put blob %s: %w", sha, err)
	}
	if _, err := os.Stat(final); err == nil {
		// A concurrent upload of the same content won; its file is durable
		// and identical. Not renaming over it spares readers on Windows,
		// where a file open for reading cannot be replaced.
		created, err := e.recordBlob(ctx, tenant, sha, n)
		return created, n, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, n, fmt.Errorf("put blob %s: %w", sha, err)
	}
	kept = true
	if err := durable.SyncDir(filepath.Dir(final)); err != nil {
		return false, n, fmt.Errorf("put blob %s: fsync directory: %w", sha, err)
	}
	created, err = e.recordBlob(ctx, tenant, sha, n)
	return created, n, err
}

// recordBlob notes a durable blob in the database; created reports whether
// this call added the record.
func (e *Embedded) recordBlob(ctx context.Context, tenant, sha string, size int64) (bool, error) {
	res, err := e.wdb.ExecContext(ctx,
		"INSERT INTO blobs (tenant, sha256, size, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
		tenant, sha, size, e.cfg.Now().Unix())
	if err != nil {
		return false, fmt.Errorf("put blob %s: record: %w", sha, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("put blob %s: record: %w", sha, err)
	}
	return n == 1, nil
}

// OpenBlob opens one of the tenant's blobs; the caller closes it.
func (e *Embedded) OpenBlob(ctx context.Context, tenant, sha string) (io.ReadCloser, int64, error) {
	if err := e.begin(tenant); err != nil {
		return nil, 0, fmt.Errorf("open blob: %w", err)
	}
	if !ingestapi.ValidSHA256(sha) {
		return nil, 0, fmt.Errorf("open blob: %w: sha256 must be 64 lower-case hex digits", ErrInvalid)
	}
	var (
		size int64
		inDB bool
		data []byte
	)
	err := e.rdb.QueryRowContext(ctx, `SELECT b.size, b.data_id IS NOT NULL, d.data FROM blobs b
		LEFT JOIN blob_data d ON d.id = b.data_id
		WHERE b.tenant = ? AND b.sha256 = ?`, tenant, sha).Scan(&size, &inDB, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("open blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", sha, err)
	}
	if inDB {
		return io.NopCloser(bytes.NewReader(data)), size, nil
	}
	f, err := os.Open(e.blobPath(tenant, sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("open blob %s: recorded but missing on disk: %w", sha, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", sha, err)
	}
	return f, size, nil
}

// dbBlob returns the data of a small blob kept in the database, with ok.
func (e *Embedded) dbBlob(ctx context.Context, tenant, sha string) (data []byte, ok bool, err error) {
	err = e.rdb.QueryRowContext(ctx, "SELECT d.data FROM blobs b JOIN blob_data d ON d.id = b.data_id WHERE b.tenant = ? AND b.sha256 = ?", tenant, sha).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read blob %s: %w", sha, err)
	}
	return data, true, nil
}

// dbBlobSize reports whether the tenant's blob is recorded, with its size,
// when it is kept in the database or its file is on disk.
func (e *Embedded) dbBlobSize(ctx context.Context, tenant, sha string) (size int64, ok bool, err error) {
	var inDB bool
	err = e.rdb.QueryRowContext(ctx, "SELECT size, data_id IS NOT NULL FROM blobs WHERE tenant = ? AND sha256 = ?", tenant, sha).Scan(&size, &inDB)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("put blob %s: look up: %w", sha, err)
	}
	if inDB {
		return size, true, nil
	}
	fi, err := os.Stat(e.blobPath(tenant, sha))
	return size, err == nil && fi.Mode().IsRegular(), nil
}

// mkdirAllSync creates root/parts... one level at a time and fsyncs the
// parent of every directory it creates, so the new entries survive a crash.
func mkdirAllSync(root string, parts ...string) error {
	cur := root
	for _, p := range parts {
		parent := cur
		cur = filepath.Join(cur, p)
		err := os.Mkdir(cur, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := durable.SyncDir(parent); err != nil {
			return fmt.Errorf("fsync %s: %w", parent, err)
		}
	}
	return nil
}
