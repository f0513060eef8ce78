package keyvault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"time"
)

// serve runs one authorised operation against vault and returns the status and body.
func (e *Emulator) serve(vault string, rt route, r *http.Request, body []byte, apiVersion string, now time.Time) (int, any, *apiError) {
	base := "https://" + r.Host
	if rt.name != "" {
		if err := checkName(rt.name); err != nil {
			return 0, nil, err
		}
	}
	if rt.version != "" && !validVersion(rt.version) {
		return 0, nil, secretNotFound(rt.name, rt.version)
	}
	switch rt.op {
	case OpSetSecret:
		req, err := decodeSetBody(body)
		if err != nil {
			return 0, nil, badParameter("%s", err.Error())
		}
		return e.setSecret(vault, base, rt.name, req, now)
	case OpGetSecret:
		return e.getSecret(vault, base, rt.name, rt.version)
	case OpUpdateSecret:
		req, err := decodeUpdateBody(body)
		if err != nil {
			return 0, nil, badParameter("%s", err.Error())
		}
		return e.updateSecret(vault, base, rt.name, rt.version, req, now)
	case OpListSecrets, OpListDeletedSecrets, OpListSecretVersions:
		return e.list(vault, rt, r, apiVersion, now)
	case OpDeleteSecret:
		return e.deleteSecret(vault, base, rt.name, now)
	case OpGetDeletedSecret:
		return e.getDeleted(vault, base, rt.name, now)
	case OpRecoverDeletedSecret:
		return e.recoverSecret(vault, base, rt.name, now)
	case OpPurgeDeletedSecret:
		return e.purgeSecret(vault, rt.name, now)
	case OpBackupSecret:
		return e.backup(vault, rt.name)
	case OpRestoreSecret:
		blob, err := decodeRestoreBody(body)
		if err != nil {
			return 0, nil, badParameter("%s", err.Error())
		}
		return e.restore(vault, base, blob, now)
	}
	return 0, nil, notFoundPath(r.URL.Path)
}

func (e *Emulator) setSecret(vault, base, name string, req setRequest, now time.Time) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	e.expireLocked(vs, now)
	s, v, prev, err := vs.set(name, req, now, newVersionID)
	if err != nil {
		return 0, nil, err
	}
	if prev != nil {
		stopTimers(prev) // only the current version raises expiry events
	}
	e.versionCreatedLocked(vault, s, v, now)
	return http.StatusOK, render(base, viewOf(s, v, e.opts.RecoverableDays), true, true), nil
}

func (e *Emulator) getSecret(vault, base, name, version string) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, v, err := e.vaults[vault].lookup(name, version)
	if err != nil {
		return 0, nil, err
	}
	if !v.enabled {
		return 0, nil, secretDisabled("get")
	}
	return http.StatusOK, render(base, viewOf(s, v, e.opts.RecoverableDays), true, true), nil
}

func (e *Emulator) updateSecret(vault, base, name, version string, req updateRequest, now time.Time) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, v, err := e.vaults[vault].update(name, version, req, now)
	if err != nil {
		return 0, nil, err
	}
	if v == s.current() && req.attrs.Expires != nil {
		e.scheduleExpiryLocked(vault, s, v, now)
	}
	return http.StatusOK, render(base, viewOf(s, v, e.opts.RecoverableDays), false, true), nil
}

func (e *Emulator) deleteSecret(vault, base, name string, now time.Time) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.vaults[vault].remove(name, now, e.opts.DeleteWindow, e.opts.RecoverableDays)
	if err != nil {
		return 0, nil, err
	}
	stopTimers(s.current())
	return http.StatusOK, render(base, viewOf(s, s.current(), e.opts.RecoverableDays), false, true), nil
}

func (e *Emulator) getDeleted(vault, base, name string, now time.Time) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	e.expireLocked(vs, now)
	s, err := vs.deletedLookup(name, now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, render(base, viewOf(s, s.current(), e.opts.RecoverableDays), false, true), nil
}

func (e *Emulator) recoverSecret(vault, base, name string, now time.Time) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	e.expireLocked(vs, now)
	s, err := vs.recover(name, now)
	if err != nil {
		return 0, nil, err
	}
	if v := s.current(); v.exp != nil {
		e.scheduleExpiryLocked(vault, s, v, now)
	}
	return http.StatusOK, render(base, viewOf(s, s.current(), e.opts.RecoverableDays), false, true), nil
}

func (e *Emulator) purgeSecret(vault, name string, now time.Time) (int, any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	e.expireLocked(vs, now)
	s, err := vs.purge(name, now)
	if err != nil {
		return 0, nil, err
	}
	for _, v := range s.versions {
		stopTimers(v)
	}
	return http.StatusNoContent, nil, nil
}

// expireLocked purges secrets whose soft-delete retention has passed.
func (e *Emulator) expireLocked(vs *vaultState, now time.Time) {
	for _, s := range vs.expire(now) {
		for _, v := range s.versions {
			stopTimers(v)
		}
	}
}

func (e *Emulator) list(vault string, rt route, r *http.Request, apiVersion string, now time.Time) (int, any, *apiError) {
	q := r.URL.Query()
	size, err := parseMaxResults(q)
	if err != nil {
		return 0, nil, badParameter("%s", err.Error())
	}
	tok, err := decodeSkipToken(q.Get("$skiptoken"))
	if err != nil {
		return 0, nil, badParameter("%s", err.Error())
	}
	base := "https://" + r.Host
	explicit := q.Get("maxresults") != ""
	out := wireList{Value: []wireSecret{}}
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	e.expireLocked(vs, now)
	switch rt.op {
	case OpListSecrets, OpListDeletedSecrets:
		deleted := rt.op == OpListDeletedSecrets
		page, next := pageSecrets(vs.sortedSecrets(deleted, now), tok.Name, size)
		for _, s := range page {
			out.Value = append(out.Value, render(base, viewOf(s, s.current(), e.opts.RecoverableDays), false, false))
		}
		if next != "" {
			out.NextLink = nextLink(r.Host, "/"+strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0], apiVersion, skipToken{Name: next}, size, explicit)
		}
	case OpListSecretVersions:
		s := vs.secrets[strings.ToLower(rt.name)]
		if s == nil || s.deleted() {
			return 0, nil, secretNotFound(rt.name, "")
		}
		page, next := pageVersions(s.versions, tok.Seq, size)
		for _, v := range page {
			out.Value = append(out.Value, render(base, viewOf(s, v, e.opts.RecoverableDays), false, true))
		}
		if next != 0 {
			out.NextLink = nextLink(r.Host, "/secrets/"+rt.name+"/versions", apiVersion, skipToken{Seq: next}, size, explicit)
		}
	}
	return http.StatusOK, out, nil
}

// backupBlob is what a backup holds, sealed with the emulator's key so the blob is as
// opaque as Azure's and restorable only into this emulator (Azure: this geography).
type backupBlob struct {
	Name     string          `json:"name"`
	Versions []backupVersion `json:"versions"`
}

type backupVersion struct {
	ID          string            `json:"id"`
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     bool              `json:"enabled"`
	NBF         *int64            `json:"nbf,omitempty"`
	EXP         *int64            `json:"exp,omitempty"`
	Created     int64             `json:"created"`
	Updated     int64             `json:"updated"`
}

func (e *Emulator) backup(vault, name string) (int, any, *apiError) {
	e.mu.Lock()
	s, _, err := e.vaults[vault].lookup(name, "")
	if err != nil {
		e.mu.Unlock()
		return 0, nil, err
	}
	b := backupBlob{Name: s.name}
	for _, v := range s.versions {
		b.Versions = append(b.Versions, backupVersion{ID: v.id, Value: v.value, ContentType: v.contentType, Tags: maps.Clone(v.tags),
			Enabled: v.enabled, NBF: v.nbf, EXP: v.exp, Created: v.created, Updated: v.updated})
	}
	e.mu.Unlock()
	plain, _ := json.Marshal(b) // strings, numbers and maps of strings always marshal
	sealed, serr := e.seal(plain)
	if serr != nil {
		return 0, nil, &apiError{status: 500, code: "InternalServerError", message: "The backup could not be sealed."}
	}
	return http.StatusOK, map[string]string{"value": base64.RawURLEncoding.EncodeToString(sealed)}, nil
}

func (e *Emulator) restore(vault, base string, blob []byte, now time.Time) (int, any, *apiError) {
	plain, err := e.open(blob)
	var b backupBlob
	if err == nil {
		err = json.Unmarshal(plain, &b)
	}
	if err != nil || !validName(b.Name) || len(b.Versions) == 0 {
		return 0, nil, badParameter("The backup blob is corrupt or was not made by this Key Vault.")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	e.expireLocked(vs, now)
	key := strings.ToLower(b.Name)
	if old := vs.secrets[key]; old != nil {
		if old.deleted() {
			return 0, nil, deletedButRecoverable(old.name)
		}
		return 0, nil, &apiError{status: http.StatusConflict, code: "Conflict", message: "Secret " + old.name + " already exists in this vault; restore needs an unused name."}
	}
	s := &secretState{name: b.Name}
	for _, bv := range b.Versions {
		vs.seq++
		s.versions = append(s.versions, &versionState{id: bv.ID, seq: vs.seq, value: bv.Value, contentType: bv.ContentType,
			tags: bv.Tags, enabled: bv.Enabled, nbf: bv.NBF, exp: bv.EXP, created: bv.Created, updated: bv.Updated})
	}
	vs.secrets[key] = s
	if v := s.current(); v.exp != nil {
		e.scheduleExpiryLocked(vault, s, v, now)
	}
	return http.StatusOK, render(base, viewOf(s, s.current(), e.opts.RecoverableDays), false, true), nil
}

func (e *Emulator) seal(plain []byte) ([]byte, error) {
	gcm, err := e.gcm()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	return gcm.Seal(nonce, nonce, plain, []byte("patrol-keyvault-backup")), nil
}

func (e *Emulator) open(sealed []byte) ([]byte, error) {
	gcm, err := e.gcm()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("short blob")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], []byte("patrol-keyvault-backup"))
}

func (e *Emulator) gcm() (cipher.AEAD, error) {
	block, err := aes.NewCipher(e.backupKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
