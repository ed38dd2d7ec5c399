/*
 * http.c — the request head parser of the metrics endpoint (nd.h, metrics.c): a pure function
 * of the bytes received so far, so that the server can call it after every read and the fuzzer
 * can call it on anything. HTTP/1.0 and 1.1 (RFC 9112): a request line "METHOD SP TARGET SP
 * HTTP/1.x", header lines "name: value", an empty line; CRLF or a bare LF ends a line. Errors
 * are found as early as the bytes show them, so that a client sending rubbish is answered
 * without waiting for the rest. And the client of such an endpoint: a file fetched with
 * libcurl (nd_http_fetch), e.g. `replay http://HOST:PORT/model.ndm`.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd.h"

/* tchar of RFC 9110: the characters of a method or a header name. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A byte allowed inside a request target or a header value (no controls but HTAB). */
static int is_text(unsigned char c, int tab)
{
    return (c >= 0x20 && c != 0x7f) || (tab && c == '\t');
}

/* The line starting at p: its LF (*lf; NULL when the bytes end first) and the length of
 * its content, without the LF and a CR before it (or a CR the bytes end in). */
static size_t next_line(const char *p, const char *end, const char **lf)
{
    *lf = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((*lf ? *lf : end) - p);
    return n && p[n - 1] == '\r' ? n - 1 : n;
}

/* The request line in p[0..n) (no line end): 1 parsed into r, 0 a valid start that the
 * bytes end in (complete: the line is whole, so an end there is an error). */
static int request_line(const char *p, size_t n, int complete, nd_http_req *r)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i])) i++;
    if (i == n) return complete ? ND_HTTP_BAD : 0;
    if (p[i] != ' ' || i == 0) return ND_HTTP_BAD;
    r->method = p, r->method_len = i;
    size_t t = ++i;
    if (i == n) return complete ? ND_HTTP_BAD : 0;
    if (p[i] != '/') return ND_HTTP_BAD; /* origin form only: the endpoint has one path */
    while (i < n && p[i] != ' ' && is_text((unsigned char)p[i], 0)) i++;
    if (i == n) return complete ? ND_HTTP_BAD : 0;
    if (p[i] != ' ') return ND_HTTP_BAD;
    r->path = p + t, r->path_len = i - t;
    const char *q = memchr(r->path, '?', r->path_len);
    if (q) r->path_len = (size_t)(q - r->path);
    static const char version[] = "HTTP/1.";
    size_t k = 0;
    i++;
    for (; i < n && k < sizeof version - 1; i++, k++)
        if (p[i] != version[k]) return ND_HTTP_BAD;
    if (i == n) return complete ? ND_HTTP_BAD : 0;
    if (p[i] != '0' && p[i] != '1') return ND_HTTP_BAD;
    r->minor = p[i] - '0';
    if (i + 1 != n) return ND_HTTP_BAD;
    return 1;
}

/* One header line p[0..n) (no line end); partial: the bytes end inside it. */
static int header_line(const char *p, size_t n, int partial)
{
    if (n && (p[0] == ' ' || p[0] == '\t')) return ND_HTTP_BAD; /* obsolete line folding */
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i])) i++;
    if (i == n) return partial ? 0 : ND_HTTP_BAD;
    if (p[i] != ':' || i == 0) return ND_HTTP_BAD;
    for (i++; i < n; i++)
        if (!is_text((unsigned char)p[i], 1)) return ND_HTTP_BAD;
    return 1;
}

int nd_http_parse(const char *buf, size_t n, size_t max, nd_http_req *r)
{
    memset(r, 0, sizeof *r);
    const char *end = buf + (n < max ? n : max), *p = buf;
    /* the request line */
    const char *lf;
    size_t len = next_line(p, end, &lf);
    int rc = request_line(p, len, lf != NULL, r);
    if (rc < 0) return rc;
    if (!lf) return n >= max ? ND_HTTP_TOO_LARGE : ND_HTTP_INCOMPLETE;
    /* header lines up to the empty one */
    for (p = lf + 1; p < end; p = lf + 1) {
        len = next_line(p, end, &lf);
        if (lf && len == 0) {
            r->head_len = (size_t)(lf + 1 - buf);
            return ND_HTTP_COMPLETE;
        }
        if (!lf && len == 0) break; /* a CR, or nothing, of the next line */
        rc = header_line(p, len, lf == NULL);
        if (rc < 0) return rc;
        if (!lf) break;
    }
    return n >= max ? ND_HTTP_TOO_LARGE : ND_HTTP_INCOMPLETE;
}

/* ---- the client: a file from an endpoint ------------------------------------------- */

int nd_is_url(const char *s) { return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8); }

static size_t fetch_write(char *p, size_t size, size_t n, void *f)
{
    return fwrite(p, 1, size * n, f);
}

char *nd_http_fetch(const char *url, uint64_t max_bytes, long timeout_s, nd_error *e)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t len = strlen(dir) + sizeof "/netdiffus-fetch-XXXXXX";
    char *path = malloc(len);
    if (!path) {
        nd_error_set(e, -ENOMEM, "%s: out of memory", url);
        return NULL;
    }
    snprintf(path, len, "%s/netdiffus-fetch-XXXXXX", dir);
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        nd_error_set(e, -errno, "%s: cannot make a temporary file in %s: %s", url, dir,
                     strerror(errno));
        if (fd >= 0) close(fd), unlink(path);
        free(path);
        return NULL;
    }
    char why[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L); /* a 404 or 503 is no model */
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
        rc = curl_easy_perform(c);
        curl_easy_cleanup(c);
    }
    int closed = fclose(f);
    if (rc != CURLE_OK || closed) {
        nd_error_set(e, -EIO, "%s: %s", url,
                     rc != CURLE_OK ? (why[0] ? why : curl_easy_strerror(rc))
                                    : "cannot write the temporary file");
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}
