package devops

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The Graph users API, as patrol uses it to go from a person (UPN or Entra object id) to
// the subject descriptor the token-admin API takes (docs/emulator-fidelity.md 1.9):
//
//	GET /{org}/_apis/graph/users?subjectTypes=aad[&continuationToken=…]  (vso.graph)
//	GET /{org}/_apis/graph/users/{subjectDescriptor}                     (vso.graph)
//
// A page of the list carries its next page's token in the X-MS-ContinuationToken
// response header, not in the body, as the service does (graph.json "Users - List").

// graphPageSizeDefault is how many users one page of the list holds when
// Options.GraphPageSize is zero.
const graphPageSizeDefault = 100

// graphUser is the GraphUser wire shape (graph.json, GetUserAAD example).
type graphUser struct {
	SubjectKind      string  `json:"subjectKind"`
	Domain           string  `json:"domain"`
	PrincipalName    string  `json:"principalName"`
	MailAddress      string  `json:"mailAddress"`
	Origin           string  `json:"origin"`
	OriginID         string  `json:"originId"`
	DisplayName      string  `json:"displayName"`
	URL              string  `json:"url"`
	Descriptor       string  `json:"descriptor"`
	MetaType         string  `json:"metaType"`
	DirectoryAlias   string  `json:"directoryAlias"`
	LegacyDescriptor *string `json:"legacyDescriptor"`
}

type graphUsers struct {
	Count int         `json:"count"`
	Value []graphUser `json:"value"`
}

func (s *Emulator) toGraphUser(r *request, u *User) graphUser {
	alias, _, _ := strings.Cut(u.UPN, "@")
	return graphUser{SubjectKind: "user", Domain: u.TenantID, PrincipalName: u.UPN, MailAddress: u.UPN, Origin: "aad",
		OriginID: u.ObjectID, DisplayName: u.DisplayName, Descriptor: u.Descriptor, MetaType: "member", DirectoryAlias: alias,
		URL: s.URL() + "/" + r.orgInfo.Name + "/_apis/Graph/Users/" + u.Descriptor}
}

func (s *Emulator) graphUsers(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	offset := 0
	if v := qget(q, "continuationToken"); v != "" {
		ct, err := decodeContinuation(v)
		if err != nil || ct.Filter != "graph" {
			badRequest(w, "continuationToken", fmt.Errorf("%q is not a token this service issued", truncate(v, 40)))
			return
		}
		offset = ct.Offset
	}
	// Only Entra users live here; any other subject type lists nothing.
	if st := qget(q, "subjectTypes"); st != "" && !slices.ContainsFunc(strings.Split(st, ","), func(t string) bool {
		return strings.EqualFold(strings.TrimSpace(t), "aad")
	}) {
		writeJSON(w, http.StatusOK, graphUsers{Value: []graphUser{}})
		return
	}
	s.mu.Lock()
	users := make([]*User, 0, len(r.org.users))
	for _, u := range r.org.users {
		users = append(users, u)
	}
	size := s.graphPageSize
	s.mu.Unlock()
	slices.SortFunc(users, func(a, b *User) int { return strings.Compare(a.Descriptor, b.Descriptor) })
	start := min(offset, len(users))
	end := min(start+size, len(users))
	out := graphUsers{Value: []graphUser{}}
	for _, u := range users[start:end] {
		out.Value = append(out.Value, s.toGraphUser(r, u))
	}
	out.Count = len(out.Value)
	if end < len(users) {
		w.Header().Set("X-MS-ContinuationToken", encodeContinuation(continuation{Offset: end, Filter: "graph"}))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Emulator) graphUser(w http.ResponseWriter, r *request, descriptor string) {
	d, err := url.PathUnescape(descriptor)
	if err != nil {
		d = descriptor
	}
	s.mu.Lock()
	var found *User
	for _, u := range r.org.users {
		if strings.EqualFold(u.Descriptor, d) {
			found = u
		}
	}
	s.mu.Unlock()
	if found == nil {
		writeVSS(w, http.StatusNotFound, "GraphSubjectNotFoundException",
			fmt.Sprintf("VS860015: The subject with descriptor %q was not found.", truncate(d, 80)))
		return
	}
	writeJSON(w, http.StatusOK, s.toGraphUser(r, found))
}
