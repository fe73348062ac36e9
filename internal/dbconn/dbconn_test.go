package dbconn

import (
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
