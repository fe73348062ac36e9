/*
 * conninfo.c
 *		steep_repl.check_conninfo(text): validate a connection string with the
 *		same libpq parser CREATE SUBSCRIPTION uses, so a bad conninfo is
 *		rejected when a node is registered, not hours later by a subscription.
 *
 * libpq's parser checks the syntax and the keywords only: a port that is not
 * a number, or a hostaddr that is not an IP address, is accepted and fails at
 * connection time. So the host, hostaddr and port values are then read again
 * here, following libpq's rules (fe-connect.c: conninfo_parse for keyword =
 * value strings, conninfo_uri_parse_options for postgres:// URIs, the last
 * value of a keyword wins), and checked as libpq checks them when it
 * connects: each port of the comma-separated list empty or an integer from 1
 * to 65535, one port or one per host, each hostaddr empty or a numeric
 * address.
 */
#include "steep_repl.h"
#include "compat.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "replication/walreceiver.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(steep_repl_check_conninfo);

/* The values of the keywords this file checks; NULL when not given. */
typedef struct ConninfoHosts
{
	char	   *host;
	char	   *hostaddr;
	char	   *port;
} ConninfoHosts;

static void
store_value(ConninfoHosts *h, const char *keyword, const char *value)
{
	if (strcmp(keyword, "host") == 0)
		h->host = pstrdup(value);
	else if (strcmp(keyword, "hostaddr") == 0)
		h->hostaddr = pstrdup(value);
	else if (strcmp(keyword, "port") == 0)
		h->port = pstrdup(value);
}

/* keyword = value pairs, quoting and backslash escapes as in libpq's conninfo_parse. */
static void
parse_keyword_values(char *cp, ConninfoHosts *h)
{
	while (*cp)
	{
		char	   *keyword;
		char	   *value;
		char	   *out;

		while (*cp && isspace((unsigned char) *cp))
			cp++;
		if (*cp == '\0')
			break;
		keyword = cp;
		while (*cp && *cp != '=')
		{
			if (isspace((unsigned char) *cp))
			{
				*cp++ = '\0';
				while (*cp && isspace((unsigned char) *cp))
					cp++;
				break;
			}
			cp++;
		}
		if (*cp != '=')
			return;				/* a syntax error: libpq refused it already */
		*cp++ = '\0';
		while (*cp && isspace((unsigned char) *cp))
			cp++;
		value = out = cp;
		if (*cp != '\'')
		{
			while (*cp)
			{
				if (isspace((unsigned char) *cp))
				{
					cp++;
					break;
				}
				if (*cp == '\\')
				{
					cp++;
					if (*cp)
						*out++ = *cp++;
				}
				else
					*out++ = *cp++;
			}
		}
		else
		{
			cp++;
			for (;;)
			{
				if (*cp == '\0')
					return;		/* unterminated quote: refused already */
				if (*cp == '\\')
				{
					cp++;
					if (*cp)
						*out++ = *cp++;
					continue;
				}
				if (*cp == '\'')
				{
					cp++;
					break;
				}
				*out++ = *cp++;
			}
		}
		/* out is behind cp or at the string's end: this does not cut what follows */
		*out = '\0';
		store_value(h, keyword, value);
	}
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX decoding of a URI part (libpq's conninfo_uri_decode). */
static char *
uri_decode(const char *s, size_t len)
{
	StringInfoData buf;
	size_t		i;

	initStringInfo(&buf);
	for (i = 0; i < len; i++)
	{
		int			hi,
					lo;

		if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0)
		{
			appendStringInfoChar(&buf, (char) (hi * 16 + lo));
			i += 2;
		}
		else
			appendStringInfoChar(&buf, s[i]);
	}
	return buf.data;
}

/*
 * postgres[ql]://[userspec@][host[:port][,...]][/dbname][?param=value&...], as
 * libpq's conninfo_uri_parse_options reads it.
 */
static void
parse_uri(const char *uri, size_t prefix, ConninfoHosts *h)
{
	const char *start = uri + prefix;
	const char *p = start;
	StringInfoData hosts;
	StringInfoData ports;
	char		prevchar;

	/* user credentials end at '@' (before any '/') */
	while (*p && *p != '@' && *p != '/')
		p++;
	p = (*p == '@') ? p + 1 : start;

	initStringInfo(&hosts);
	initStringInfo(&ports);
	for (;;)
	{
		const char *host = p;
		size_t		hostlen;

		if (*p == '[')
		{
			host = ++p;
			while (*p && *p != ']')
				p++;
			if (*p == '\0')
				return;			/* refused already */
			hostlen = p - host;
			p++;
		}
		else
		{
			while (*p && *p != ':' && *p != '/' && *p != '?' && *p != ',')
				p++;
			hostlen = p - host;
		}
		appendStringInfoString(&hosts, uri_decode(host, hostlen));
		prevchar = *p;
		if (prevchar == ':')
		{
			const char *port = ++p;

			while (*p && *p != '/' && *p != '?' && *p != ',')
				p++;
			appendStringInfoString(&ports, uri_decode(port, p - port));
			prevchar = *p;
		}
		if (prevchar != ',')
			break;
		p++;
		appendStringInfoChar(&hosts, ',');
		appendStringInfoChar(&ports, ',');
	}
	if (hosts.data[0])
		h->host = hosts.data;
	if (ports.data[0])
		h->port = ports.data;

	if (prevchar == '/')
	{
		while (*p && *p != '?')
			p++;
		prevchar = *p;
	}
	if (prevchar != '?')
		return;

	/* ?keyword=value&...: these override the host and port above */
	p++;
	while (*p)
	{
		const char *kw = p;
		const char *eq = NULL;
		char	   *keyword;

		while (*p && *p != '&')
		{
			if (*p == '=' && eq == NULL)
				eq = p;
			p++;
		}
		if (eq != NULL)
		{
			keyword = uri_decode(kw, eq - kw);
			store_value(h, keyword, uri_decode(eq + 1, p - eq - 1));
		}
		if (*p == '&')
			p++;
	}
}

/* The number of elements of a comma-separated list (libpq's count_comma_separated_elems). */
static int
count_elements(const char *list)
{
	int			n = 1;

	for (; *list; list++)
		if (*list == ',')
			n++;
	return n;
}

static bool
valid_port(const char *port)
{
	char	   *end;
	long		v;

	if (port[0] == '\0')
		return true;			/* an empty element: the default port */
	errno = 0;
	v = strtol(port, &end, 10);
	if (end == port || errno != 0)
		return false;
	while (*end && isspace((unsigned char) *end))
		end++;
	return *end == '\0' && v >= 1 && v <= 65535;
}

static bool
valid_hostaddr(const char *addr)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int			rc;

	if (addr[0] == '\0')
		return true;			/* an empty element: that host's name is used */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;	/* as libpq: never a name lookup */
	rc = getaddrinfo(addr, NULL, &hints, &res);
	if (res != NULL)
		freeaddrinfo(res);
	return rc == 0;
}

static void
check_hosts(const ConninfoHosts *h)
{
	int			nhosts = 1;
	char	   *list;
	char	   *elem;
	char	   *next;
	int			nports = 0;

	if (h->hostaddr && h->hostaddr[0])
	{
		list = pstrdup(h->hostaddr);
		for (elem = list; elem; elem = next)
		{
			next = strchr(elem, ',');
			if (next)
				*next++ = '\0';
			if (!valid_hostaddr(elem))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid hostaddr \"%s\" in conninfo", elem),
						 errdetail("hostaddr takes numeric IP addresses, such as 10.0.0.2 or ::1."),
						 errhint("Give a host name with host=, not hostaddr=.")));
		}
		nhosts = count_elements(h->hostaddr);
		if (h->host && h->host[0] && count_elements(h->host) != nhosts)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the numbers of host names (%d) and hostaddr values (%d) in conninfo differ",
							count_elements(h->host), nhosts),
					 errdetail("host and hostaddr must list the same number of hosts.")));
	}
	else if (h->host && h->host[0])
		nhosts = count_elements(h->host);

	if (h->port == NULL || h->port[0] == '\0')
		return;
	list = pstrdup(h->port);
	for (elem = list; elem; elem = next)
	{
		next = strchr(elem, ',');
		if (next)
			*next++ = '\0';
		nports++;
		if (!valid_port(elem))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid port \"%s\" in conninfo", elem),
					 errdetail("A port is an integer from 1 to 65535."),
					 (nports > 1 || next != NULL) ?
					 errhint("With several hosts, port is one port for all of them or one per host, separated by commas.") : 0));
	}
	if (nports > 1 && nports != nhosts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("conninfo has %d ports for %d host", "conninfo has %d ports for %d hosts",
							   nhosts, nports, nhosts),
				 errdetail("port is one port for all hosts or one per host, separated by commas.")));
}

Datum
steep_repl_check_conninfo(PG_FUNCTION_ARGS)
{
	char	   *conninfo;
	ConninfoHosts hosts = {0};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("conninfo must not be NULL")));
	conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));

	/* Loads libpqwalreceiver on first use, as CREATE SUBSCRIPTION does. */
	load_file("libpqwalreceiver", false);
	walrcv_check_conninfo(conninfo, false);

	/* The syntax is valid: now the values libpq only checks when it connects. */
	if (strncmp(conninfo, "postgresql://", 13) == 0)
		parse_uri(conninfo, 13, &hosts);
	else if (strncmp(conninfo, "postgres://", 11) == 0)
		parse_uri(conninfo, 11, &hosts);
	else
		parse_keyword_values(pstrdup(conninfo), &hosts);
	check_hosts(&hosts);

	PG_RETURN_VOID();
}
