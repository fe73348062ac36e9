package dbconn

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Redact returns s without the secrets of a connection, for a log, an error, an event or a
// screen: conninfo (a connection string, which may hold a password) becomes "<conninfo>",
// then every non-empty password — those given, and the one written in conninfo — becomes
// "****". It is the one place the project removes connection secrets from text.
func Redact(s, conninfo string, passwords ...string) string {
	if conninfo != "" {
		s = strings.ReplaceAll(s, conninfo, "<conninfo>")
		if p := conninfoPassword(conninfo); p != "" {
			passwords = append(passwords, p)
		}
	}
	for _, p := range passwords {
		if p != "" {
			s = strings.ReplaceAll(s, p, "****")
		}
	}
	return s
}

// conninfoPassword is the password written in conninfo itself ("" when it has none or does
// not parse; a password from the environment or a passfile is not conninfo's to show).
func conninfoPassword(conninfo string) string {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil || cfg.Password == "" || !strings.Contains(conninfo, cfg.Password) {
		return ""
	}
	return cfg.Password
}

// RedactError is err with Redact(err.Error(), conninfo) as its message; errors.Is and
// errors.As still see err. A connection-string parse error, which echoes the string, keeps
// only its cause.
func RedactError(err error, conninfo string) error {
	if err == nil {
		return nil
	}
	var parse *pgconn.ParseConfigError
	if errors.As(err, &parse) && error(parse) == err {
		cause := parse.Unwrap()
		if cause == nil {
			return errors.New("invalid connection string")
		}
		err = cause
	}
	if conninfo == "" || Redact(err.Error(), conninfo) == err.Error() {
		return err
	}
	return redacted{err: err, conninfo: conninfo}
}

type redacted struct {
	err      error
	conninfo string
}

func (r redacted) Error() string { return Redact(r.err.Error(), r.conninfo) }
func (r redacted) Unwrap() error { return r.err }
