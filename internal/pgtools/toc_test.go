package pgtools

import "testing"

func TestWithoutSchemaEntriesCommentsOutOnlyThoseSchemas(t *testing.T) {
	toc := "; Archive created at ...\n5; 2615 16385 SCHEMA - shop postgres\n6; 2615 16386 SCHEMA - shop2 postgres\n" +
		"4000; 0 0 COMMENT - SCHEMA shop postgres\n4001; 0 0 COMMENT - SCHEMA shop2 postgres\n" +
		"4002; 0 0 COMMENT - TABLE shop postgres\n215; 1259 16390 TABLE shop film postgres\n"
	got := WithoutSchemaEntries(toc, []string{"shop"}, false)
	want := "; Archive created at ...\n;5; 2615 16385 SCHEMA - shop postgres\n6; 2615 16386 SCHEMA - shop2 postgres\n" +
		"4000; 0 0 COMMENT - SCHEMA shop postgres\n4001; 0 0 COMMENT - SCHEMA shop2 postgres\n" +
		"4002; 0 0 COMMENT - TABLE shop postgres\n215; 1259 16390 TABLE shop film postgres\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	got = WithoutSchemaEntries(toc, []string{"shop"}, true)
	want = "; Archive created at ...\n;5; 2615 16385 SCHEMA - shop postgres\n6; 2615 16386 SCHEMA - shop2 postgres\n" +
		";4000; 0 0 COMMENT - SCHEMA shop postgres\n4001; 0 0 COMMENT - SCHEMA shop2 postgres\n" +
		"4002; 0 0 COMMENT - TABLE shop postgres\n215; 1259 16390 TABLE shop film postgres\n"
	if got != want {
		t.Fatalf("with comments: got\n%s\nwant\n%s", got, want)
	}
}
