package store

// migrations are applied in order; schema_version holds how many have run.
// Never edit a released migration: append a new one.
var migrations = []string{
	// 1: documents with their ACL and full-text index, blobs, batch and
	// generation records.
	`
CREATE TABLE blobs (
	tenant     TEXT    NOT NULL,
	sha256     TEXT    NOT NULL,
	size       INTEGER NOT NULL,
	created_at INTEGER NOT NULL, -- unix seconds
	PRIMARY KEY (tenant, sha256)
) WITHOUT ROWID;

CREATE TABLE documents (
	id             INTEGER PRIMARY KEY,
	tenant         TEXT    NOT NULL,
	site           TEXT    NOT NULL,
	list_id        TEXT    NOT NULL,
	item_id        INTEGER NOT NULL,
	path           TEXT    NOT NULL,
	generation     TEXT    NOT NULL,
	content_sha256 TEXT,   -- NULL when the document has no content blob
	doc            TEXT    NOT NULL, -- ingestapi.Document as JSON
	UNIQUE (tenant, site, list_id, item_id),
	FOREIGN KEY (tenant, content_sha256) REFERENCES blobs (tenant, sha256)
);
CREATE INDEX documents_path ON documents (tenant, site, path);
CREATE INDEX documents_generation ON documents (tenant, site, generation);
CREATE INDEX documents_blob ON documents (tenant, content_sha256);

-- acl holds each ACE's e-mail and login, lower-cased, for ACL trimming.
CREATE TABLE acl (
	doc_id    INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
	principal TEXT    NOT NULL,
	PRIMARY KEY (doc_id, principal)
) WITHOUT ROWID;

-- documents_fts rows share their rowid with documents.id.
CREATE VIRTUAL TABLE documents_fts USING fts5 (
	name, title, path, body,
	tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER documents_delete_fts AFTER DELETE ON documents BEGIN
	DELETE FROM documents_fts WHERE rowid = old.id;
END;

CREATE TABLE batches (
	tenant     TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	digest     TEXT    NOT NULL, -- SHA-256 of the batch's JSON
	upserted   INTEGER NOT NULL,
	deleted    INTEGER NOT NULL,
	applied_at INTEGER NOT NULL, -- unix seconds
	PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE TABLE generations (
	tenant      TEXT    NOT NULL,
	site        TEXT    NOT NULL,
	generation  TEXT    NOT NULL,
	deleted     INTEGER NOT NULL,
	finished_at INTEGER NOT NULL, -- unix seconds
	PRIMARY KEY (tenant, site, generation)
) WITHOUT ROWID;
`,
	// 2: small blobs live in the database, stored with the batch that
	// carries them (ingestapi.Batch.Blobs); a blob without a row here is a
	// file under blobs/. (A rowid table: rows of kilobytes would bloat a
	// WITHOUT ROWID one.)
	// blobs.data_id names its row; appended in rowid order, so storing one
	// costs no random index page.
	`
CREATE TABLE blob_data (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
ALTER TABLE blobs ADD COLUMN data_id INTEGER REFERENCES blob_data (id);
`,
	// 3: documents share ACL sets (most inherit theirs from a list or web)
	// instead of each holding its own rows: acl_members lists a set's
	// principals, documents.acl_set names a document's set. Existing
	// documents keep their rows, as a set of their own.
	`
CREATE TABLE acl_members (
	set_id    TEXT NOT NULL, -- hex SHA-256 of the tenant and the sorted principals
	principal TEXT NOT NULL, -- lower-cased e-mail or login
	PRIMARY KEY (set_id, principal)
) WITHOUT ROWID;
CREATE INDEX acl_members_principal ON acl_members (principal, set_id);
ALTER TABLE documents ADD COLUMN acl_set TEXT;
INSERT INTO acl_members (set_id, principal) SELECT 'doc-' || doc_id, principal FROM acl;
UPDATE documents SET acl_set = 'doc-' || id WHERE id IN (SELECT doc_id FROM acl);
DROP TABLE acl;
CREATE INDEX documents_acl_set ON documents (acl_set);
-- Blobs are never deleted, so nothing looks documents up by blob; the
-- index cost a random page write per document. A blob collector brings
-- the index it needs.
DROP INDEX documents_blob;
`,
	// 4: documents.modified (unix nanoseconds, UTC) for "what changed
	// lately" (Store.Recent), filled from the stored JSON for existing rows.
	`
ALTER TABLE documents ADD COLUMN modified INTEGER NOT NULL DEFAULT 0;
UPDATE documents SET modified = CAST(ROUND((julianday(json_extract(doc, '$.modified')) - 2440587.5) * 86400000) AS INTEGER) * 1000000
	WHERE json_extract(doc, '$.modified') IS NOT NULL;
CREATE INDEX documents_modified ON documents (tenant, modified);
`,
}
