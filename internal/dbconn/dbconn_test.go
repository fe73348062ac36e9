package dbconn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDescribeURLNeverShowsThePassword(t *testing.T) {
	for _, url := range []string{
		"postgres://alice:s3cret@db.example:5433/app",
		"host=db.example port=5433 user=alice password=s3cret dbname=app",
	} {
		got := DescribeURL(url)
		if strings.Contains(got, "s3cret") {
			t.Fatalf("DescribeURL(%q) = %q leaks the password", url, got)
		}
		if got != "alice@db.example:5433/app" {
			t.Fatalf("DescribeURL(%q) = %q", url, got)
		}
	}
}

func TestParseErrorsNeverShowThePassword(t *testing.T) {
	_, err := ParseConfig("postgres://alice:s3cret@db.example:notaport/app")
	if err == nil {
		t.Fatal("expected a parse error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("parse error leaks the password: %v", err)
	}
}

func TestRedactRemovesTheConninfoAndItsPassword(t *testing.T) {
	conninfo := "host=x password=secret"
	r := RedactError(errors.New("connect host=x password=secret failed"), conninfo)
	if strings.Contains(r.Error(), "secret") {
		t.Fatalf("not redacted: %s", r)
	}
	if r.Error() != "connect <conninfo> failed" {
		t.Fatalf("RedactError = %q", r)
	}
	base := errors.New("password secret rejected")
	r = RedactError(fmt.Errorf("login: %w", base), conninfo)
	if r.Error() != "login: password **** rejected" || !errors.Is(r, base) {
		t.Fatalf("RedactError = %q (must redact the password alone and keep the chain)", r)
	}
	if got := Redact("url postgres://u:pw@h/db", "postgres://u:pw@h/db"); got != "url <conninfo>" {
		t.Fatalf("Redact = %q", got)
	}
	if got := Redact("login as u with s3cret", "", "s3cret", ""); got != "login as u with ****" {
		t.Fatalf("Redact of a password = %q", got)
	}
	if RedactError(nil, conninfo) != nil {
		t.Fatal("nil must stay nil")
	}
	plain := errors.New("nothing to hide")
	if RedactError(plain, conninfo) != plain {
		t.Fatal("an error without the secrets must be returned as it is")
	}
}

func TestPeerConfigPinsSearchPathOverTheConninfoOptions(t *testing.T) {
	cfg, err := PeerConfig("host=h user=u password=pw options='-csearch_path=evil,pg_catalog' connect_timeout=300", "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RuntimeParams["search_path"]; got != "pg_catalog" {
		t.Errorf("search_path %q", got)
	}
	if cfg.RuntimeParams["statement_timeout"] == "" || cfg.ConnectTimeout > peerConnectTimeout || cfg.DialFunc == nil {
		t.Errorf("session not bounded: %v %s", cfg.RuntimeParams, cfg.ConnectTimeout)
	}
}
