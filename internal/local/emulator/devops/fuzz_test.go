package devops

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func FuzzDecodeCreateRequest(f *testing.F) {
	f.Add([]byte(`{"displayName":"rot","scope":"vso.code vso.build","validTo":"2026-12-27T00:00:00.000Z","allOrgs":false}`))
	f.Add([]byte("\xef\xbb\xbf{\"displayName\":\"x\"}"))
	f.Add([]byte(`{"validTo":"2026-12-27T00:00:00.1234567"}`))
	f.Add([]byte(`{"allOrgs":"yes"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeCreateRequest(body)
		if err != nil {
			if req != (createRequest{}) {
				t.Fatal("an error came with a partly filled request")
			}
			return
		}
		if !req.ValidTo.IsZero() && req.ValidTo.Location().String() != "UTC" {
			t.Fatalf("validTo not normalised to UTC: %v", req.ValidTo)
		}
	})
}

func FuzzDecodeUpdateRequest(f *testing.F) {
	f.Add([]byte(`{"authorizationId":"3d3aca0c-9ad3-4b07-8334-08ec8b1ddc32","displayName":"n","scope":"vso.code","validTo":"2026-12-27T00:00:00Z","allOrgs":true}`))
	f.Add([]byte(`{"authorizationId":null}`))
	f.Add([]byte(`{"validTo":""}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeUpdateRequest(body)
		if err == nil && req.ValidTo != nil && req.ValidTo.IsZero() {
			t.Fatal("a present validTo decoded to the zero time")
		}
	})
}

func FuzzDecodeRevocations(f *testing.F) {
	f.Add([]byte(`[{"authorizationId":"3d3aca0c-9ad3-4b07-8334-08ec8b1ddc32"}]`))
	f.Add([]byte(`[{"authorizationId":"nope"}]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := decodeRevocations(body)
		if err != nil {
			return
		}
		for _, id := range ids {
			if len(id) != 36 || id != strings.ToLower(id) {
				t.Fatalf("id %q is not a canonical GUID", id)
			}
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	valid := encodeContinuation(continuation{Offset: 3, Filter: "active", SortBy: "displayDate", Ascending: true})
	f.Add("displayFilterOption=all&sortByOption=displayName&isSortAscending=false&$top=50")
	f.Add("continuationToken=" + valid)
	f.Add("$top=0")
	f.Add("DISPLAYFILTEROPTION=Revoked&continuationToken=%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		if err != nil {
			return
		}
		if lq.Top < 1 || lq.Top > maxTop || lq.Offset < 0 {
			t.Fatalf("accepted out-of-range paging: %+v", lq)
		}
	})
}

func FuzzContinuationToken(f *testing.F) {
	f.Add(encodeContinuation(continuation{Offset: 100, Filter: "all", SortBy: "status"}))
	f.Add("")
	f.Add("eyJvIjotMX0") // {"o":-1}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeContinuation(s)
		if err != nil {
			return
		}
		if c.Offset < 0 {
			t.Fatalf("negative offset accepted: %+v", c)
		}
		if again, err := decodeContinuation(encodeContinuation(c)); err != nil || again != c {
			t.Fatalf("round trip changed %+v to %+v (%v)", c, again, err)
		}
	})
}

func FuzzParseBasicAuth(f *testing.F) {
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte(":secret")))
	f.Add("basic " + base64.StdEncoding.EncodeToString([]byte("user:p:w")))
	f.Add("Basic !!!")
	f.Add("Bearer abc")
	f.Fuzz(func(t *testing.T, header string) {
		pass, err := parseBasicAuth(header)
		if err != nil {
			if pass != "" {
				t.Fatal("an error came with a password")
			}
			if strings.Contains(header, " ") {
				_, rest, _ := strings.Cut(header, " ")
				if dec, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(rest)); len(dec) > 3 && strings.Contains(err.Error(), string(dec)) {
					t.Fatal("the error echoes the credential")
				}
			}
			return
		}
		if pass == "" {
			t.Fatal("accepted an empty password")
		}
	})
}
