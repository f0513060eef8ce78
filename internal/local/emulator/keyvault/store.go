package keyvault

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// Azure's secret limits (about-secrets.md, §3.5 of the protocol notes).
const (
	maxValueBytes       = 25 * 1024
	maxContentTypeChars = 255
	maxTags             = 15
	maxTagChars         = 256
	maxNameChars        = 127
	pageSize            = 25

	recoveryLevel = "Recoverable+Purgeable"
)

// apiError is a Key Vault error response: the HTTP status, the top-level code that
// azcore surfaces as ResponseError.ErrorCode, and the innererror code Azure adds for
// the finer reason (ForbiddenByRbac, ObjectIsDeletedButRecoverable, ...).
type apiError struct {
	status  int
	code    string
	inner   string
	message string
	// challenge, when set, is the WWW-Authenticate of a 401: a CAE claims challenge.
	challenge string
}

func (e *apiError) Error() string {
	if e.inner != "" {
		return fmt.Sprintf("%d %s (%s): %s", e.status, e.code, e.inner, e.message)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

func badParameter(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "BadParameter", message: fmt.Sprintf(format, args...)}
}

func secretNotFound(name, version string) *apiError {
	id := name
	if version != "" {
		id = name + "/" + version
	}
	return &apiError{status: http.StatusNotFound, code: "SecretNotFound", message: "A secret with (name/id) " + id +
		" was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"}
}

func deletedSecretNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "SecretNotFound", message: "Deleted Secret not found: " + name}
}

func deletedButRecoverable(name string) *apiError {
	return &apiError{status: http.StatusConflict, code: "Conflict", inner: "ObjectIsDeletedButRecoverable",
		message: "Secret " + name + " is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."}
}

func beingDeleted() *apiError {
	return &apiError{status: http.StatusConflict, code: "Conflict", inner: "ObjectIsBeingDeleted",
		message: "Secret is currently being deleted."}
}

func secretDisabled(op string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "SecretDisabled",
		message: "Operation " + op + " is not allowed on a disabled secret."}
}

// attributes are a version's settable attributes. Times are Unix seconds because that
// is all the wire carries (IntDate); nil means not set.
type attributes struct {
	Enabled   *bool
	NotBefore *int64
	Expires   *int64
}

// versionState is one version of a secret.
type versionState struct {
	id          string
	seq         uint64 // creation order inside the vault; the versions-list page marker
	value       string
	contentType string
	tags        map[string]string
	enabled     bool
	nbf, exp    *int64
	created     int64
	updated     int64

	// Event bookkeeping: each of the two expiry events is raised at most once per
	// version, and the timers are kept so a newer version or a delete can stop them.
	nearFired, expiredFired bool
	timers                  []*clock.Timer
}

type secretState struct {
	name      string // as first created; names are case-insensitive in Key Vault
	versions  []*versionState
	deletedAt time.Time // zero while active
	purgeAt   time.Time
	readyAt   time.Time // until then the deletion is in progress (ObjectIsBeingDeleted)
}

func (s *secretState) deleted() bool { return !s.deletedAt.IsZero() }

func (s *secretState) current() *versionState { return s.versions[len(s.versions)-1] }

func (s *secretState) version(id string) *versionState {
	for _, v := range s.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

type vaultState struct {
	name    string
	secrets map[string]*secretState // by lower-case name
	seq     uint64
	rate    rateState
}

func newVaultState(name string) *vaultState {
	return &vaultState{name: name, secrets: map[string]*secretState{}}
}

// secretView is a copy of what a response needs about one version, taken under the
// emulator lock so rendering happens without it.
type secretView struct {
	name        string
	version     string
	value       string
	contentType string
	tags        map[string]string
	enabled     bool
	nbf, exp    *int64
	created     int64
	updated     int64

	deleted        bool
	deletedDate    int64
	purgeDate      int64
	recoverableDay int
}

func viewOf(s *secretState, v *versionState, recoverableDays int) secretView {
	sv := secretView{
		name: s.name, version: v.id, value: v.value, contentType: v.contentType,
		tags: maps.Clone(v.tags), enabled: v.enabled, nbf: v.nbf, exp: v.exp,
		created: v.created, updated: v.updated, recoverableDay: recoverableDays,
	}
	if s.deleted() {
		sv.deleted = true
		sv.deletedDate = s.deletedAt.Unix()
		sv.purgeDate = s.purgeAt.Unix()
	}
	return sv
}

// setRequest is a decoded SetSecret body.
type setRequest struct {
	value       string
	contentType *string
	attrs       attributes
	tags        map[string]string
}

// updateRequest is a decoded UpdateSecretProperties body; nil fields are left as they are.
type updateRequest struct {
	contentType *string
	attrs       attributes
	tags        map[string]string
	tagsSet     bool
}

func validName(name string) bool {
	if len(name) == 0 || len(name) > maxNameChars {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

func validVersion(v string) bool {
	if len(v) != 32 {
		return false
	}
	for _, c := range []byte(v) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func checkName(name string) *apiError {
	if !validName(name) {
		return badParameter("The request URI contains an invalid name: %s", name)
	}
	return nil
}

func checkTags(tags map[string]string) *apiError {
	if len(tags) > maxTags {
		return badParameter("Too many tags: %d. A secret can have at most %d tags.", len(tags), maxTags)
	}
	for k, v := range tags {
		if k == "" {
			return badParameter("A tag name must not be empty.")
		}
		if n := len([]rune(k)); n > maxTagChars {
			return badParameter("Tag name %q is %d characters long; the maximum is %d.", truncate(k, 32), n, maxTagChars)
		}
		if n := len([]rune(v)); n > maxTagChars {
			return badParameter("The value of tag %q is %d characters long; the maximum is %d.", truncate(k, 32), n, maxTagChars)
		}
	}
	return nil
}

func checkContentType(ct *string) *apiError {
	if ct != nil && len([]rune(*ct)) > maxContentTypeChars {
		return badParameter("contentType is %d characters long; the maximum is %d.", len([]rune(*ct)), maxContentTypeChars)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// lookup finds an active secret, answering Azure's errors for absent, deleted and
// still-being-deleted names.
func (vs *vaultState) lookup(name, version string) (*secretState, *versionState, *apiError) {
	s := vs.secrets[strings.ToLower(name)]
	if s == nil || s.deleted() {
		return nil, nil, secretNotFound(name, version)
	}
	if version == "" {
		return s, s.current(), nil
	}
	v := s.version(version)
	if v == nil {
		return nil, nil, secretNotFound(name, version)
	}
	return s, v, nil
}

// set creates a new version (and the secret if it is new). It returns the secret, the
// new version and the version it replaced as current (nil for a new secret).
func (vs *vaultState) set(name string, req setRequest, now time.Time, newID func() string) (*secretState, *versionState, *versionState, *apiError) {
	if err := checkName(name); err != nil {
		return nil, nil, nil, err
	}
	if len(req.value) > maxValueBytes {
		return nil, nil, nil, badParameter("The secret value is %d bytes; the maximum allowed size is %d bytes.", len(req.value), maxValueBytes)
	}
	if err := checkContentType(req.contentType); err != nil {
		return nil, nil, nil, err
	}
	if err := checkTags(req.tags); err != nil {
		return nil, nil, nil, err
	}
	key := strings.ToLower(name)
	s := vs.secrets[key]
	if s != nil && s.deleted() {
		if now.Before(s.readyAt) {
			return nil, nil, nil, beingDeleted()
		}
		return nil, nil, nil, deletedButRecoverable(s.name)
	}
	vs.seq++
	v := &versionState{
		id: newID(), seq: vs.seq, value: req.value, tags: maps.Clone(req.tags), enabled: true,
		nbf: req.attrs.NotBefore, exp: req.attrs.Expires, created: now.Unix(), updated: now.Unix(),
	}
	if req.contentType != nil {
		v.contentType = *req.contentType
	}
	if req.attrs.Enabled != nil {
		v.enabled = *req.attrs.Enabled
	}
	var prev *versionState
	if s == nil {
		s = &secretState{name: name}
		vs.secrets[key] = s
	} else {
		prev = s.current()
	}
	s.versions = append(s.versions, v)
	return s, v, prev, nil
}

// update changes a version's properties; the value is immutable.
func (vs *vaultState) update(name, version string, req updateRequest, now time.Time) (*secretState, *versionState, *apiError) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	if err := checkContentType(req.contentType); err != nil {
		return nil, nil, err
	}
	if req.tagsSet {
		if err := checkTags(req.tags); err != nil {
			return nil, nil, err
		}
	}
	s, v, err := vs.lookup(name, version)
	if err != nil {
		return nil, nil, err
	}
	if req.contentType != nil {
		v.contentType = *req.contentType
	}
	if req.attrs.Enabled != nil {
		v.enabled = *req.attrs.Enabled
	}
	if req.attrs.NotBefore != nil {
		v.nbf = req.attrs.NotBefore
	}
	if req.attrs.Expires != nil {
		v.exp = req.attrs.Expires
	}
	if req.tagsSet {
		v.tags = maps.Clone(req.tags)
	}
	v.updated = now.Unix()
	return s, v, nil
}

// remove soft-deletes a secret.
func (vs *vaultState) remove(name string, now time.Time, window time.Duration, days int) (*secretState, *apiError) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s, _, err := vs.lookup(name, "")
	if err != nil {
		return nil, err
	}
	s.deletedAt = now
	s.purgeAt = now.Add(time.Duration(days) * 24 * time.Hour)
	s.readyAt = now.Add(window)
	return s, nil
}

// deletedLookup finds a soft-deleted secret whose deletion has completed.
func (vs *vaultState) deletedLookup(name string, now time.Time) (*secretState, *apiError) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s := vs.secrets[strings.ToLower(name)]
	if s == nil || !s.deleted() || now.Before(s.readyAt) {
		return nil, deletedSecretNotFound(name)
	}
	return s, nil
}

func (vs *vaultState) recover(name string, now time.Time) (*secretState, *apiError) {
	s, err := vs.deletedLookupForAction(name, now)
	if err != nil {
		return nil, err
	}
	s.deletedAt, s.purgeAt, s.readyAt = time.Time{}, time.Time{}, time.Time{}
	return s, nil
}

func (vs *vaultState) purge(name string, now time.Time) (*secretState, *apiError) {
	s, err := vs.deletedLookupForAction(name, now)
	if err != nil {
		return nil, err
	}
	delete(vs.secrets, strings.ToLower(name))
	return s, nil
}

// deletedLookupForAction is deletedLookup for recover and purge, which answer 409
// rather than 404 while the deletion is still in progress.
func (vs *vaultState) deletedLookupForAction(name string, now time.Time) (*secretState, *apiError) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s := vs.secrets[strings.ToLower(name)]
	if s != nil && s.deleted() && now.Before(s.readyAt) {
		return nil, beingDeleted()
	}
	return vs.deletedLookup(name, now)
}

// expire purges soft-deleted secrets whose retention ended, as the service does on
// its own; it returns what it purged so their timers can be stopped.
func (vs *vaultState) expire(now time.Time) []*secretState {
	var gone []*secretState
	for k, s := range vs.secrets {
		if s.deleted() && !now.Before(s.purgeAt) {
			delete(vs.secrets, k)
			gone = append(gone, s)
		}
	}
	return gone
}

// sortedSecrets lists secrets (active or deleted) in name order, which is also the
// page order the skiptoken marker relies on.
func (vs *vaultState) sortedSecrets(deleted bool, now time.Time) []*secretState {
	var out []*secretState
	for _, s := range vs.secrets {
		if deleted != s.deleted() {
			continue
		}
		if deleted && now.Before(s.readyAt) {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].name) < strings.ToLower(out[j].name) })
	return out
}

// pageSecrets returns the page after marker (a lower-case name) and the marker of the
// next page ("" at the end).
func pageSecrets(all []*secretState, marker string, size int) ([]*secretState, string) {
	start := sort.Search(len(all), func(i int) bool { return strings.ToLower(all[i].name) > marker })
	if marker == "" {
		start = 0
	}
	end := min(start+size, len(all))
	page := all[start:end]
	if end < len(all) && len(page) > 0 {
		return page, strings.ToLower(page[len(page)-1].name)
	}
	return page, ""
}

// pageVersions returns the versions created after marker (a creation sequence number)
// and the next marker (0 at the end).
func pageVersions(all []*versionState, marker uint64, size int) ([]*versionState, uint64) {
	start := sort.Search(len(all), func(i int) bool { return all[i].seq > marker })
	end := min(start+size, len(all))
	page := all[start:end]
	if end < len(all) && len(page) > 0 {
		return page, page[len(page)-1].seq
	}
	return page, 0
}

// SecretInfo describes a secret for inspection; values are left out on purpose.
type SecretInfo struct {
	Vault          string
	Name           string
	Deleted        bool
	DeletedDate    time.Time // zero unless Deleted
	ScheduledPurge time.Time // zero unless Deleted
	Current        VersionInfo
	VersionCount   int
}

// VersionInfo describes one version, without its value.
type VersionInfo struct {
	Version     string
	Enabled     bool
	NotBefore   *time.Time
	Expires     *time.Time
	Created     time.Time
	Updated     time.Time
	ContentType string
	Tags        map[string]string
	Current     bool
	// NearExpiryRaised and ExpiredRaised tell whether the version's expiry events
	// have been raised (each is raised at most once).
	NearExpiryRaised bool
	ExpiredRaised    bool
}

func unixPtr(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	t := time.Unix(*p, 0).UTC()
	return &t
}

func versionInfo(s *secretState, v *versionState) VersionInfo {
	return VersionInfo{
		Version: v.id, Enabled: v.enabled, NotBefore: unixPtr(v.nbf), Expires: unixPtr(v.exp),
		Created: time.Unix(v.created, 0).UTC(), Updated: time.Unix(v.updated, 0).UTC(),
		ContentType: v.contentType, Tags: maps.Clone(v.tags), Current: v == s.current(),
		NearExpiryRaised: v.nearFired, ExpiredRaised: v.expiredFired,
	}
}

// Vaults lists the vault names.
func (e *Emulator) Vaults() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.vaults))
}

// Secrets lists a vault's secrets (active and soft-deleted) by name.
func (e *Emulator) Secrets(vault string) ([]SecretInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return nil, err
	}
	var out []SecretInfo
	for _, s := range vs.secrets {
		info := SecretInfo{Vault: vs.name, Name: s.name, Deleted: s.deleted(), Current: versionInfo(s, s.current()), VersionCount: len(s.versions)}
		if s.deleted() {
			info.DeletedDate, info.ScheduledPurge = s.deletedAt, s.purgeAt
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SecretInfo) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// Versions lists a secret's versions in creation order (soft-deleted secrets too).
func (e *Emulator) Versions(vault, name string) ([]VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return nil, err
	}
	s := vs.secrets[strings.ToLower(name)]
	if s == nil {
		return nil, fmt.Errorf("keyvault: no secret %q in vault %q", name, vault)
	}
	out := make([]VersionInfo, 0, len(s.versions))
	for _, v := range s.versions {
		out = append(out, versionInfo(s, v))
	}
	return out, nil
}

// SecretValue returns a version's value ("" version: the current one) for tests that
// must compare values. Nothing else in the inspection API exposes values; do not log it.
func (e *Emulator) SecretValue(vault, name, version string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return "", err
	}
	s := vs.secrets[strings.ToLower(name)]
	if s == nil {
		return "", fmt.Errorf("keyvault: no secret %q in vault %q", name, vault)
	}
	v := s.current()
	if version != "" {
		if v = s.version(version); v == nil {
			return "", fmt.Errorf("keyvault: secret %q has no version %q", name, version)
		}
	}
	return v.value, nil
}

// NewSecret is a secret version to seed with Put.
type NewSecret struct {
	Value       string
	ContentType string
	Tags        map[string]string
	Enabled     *bool // default true
	NotBefore   *time.Time
	Expires     *time.Time
}

// Put creates a new version directly (seeding a demo or a test), with the same rules,
// limits and events as SetSecret but without a request. It returns the version.
func (e *Emulator) Put(vault, name string, n NewSecret) (string, error) {
	req := setRequest{value: n.Value, tags: n.Tags, attrs: attributes{Enabled: n.Enabled}}
	if n.ContentType != "" {
		req.contentType = &n.ContentType
	}
	if n.NotBefore != nil {
		u := n.NotBefore.Unix()
		req.attrs.NotBefore = &u
	}
	if n.Expires != nil {
		u := n.Expires.Unix()
		req.attrs.Expires = &u
	}
	now := e.clk.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	vs, err := e.vaultLocked(vault)
	if err != nil {
		return "", err
	}
	e.expireLocked(vs, now)
	s, v, prev, aerr := vs.set(name, req, now, newVersionID)
	if aerr != nil {
		return "", fmt.Errorf("keyvault: put secret %q: %w", name, aerr)
	}
	if prev != nil {
		stopTimers(prev)
	}
	e.versionCreatedLocked(vs.name, s, v, now)
	return v.id, nil
}

func (e *Emulator) vaultLocked(vault string) (*vaultState, error) {
	vs := e.vaults[strings.ToLower(vault)]
	if vs == nil {
		return nil, fmt.Errorf("keyvault: no vault %q", vault)
	}
	return vs, nil
}
