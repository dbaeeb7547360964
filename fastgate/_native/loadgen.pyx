# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
# distutils: libraries = ssl crypto
"""Native open-loop load generator for `fastgate bench`: constant arrival rate over keep-alive
HTTP/1.1 connections (plain or TLS through the same OpenSSL the interpreter links), responses
framed natively (Content-Length, chunked, close-delimited), latencies in a log-linear histogram.

Invariant: request i is due at start + i / rate whatever the target does, and its latency is
measured from that scheduled time (no coordinated omission: a stalled target shows up as the
backlog's waiting time); every dispatched request ends as exactly one of completed, error or
timeout, so sent == completed + errors + timeouts once in-flight is 0.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint64_t

import ipaddress

__all__ = ["Generator", "Histogram", "ResponseFramer", "Schedule", "SUB_BUCKETS", "MAX_VALUE"]

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <stdlib.h>
    #include <errno.h>
    #include <time.h>
    #include <unistd.h>
    #include <sys/socket.h>
    #include <sys/epoll.h>
    #include <netinet/in.h>
    #include <netinet/tcp.h>
    #include <arpa/inet.h>
    #include <sys/prctl.h>
    #include <openssl/ssl.h>
    #include <openssl/err.h>

    static inline int64_t lg_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }

    /* ------------------------------------------------------------ histogram (HdrHistogram-like)
       Values 0..2047 exact; above, 1024 linear sub-buckets per power of two: relative error
       < 1/1024. Values are clamped to [0, LG_HMAX] (about 36 minutes in ns). */
    #define LG_SUB 1024
    #define LG_LINEAR 2048
    #define LG_HBUCKETS 32768
    #define LG_HMAX ((1LL << 41) - 1)
    typedef struct { int64_t counts[LG_HBUCKETS]; int64_t total, min, max; double sum; } lg_hist;

    static inline int lg_hidx(int64_t v) {
        if (v < 0) v = 0;
        if (v > LG_HMAX) v = LG_HMAX;
        if (v < LG_LINEAR) return (int)v;
        int e = 63 - __builtin_clzll((uint64_t)v) - 10;
        return LG_LINEAR + (e - 1) * LG_SUB + (int)((v >> e) - LG_SUB);
    }
    static inline int64_t lg_hlow(int i) {
        if (i < LG_LINEAR) return i;
        int e = (i - LG_LINEAR) / LG_SUB + 1;
        return ((int64_t)((i - LG_LINEAR) % LG_SUB + LG_SUB)) << e;
    }
    static inline int64_t lg_hhigh(int i) {
        if (i < LG_LINEAR) return i;
        int e = (i - LG_LINEAR) / LG_SUB + 1;
        return lg_hlow(i) + (1LL << e) - 1;
    }
    static void lg_hreset(lg_hist *h) { memset(h, 0, sizeof(*h)); h->min = INT64_MAX; }
    static inline void lg_hrecord(lg_hist *h, int64_t v, int64_t n) {
        if (v < 0) v = 0;
        if (v > LG_HMAX) v = LG_HMAX;
        h->counts[lg_hidx(v)] += n;
        h->total += n;
        h->sum += (double)v * (double)n;
        if (v > h->max) h->max = v;
        if (v < h->min) h->min = v;
    }
    /* The highest value equivalent to the bucket holding the q-th percentile (HdrHistogram's
       convention: never below the true value), capped at the exact maximum. */
    static int64_t lg_hpercentile(const lg_hist *h, double q) {
        if (h->total == 0) return 0;
        if (q <= 0) return h->min;
        int64_t want = (int64_t)((q / 100.0) * (double)h->total + 0.999999999);
        if (want < 1) want = 1;
        if (want > h->total) want = h->total;
        int64_t seen = 0;
        for (int i = 0; i < LG_HBUCKETS; i++) {
            seen += h->counts[i];
            if (seen >= want) { int64_t v = lg_hhigh(i); return v < h->max ? v : h->max; }
        }
        return h->max;
    }
    static void lg_hmerge(lg_hist *dst, const lg_hist *src) {
        for (int i = 0; i < LG_HBUCKETS; i++) dst->counts[i] += src->counts[i];
        dst->total += src->total; dst->sum += src->sum;
        if (src->total) {
            if (src->max > dst->max) dst->max = src->max;
            if (src->min < dst->min) dst->min = src->min;
        }
    }

    /* ------------------------------------------------------------ schedule */
    static inline int64_t lg_due_time(int64_t start, double rate, int64_t i) {
        return start + (int64_t)((long double)i * 1000000000.0L / (long double)rate);
    }

    /* ------------------------------------------------------------ response framing */
    enum { P_HEAD, P_BODY_CL, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER, P_BODY_EOF };
    enum { F_MORE = 0, F_DONE = 1, F_ERROR = -1 };
    #define LG_HEADMAX 8192  /* a longer response head is a protocol error */
    #define LG_ERRBODY 512

    typedef struct {
        int state, status, close, head_only, line_len, errlen;
        int64_t remaining;
        char line[LG_HEADMAX];
        char errbody[LG_ERRBODY];
    } lg_parser;

    static void lg_preset(lg_parser *p, int head_only) {
        p->state = P_HEAD; p->status = 0; p->close = 0; p->head_only = head_only;
        p->line_len = 0; p->errlen = 0; p->remaining = 0;
    }
    static int lg_ieq(const char *a, const char *lit, int n) {
        for (int i = 0; i < n; i++) {
            char c = a[i]; if (c >= 'A' && c <= 'Z') c += 32;
            if (c != lit[i]) return 0;
        }
        return 1;
    }
    static int lg_icontains(const char *s, int n, const char *lit) {
        int m = (int)strlen(lit);
        for (int i = 0; i + m <= n; i++) if (lg_ieq(s + i, lit, m)) return 1;
        return 0;
    }
    /* The head is p->line[0..len) ending in CRLF CRLF: status, framing, Connection. */
    static int lg_parse_head(lg_parser *p, int len) {
        const char *s = p->line;
        if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0) return F_ERROR;
        int http10 = s[7] == '0';
        if (s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
            return F_ERROR;
        p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        int64_t cl = -1; int chunked = 0, keepalive = 0;
        const char *end = s + len;
        const char *l = memchr(s, '\\n', len);
        while (l && l + 1 < end) {
            const char *ls = l + 1;
            const char *le = memchr(ls, '\\n', end - ls);
            if (!le) break;
            int ll = (int)(le - ls); if (ll > 0 && ls[ll - 1] == '\\r') ll--;
            if (ll == 0) break;
            const char *colon = memchr(ls, ':', ll);
            if (colon) {
                int nl = (int)(colon - ls);
                const char *v = colon + 1; int vl = ll - nl - 1;
                while (vl > 0 && (*v == ' ' || *v == '\\t')) { v++; vl--; }
                if (nl == 14 && lg_ieq(ls, "content-length", 14)) {
                    if (vl == 0 || vl > 18) return F_ERROR;
                    int64_t x = 0;
                    for (int i = 0; i < vl; i++) {
                        if (v[i] == ' ' || v[i] == '\\t') break;
                        if (v[i] < '0' || v[i] > '9') return F_ERROR;
                        x = x * 10 + (v[i] - '0');
                    }
                    cl = x;
                } else if (nl == 17 && lg_ieq(ls, "transfer-encoding", 17)) {
                    if (lg_icontains(v, vl, "chunked")) chunked = 1;
                } else if (nl == 10 && lg_ieq(ls, "connection", 10)) {
                    if (lg_icontains(v, vl, "close")) p->close = 1;
                    if (lg_icontains(v, vl, "keep-alive")) keepalive = 1;
                }
            }
            l = le;
        }
        if (http10 && !keepalive) p->close = 1;
        if (p->status >= 100 && p->status < 200 && p->status != 101) {
            p->state = P_HEAD; p->line_len = 0; return F_MORE;  /* interim: the real one follows */
        }
        if (p->head_only || p->status == 204 || p->status == 304) return F_DONE;
        if (chunked) { p->state = P_CHUNK_SIZE; p->line_len = 0; return F_MORE; }
        if (cl >= 0) {
            if (cl == 0) return F_DONE;
            p->state = P_BODY_CL; p->remaining = cl; return F_MORE;
        }
        p->state = P_BODY_EOF; p->close = 1; return F_MORE;
    }
    static inline void lg_keep_err(lg_parser *p, const char *d, int64_t n) {
        if (p->status < 400 || p->errlen >= LG_ERRBODY - 1) return;
        int64_t room = LG_ERRBODY - 1 - p->errlen;
        if (n > room) n = room;
        memcpy(p->errbody + p->errlen, d, (size_t)n); p->errlen += (int)n;
    }
    /* Feed bytes; *used says how many were consumed. F_DONE: one response complete. */
    static int lg_feed(lg_parser *p, const char *d, int64_t n, int64_t *used) {
        int64_t i = 0;
        while (i < n) {
            switch (p->state) {
            case P_HEAD: {
                int start = p->line_len > 3 ? p->line_len - 3 : 0;
                int64_t take = n - i;
                if (take > LG_HEADMAX - p->line_len) take = LG_HEADMAX - p->line_len;
                memcpy(p->line + p->line_len, d + i, (size_t)take);
                int total = p->line_len + (int)take;
                int found = -1;
                for (int k = start; k + 3 < total; k++) {
                    if (p->line[k] == '\\r' && p->line[k+1] == '\\n' && p->line[k+2] == '\\r' && p->line[k+3] == '\\n') {
                        found = k + 4; break;
                    }
                }
                if (found < 0) {
                    if (total >= LG_HEADMAX) { *used = i; return F_ERROR; }
                    p->line_len = total; i += take; break;
                }
                i += found - p->line_len;
                int r = lg_parse_head(p, found);
                p->line_len = 0;
                if (r != F_MORE) { *used = i; return r; }
                break;
            }
            case P_BODY_CL: {
                int64_t k = n - i < p->remaining ? n - i : p->remaining;
                lg_keep_err(p, d + i, k);
                i += k; p->remaining -= k;
                if (p->remaining == 0) { *used = i; return F_DONE; }
                break;
            }
            case P_BODY_EOF:
                lg_keep_err(p, d + i, n - i);
                i = n; break;
            case P_CHUNK_SIZE:
            case P_TRAILER: {
                char c = d[i++];
                if (c != '\\n') {
                    if (p->line_len >= 1024) { *used = i; return F_ERROR; }
                    p->line[p->line_len++] = c; break;
                }
                int ll = p->line_len; if (ll > 0 && p->line[ll - 1] == '\\r') ll--;
                p->line_len = 0;
                if (p->state == P_TRAILER) {
                    if (ll == 0) { *used = i; return F_DONE; }
                    break;
                }
                int64_t size = 0; int digits = 0;
                for (int k = 0; k < ll; k++) {
                    char h = p->line[k]; int v;
                    if (h >= '0' && h <= '9') v = h - '0';
                    else if (h >= 'a' && h <= 'f') v = h - 'a' + 10;
                    else if (h >= 'A' && h <= 'F') v = h - 'A' + 10;
                    else if (h == ';' || h == ' ' || h == '\\t') break;
                    else { *used = i; return F_ERROR; }
                    if (++digits > 15) { *used = i; return F_ERROR; }
                    size = size * 16 + v;
                }
                if (digits == 0) { *used = i; return F_ERROR; }
                if (size == 0) p->state = P_TRAILER;
                else { p->state = P_CHUNK_DATA; p->remaining = size; }
                break;
            }
            case P_CHUNK_DATA: {
                int64_t k = n - i < p->remaining ? n - i : p->remaining;
                lg_keep_err(p, d + i, k);
                i += k; p->remaining -= k;
                if (p->remaining == 0) { p->state = P_CHUNK_CRLF; p->remaining = 2; }
                break;
            }
            case P_CHUNK_CRLF: {
                char c = d[i++];
                if (p->remaining == 2 && c == '\\r') { p->remaining = 1; break; }
                if (c != '\\n') { *used = i; return F_ERROR; }
                p->state = P_CHUNK_SIZE; p->line_len = 0;
                break;
            }
            }
        }
        *used = i;
        return F_MORE;
    }
    /* The problem+json `code` (RFC 9457 extension member) of an error body, or "". */
    static void lg_problem_code(const lg_parser *p, char *out, int cap) {
        out[0] = 0;
        const char *s = p->errbody; int n = p->errlen;
        for (int i = 0; i + 6 <= n; i++) {
            if (memcmp(s + i, "\\"code\\"", 6) != 0) continue;
            int j = i + 6;
            while (j < n && (s[j] == ' ' || s[j] == ':')) j++;
            if (j >= n || s[j] != '"') return;
            j++;
            int k = 0;
            while (j < n && s[j] != '"' && k < cap - 1) {
                char c = s[j++];
                out[k++] = (c >= 0x21 && c <= 0x7e) ? c : '?';
            }
            out[k] = 0;
            return;
        }
    }

    /* ------------------------------------------------------------ the engine */
    enum { C_CLOSED, C_CONNECTING, C_HANDSHAKE, C_IDLE, C_WRITING, C_READING };
    enum { E_CONNECT, E_CLOSED, E_RESET, E_PROTOCOL, E_TLS, E_KINDS };
    #define LG_CODES 64
    #define LG_CODELEN 48

    typedef struct {
        int fd, state, events, in_idle;
        SSL *ssl;
        int64_t sched_ns, sent_ns, req;
        size_t woff;
        int tmpl;
        lg_parser *p;
    } lg_conn;

    typedef struct { int status; char code[LG_CODELEN]; int64_t n; } lg_codecount;

    typedef struct {
        int ep, nconns, nidle, ntmpl;
        lg_conn *conns;
        int *idle;
        struct sockaddr_in addr;
        SSL_CTX *ctx;
        char sni[256];
        const char **tbuf; int64_t *tlen; int *thead;
        /* schedule of the current run */
        double rate; int64_t start_ns, end_ns, total, next; int closed_loop, running;
        int64_t timeout_ns, last_check;
        /* counters */
        int64_t sent, completed, errors, timeouts, inflight, connects, reconnects;
        int64_t err_kind[E_KINDS];
        int64_t status[600];
        lg_codecount codes[LG_CODES]; int ncodes; int64_t codes_other;
        lg_hist all, no429, interval, lag;
        char rbuf[65536];
        char last_error[256];
    } lg_engine;

    static void lg_set_events(lg_engine *e, int i, int ev) {
        lg_conn *c = &e->conns[i];
        if (c->events == ev || c->fd < 0) return;
        struct epoll_event ee; ee.events = (uint32_t)ev; ee.data.u64 = (uint64_t)i;
        epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ee);
        c->events = ev;
    }
    static void lg_push_idle(lg_engine *e, int i) {
        lg_conn *c = &e->conns[i];
        c->state = C_IDLE;
        lg_set_events(e, i, EPOLLIN);
        if (!c->in_idle) { c->in_idle = 1; e->idle[e->nidle++] = i; }
    }
    static void lg_ssl_error(lg_engine *e) {
        unsigned long code = ERR_get_error();
        if (code) ERR_error_string_n(code, e->last_error, sizeof(e->last_error));
        ERR_clear_error();
    }
    static void lg_drop(lg_engine *e, int i) {
        lg_conn *c = &e->conns[i];
        if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
        if (c->fd >= 0) { epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; }
        c->state = C_CLOSED; c->events = 0;
    }
    static void lg_open(lg_engine *e, int i);
    /* A request in flight ends as an error of `kind`; the connection is replaced. */
    static void lg_fail(lg_engine *e, int i, int kind) {
        lg_conn *c = &e->conns[i];
        if (c->state == C_WRITING || c->state == C_READING) {
            e->errors++; e->inflight--; e->err_kind[kind]++;
        } else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
            e->err_kind[kind == E_TLS ? E_TLS : E_CONNECT]++;
        }
        lg_drop(e, i);
        e->reconnects++;
        lg_open(e, i);
    }
    static void lg_handshake(lg_engine *e, int i) {
        lg_conn *c = &e->conns[i];
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) { e->connects++; lg_push_idle(e, i); return; }
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ) { lg_set_events(e, i, EPOLLIN); return; }
        if (err == SSL_ERROR_WANT_WRITE) { lg_set_events(e, i, EPOLLIN | EPOLLOUT); return; }
        lg_ssl_error(e);
        lg_drop(e, i);
        e->err_kind[E_TLS]++;  /* retried at the next housekeeping tick */
    }
    static void lg_open(lg_engine *e, int i) {
        lg_conn *c = &e->conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) { e->err_kind[E_CONNECT]++; c->state = C_CLOSED; return; }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct epoll_event ee; ee.events = EPOLLIN | EPOLLOUT; ee.data.u64 = (uint64_t)i;
        epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ee);
        c->events = EPOLLIN | EPOLLOUT;
        c->state = C_CONNECTING;
        int r = connect(c->fd, (struct sockaddr *)&e->addr, sizeof(e->addr));
        if (r < 0 && errno != EINPROGRESS) { lg_drop(e, i); e->err_kind[E_CONNECT]++; return; }
    }
    static void lg_connected(lg_engine *e, int i) {
        lg_conn *c = &e->conns[i];
        int err = 0; socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { if (!e->last_error[0]) strncpy(e->last_error, strerror(err), 255); lg_drop(e, i); e->err_kind[E_CONNECT]++; return; }
        if (e->ctx) {
            c->ssl = SSL_new(e->ctx);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_connect_state(c->ssl);
            if (e->sni[0]) SSL_set_tlsext_host_name(c->ssl, e->sni);
            c->state = C_HANDSHAKE;
            lg_handshake(e, i);
        } else {
            e->connects++;
            lg_push_idle(e, i);
        }
    }
    /* Write what is left of the request; 1 = all written, 0 = wait for EPOLLOUT, -1 = failed. */
    static int lg_write(lg_engine *e, int i) {
        lg_conn *c = &e->conns[i];
        const char *buf = e->tbuf[c->tmpl]; int64_t len = e->tlen[c->tmpl];
        while ((int64_t)c->woff < len) {
            if (c->ssl) {
                ERR_clear_error();
                int n = SSL_write(c->ssl, buf + c->woff, (int)(len - (int64_t)c->woff));
                if (n > 0) { c->woff += (size_t)n; continue; }
                int err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) return 0;
                lg_ssl_error(e);
                return -1;
            } else {
                ssize_t n = send(c->fd, buf + c->woff, (size_t)(len - (int64_t)c->woff), MSG_NOSIGNAL);
                if (n > 0) { c->woff += (size_t)n; continue; }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
                return -1;
            }
        }
        return 1;
    }
    static void lg_dispatch(lg_engine *e, int i, int64_t sched, int64_t now) {
        lg_conn *c = &e->conns[i];
        c->req = e->next; c->tmpl = (int)(e->next % e->ntmpl);
        c->sched_ns = sched; c->sent_ns = now; c->woff = 0;
        lg_preset(c->p, e->thead[c->tmpl]);
        e->next++; e->sent++; e->inflight++;
        c->state = C_WRITING;
        if (!e->closed_loop) lg_hrecord(&e->lag, now - sched, 1);
        int r = lg_write(e, i);
        if (r < 0) { lg_fail(e, i, E_RESET); return; }
        if (r == 1) { c->state = C_READING; lg_set_events(e, i, EPOLLIN); }
        else lg_set_events(e, i, EPOLLIN | EPOLLOUT);
    }
    static void lg_count_code(lg_engine *e, lg_parser *p) {
        char code[LG_CODELEN];
        lg_problem_code(p, code, LG_CODELEN);
        for (int k = 0; k < e->ncodes; k++) {
            if (e->codes[k].status == p->status && strcmp(e->codes[k].code, code) == 0) { e->codes[k].n++; return; }
        }
        if (e->ncodes < LG_CODES) {
            lg_codecount *cc = &e->codes[e->ncodes++];
            cc->status = p->status; strcpy(cc->code, code); cc->n = 1;
        } else e->codes_other++;
    }
    static void lg_complete(lg_engine *e, int i, int64_t now) {
        lg_conn *c = &e->conns[i];
        lg_parser *p = c->p;
        int64_t lat = now - c->sched_ns;
        e->completed++; e->inflight--;
        e->status[p->status < 600 ? p->status : 0]++;
        lg_hrecord(&e->all, lat, 1);
        lg_hrecord(&e->interval, lat, 1);
        if (p->status != 429) lg_hrecord(&e->no429, lat, 1);
        if (p->status >= 400) lg_count_code(e, p);
        if (p->close) { lg_drop(e, i); e->reconnects++; lg_open(e, i); }
        else lg_push_idle(e, i);
    }
    /* Bytes arrived for connection i (decrypted if TLS). */
    static void lg_data(lg_engine *e, int i, const char *d, int64_t n, int64_t now) {
        lg_conn *c = &e->conns[i];
        if (c->state != C_READING) { lg_fail(e, i, E_PROTOCOL); return; }  /* unsolicited bytes */
        int64_t used = 0;
        int r = lg_feed(c->p, d, n, &used);
        if (r == F_ERROR) { lg_fail(e, i, E_PROTOCOL); return; }
        if (r == F_DONE) {
            if (used != n) { lg_complete(e, i, now); if (e->conns[i].state == C_IDLE) lg_fail(e, i, E_PROTOCOL); return; }
            lg_complete(e, i, now);
        }
    }
    static void lg_eof(lg_engine *e, int i, int64_t now) {
        lg_conn *c = &e->conns[i];
        if (c->state == C_READING && c->p->state == P_BODY_EOF) { c->p->close = 1; lg_complete(e, i, now); return; }
        if (c->state == C_IDLE) { lg_drop(e, i); e->reconnects++; lg_open(e, i); return; }  /* keep-alive ended */
        lg_fail(e, i, E_CLOSED);
    }
    static void lg_readable(lg_engine *e, int i, int64_t now) {
        lg_conn *c = &e->conns[i];
        for (;;) {
            if (c->ssl) {
                ERR_clear_error();
                int n = SSL_read(c->ssl, e->rbuf, (int)sizeof(e->rbuf));
                if (n > 0) { lg_data(e, i, e->rbuf, n, now); if (c->state != C_READING) return; continue; }
                int err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_READ) return;
                if (err == SSL_ERROR_WANT_WRITE) { lg_set_events(e, i, EPOLLIN | EPOLLOUT); return; }
                if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                    ERR_clear_error(); lg_eof(e, i, now); return;
                }
                lg_ssl_error(e);
                if (c->state == C_IDLE) { lg_drop(e, i); e->reconnects++; lg_open(e, i); return; }
                lg_fail(e, i, E_TLS); return;
            } else {
                ssize_t n = recv(c->fd, e->rbuf, sizeof(e->rbuf), 0);
                if (n > 0) {
                    lg_data(e, i, e->rbuf, n, now);
                    if (c->state != C_READING || n < (ssize_t)sizeof(e->rbuf)) return;
                    continue;
                }
                if (n == 0) { lg_eof(e, i, now); return; }
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                if (c->state == C_IDLE) { lg_drop(e, i); e->reconnects++; lg_open(e, i); return; }
                lg_fail(e, i, E_RESET); return;
            }
        }
    }
    static void lg_event(lg_engine *e, int i, uint32_t ev, int64_t now) {
        lg_conn *c = &e->conns[i];
        switch (c->state) {
        case C_CONNECTING: lg_connected(e, i); return;
        case C_HANDSHAKE: lg_handshake(e, i); return;
        case C_WRITING: {
            int r = lg_write(e, i);
            if (r < 0) { lg_fail(e, i, E_RESET); return; }
            if (r == 1) { c->state = C_READING; lg_set_events(e, i, EPOLLIN); }
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) lg_readable(e, i, now);
            return;
        }
        case C_READING:
            if (c->events & EPOLLOUT) lg_set_events(e, i, EPOLLIN);
            lg_readable(e, i, now); return;
        case C_IDLE:
            lg_readable(e, i, now); return;  /* TLS 1.3 tickets, or the peer closing */
        default: return;
        }
    }
    static void lg_housekeeping(lg_engine *e, int64_t now) {
        e->last_check = now;
        for (int i = 0; i < e->nconns; i++) {
            lg_conn *c = &e->conns[i];
            if (c->state == C_CLOSED) lg_open(e, i);
            else if ((c->state == C_READING || c->state == C_WRITING) && now - c->sent_ns > e->timeout_ns) {
                e->timeouts++; e->inflight--;
                c->state = C_CLOSED;  /* counted: not an error too */
                lg_drop(e, i); e->reconnects++; lg_open(e, i);
            }
        }
    }
    static inline int lg_has_due(lg_engine *e, int64_t now, int64_t *sched) {
        if (!e->running) return 0;
        if (e->closed_loop) { *sched = now; return now < e->end_ns; }
        if (e->next >= e->total) return 0;
        *sched = lg_due_time(e->start_ns, e->rate, e->next);
        return *sched <= now;
    }
    static inline int lg_finished(lg_engine *e, int64_t now) {
        if (e->inflight) return 0;
        if (e->closed_loop) return now >= e->end_ns;
        return e->next >= e->total;
    }
    /* Run until `until` (monotonic ns); 1 when the run's schedule is all sent and answered. */
    static int lg_run(lg_engine *e, int64_t until) {
        struct epoll_event evs[256];
        for (;;) {
            int64_t now = lg_now(), sched;
            if (now - e->last_check >= 10000000LL) lg_housekeeping(e, now);
            while (e->nidle > 0 && lg_has_due(e, now, &sched)) {
                int i = e->idle[--e->nidle];
                e->conns[i].in_idle = 0;
                if (e->conns[i].state != C_IDLE) continue;
                lg_dispatch(e, i, sched, now);
            }
            if (e->running && lg_finished(e, now)) return 1;
            if (now >= until) return 0;
            int64_t wake = until, check = e->last_check + 10000000LL;
            if (check < wake) wake = check;
            if (e->running && !e->closed_loop && e->next < e->total) {
                int64_t t = lg_due_time(e->start_ns, e->rate, e->next);
                if (t > now && t < wake) wake = t;  /* t <= now: a backlog waits for a connection */
            }
            int64_t dt = wake - now; if (dt < 0) dt = 0;
            struct timespec ts; ts.tv_sec = dt / 1000000000LL; ts.tv_nsec = dt % 1000000000LL;
            int n = epoll_pwait2(e->ep, evs, 256, &ts, NULL);
            if (n < 0) { if (errno == EINTR) return 0; return -1; }
            now = lg_now();
            for (int k = 0; k < n; k++) lg_event(e, (int)evs[k].data.u64, evs[k].events, now);
        }
    }
    static int lg_connected_count(lg_engine *e) {
        int n = 0;
        for (int i = 0; i < e->nconns; i++) n += e->conns[i].state >= C_IDLE;
        return n;
    }
    static void lg_reset_counters(lg_engine *e) {
        e->sent = e->completed = e->errors = e->timeouts = 0;
        memset(e->err_kind, 0, sizeof(e->err_kind));
        memset(e->status, 0, sizeof(e->status));
        e->ncodes = 0; e->codes_other = 0;
        lg_hreset(&e->all); lg_hreset(&e->no429); lg_hreset(&e->interval); lg_hreset(&e->lag);
    }
    """
    int64_t lg_now() nogil
    int LG_SUB, LG_LINEAR, LG_HBUCKETS, LG_CODES
    int64_t LG_HMAX
    ctypedef struct lg_hist:
        int64_t counts[1]
        int64_t total, min, max
        double sum
    int lg_hidx(int64_t v)
    int64_t lg_hlow(int i)
    int64_t lg_hhigh(int i)
    void lg_hreset(lg_hist *h)
    void lg_hrecord(lg_hist *h, int64_t v, int64_t n)
    int64_t lg_hpercentile(const lg_hist *h, double q)
    void lg_hmerge(lg_hist *dst, const lg_hist *src)
    int64_t lg_due_time(int64_t start, double rate, int64_t i)

    ctypedef struct lg_parser:
        int state, status, close, head_only, errlen
    void lg_preset(lg_parser *p, int head_only)
    int lg_feed(lg_parser *p, const char *d, int64_t n, int64_t *used)
    void lg_problem_code(const lg_parser *p, char *out, int cap)
    int F_MORE, F_DONE, F_ERROR
    int C_CLOSED, C_IDLE
    int E_CONNECT, E_CLOSED, E_RESET, E_PROTOCOL, E_TLS

    ctypedef struct lg_conn:
        int fd, state
        lg_parser *p
    ctypedef struct lg_codecount:
        int status
        char code[48]
        int64_t n
    ctypedef struct lg_engine:
        int ep, nconns, nidle, ntmpl
        lg_conn *conns
        int *idle
        const char **tbuf
        int64_t *tlen
        int *thead
        double rate
        int64_t start_ns, end_ns, total, next
        int closed_loop, running
        int64_t timeout_ns, last_check
        int64_t sent, completed, errors, timeouts, inflight, connects, reconnects
        int64_t err_kind[5]
        int64_t status[600]
        lg_codecount codes[64]
        int ncodes
        int64_t codes_other
        lg_hist all, no429, interval, lag
        char last_error[256]
    void lg_open(lg_engine *e, int i)
    void lg_drop(lg_engine *e, int i)
    int lg_run(lg_engine *e, int64_t until)
    int lg_connected_count(lg_engine *e)
    void lg_reset_counters(lg_engine *e)

cdef extern from "stdlib.h":
    void *calloc(size_t n, size_t size)
    void free(void *p)

cdef extern from "unistd.h":
    int close(int fd)

cdef extern from "sys/epoll.h":
    int epoll_create1(int flags)
    int EPOLL_CLOEXEC

cdef extern from "arpa/inet.h":
    int lg_set_addr "inet_pton"(int af, const char *src, void *dst)

cdef extern from *:
    """
    static int lg_engine_addr(lg_engine *e, const char *ip, int port) {
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  /* wake within ~1 µs of a send time, not 50 */
        memset(&e->addr, 0, sizeof(e->addr));
        e->addr.sin_family = AF_INET;
        e->addr.sin_port = htons((uint16_t)port);
        return inet_pton(AF_INET, ip, &e->addr.sin_addr);
    }
    static const char *lg_tls_setup(lg_engine *e, const char *ca, const char *cert, const char *key,
                                    const char *sni) {
        e->ctx = SSL_CTX_new(TLS_client_method());
        if (!e->ctx) return "SSL_CTX_new failed";
        SSL_CTX_set_mode(e->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (ca && ca[0]) {
            if (SSL_CTX_load_verify_locations(e->ctx, ca, NULL) != 1) return "cannot load the CA file";
            SSL_CTX_set_verify(e->ctx, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(e->ctx, SSL_VERIFY_NONE, NULL);  /* a load test, not a trust decision */
        }
        if (cert && cert[0]) {
            if (SSL_CTX_use_certificate_chain_file(e->ctx, cert) != 1) return "cannot load the client certificate";
            if (SSL_CTX_use_PrivateKey_file(e->ctx, key, SSL_FILETYPE_PEM) != 1) return "cannot load the client key";
        }
        if (sni && sni[0]) { strncpy(e->sni, sni, sizeof(e->sni) - 1); }
        ERR_clear_error();
        return NULL;
    }
    static void lg_engine_free(lg_engine *e) {
        if (e->conns) {
            for (int i = 0; i < e->nconns; i++) { lg_drop(e, i); free(e->conns[i].p); }
            free(e->conns);
        }
        free(e->idle);
        if (e->ctx) SSL_CTX_free(e->ctx);
        if (e->ep >= 0) close(e->ep);
        free(e);
    }
    """
    int lg_engine_addr(lg_engine *e, const char *ip, int port)
    const char *lg_tls_setup(lg_engine *e, const char *ca, const char *cert, const char *key,
                             const char *sni)
    void lg_engine_free(lg_engine *e)


SUB_BUCKETS = LG_SUB  # relative precision of a histogram value: 1 / SUB_BUCKETS
MAX_VALUE = LG_HMAX  # larger values are recorded as this (about 36 minutes in ns)


cdef class Histogram:
    """Log-linear latency histogram (ns): exact below 2048, then 1024 sub-buckets per power of
    two, so a percentile is never below the true value and at most 0.1 % above it."""

    cdef lg_hist *h
    cdef object owner  # a Generator whose engine holds the counts, or None

    def __cinit__(self):
        self.h = NULL
        self.owner = None

    def __init__(self):
        self.h = <lg_hist *>calloc(1, sizeof(lg_hist))
        if self.h == NULL:
            raise MemoryError()
        lg_hreset(self.h)

    def __dealloc__(self):
        if self.owner is None and self.h != NULL:
            free(self.h)

    @staticmethod
    cdef Histogram _view(lg_hist *h, object owner):
        cdef Histogram v = Histogram.__new__(Histogram)
        v.h = h
        v.owner = owner
        return v

    def record(self, int64_t value, int64_t count=1) -> None:
        lg_hrecord(self.h, value, count)

    def reset(self) -> None:
        lg_hreset(self.h)

    def percentile(self, double q) -> int:
        return lg_hpercentile(self.h, q)

    def merge(self, Histogram other) -> None:
        lg_hmerge(self.h, other.h)

    def copy(self) -> Histogram:
        cdef Histogram c = Histogram()
        lg_hmerge(c.h, self.h)
        return c

    @property
    def count(self) -> int:
        return self.h.total

    @property
    def max(self) -> int:
        return self.h.max if self.h.total else 0

    @property
    def min(self) -> int:
        return self.h.min if self.h.total else 0

    @property
    def mean(self) -> float:
        return self.h.sum / self.h.total if self.h.total else 0.0

    def buckets(self) -> list:
        """Non-empty buckets as (lowest, highest, count): enough to rebuild or plot it."""
        cdef int i
        cdef int64_t *counts = self.h.counts
        out = []
        for i in range(LG_HBUCKETS):
            if counts[i]:
                out.append((lg_hlow(i), lg_hhigh(i), counts[i]))
        return out

    @staticmethod
    def bucket_bounds(int64_t value) -> tuple:
        """(lowest, highest) value recorded in the same bucket as `value`."""
        cdef int i = lg_hidx(value)
        return lg_hlow(i), lg_hhigh(i)


cdef class Schedule:
    """The arrival schedule the generator follows: request i is due at start + i / rate; pure
    arithmetic, so tests drive it with a fake clock."""

    cdef readonly double rate
    cdef readonly int64_t start_ns
    cdef readonly int64_t total

    def __init__(self, double rate, int64_t start_ns, double duration_s):
        if rate <= 0:
            raise ValueError("rate must be > 0 requests/s")
        self.rate = rate
        self.start_ns = start_ns
        self.total = <int64_t>(rate * duration_s)

    def time(self, int64_t i) -> int:
        """Scheduled send time (ns) of request i."""
        return lg_due_time(self.start_ns, self.rate, i)

    def due(self, int64_t now_ns) -> int:
        """How many requests are due at now_ns (the generator has sent or queued exactly these)."""
        cdef int64_t n
        if now_ns < self.start_ns:
            return 0
        n = <int64_t>((now_ns - self.start_ns) * self.rate / 1e9)
        while n > 0 and lg_due_time(self.start_ns, self.rate, n - 1) > now_ns:
            n -= 1
        while n < self.total and lg_due_time(self.start_ns, self.rate, n) <= now_ns:
            n += 1
        return min(n, self.total)


cdef class ResponseFramer:
    """The generator's response framing on its own, for tests: feed bytes, get completions."""

    cdef lg_parser *p

    def __cinit__(self, bint head_only=False):
        self.p = <lg_parser *>calloc(1, sizeof(lg_parser))
        if self.p == NULL:
            raise MemoryError()
        lg_preset(self.p, head_only)

    def __dealloc__(self):
        free(self.p)

    def feed(self, bytes data) -> tuple:
        """(status of a completed response or 0, bytes consumed); raises ValueError on bad framing."""
        cdef int64_t used = 0
        cdef int r = lg_feed(self.p, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &used)
        if r == F_ERROR:
            raise ValueError("bad response framing")
        if r == F_DONE:
            status = self.p.status
            return status, used
        return 0, used

    def problem_code(self) -> str:
        cdef char out[48]
        lg_problem_code(self.p, out, 48)
        return out.decode("ascii", "replace")

    def reset(self, bint head_only=False) -> None:
        lg_preset(self.p, head_only)


cdef class Generator:
    """Open-loop load against one address over `connections` keep-alive connections.

    start(rate, duration) fixes the schedule; step(until_ns) runs the native loop until a
    monotonic deadline (so the caller prints progress in between without disturbing the
    schedule); finish() turns whatever is still in flight into timeouts. rate 0 means closed
    loop, as fast as the connections go: that is how the generator's own ceiling is measured.
    """

    cdef lg_engine *e
    cdef list _requests  # keeps the request bytes alive: the engine points into them
    cdef readonly int connections
    cdef readonly bint tls

    def __cinit__(self):
        self.e = NULL

    def __init__(self, str host, int port, list requests, int connections, *, bint tls=False,
                 str server_name=None, str ca_file=None, str cert_file=None, str key_file=None,
                 double timeout=10.0, list head_only=None):
        cdef int i
        if not requests:
            raise ValueError("at least one request")
        if connections < 1 or connections > 100000:
            raise ValueError("connections must be 1..100000")
        if ipaddress.ip_address(host).version != 4:
            raise ValueError("the generator speaks IPv4 only (use 127.0.0.1)")
        self.connections = connections
        self.tls = tls
        self._requests = [bytes(r) for r in requests]
        self.e = <lg_engine *>calloc(1, sizeof(lg_engine))
        if self.e == NULL:
            raise MemoryError()
        self.e.ep = -1
        self.e.conns = <lg_conn *>calloc(connections, sizeof(lg_conn))
        if self.e.conns == NULL:
            raise MemoryError()
        self.e.nconns = connections
        for i in range(connections):
            self.e.conns[i].fd = -1
            self.e.conns[i].state = C_CLOSED
        self.e.idle = <int *>calloc(connections, sizeof(int))
        n = len(self._requests)
        self.e.ntmpl = n
        self.e.tbuf = <const char **>calloc(n, sizeof(char *))
        self.e.tlen = <int64_t *>calloc(n, sizeof(int64_t))
        self.e.thead = <int *>calloc(n, sizeof(int))
        if not (self.e.conns and self.e.idle and self.e.tbuf and self.e.tlen and self.e.thead):
            raise MemoryError()
        for i in range(n):
            r = self._requests[i]
            self.e.tbuf[i] = PyBytes_AS_STRING(r)
            self.e.tlen[i] = PyBytes_GET_SIZE(r)
            self.e.thead[i] = 1 if (head_only[i] if head_only else r.startswith(b"HEAD ")) else 0
        for i in range(connections):
            self.e.conns[i].p = <lg_parser *>calloc(1, sizeof(lg_parser))
            if self.e.conns[i].p == NULL:
                raise MemoryError()
        self.e.ep = epoll_create1(EPOLL_CLOEXEC)
        if self.e.ep < 0:
            raise OSError("epoll_create1 failed")
        if lg_engine_addr(self.e, host.encode(), port) != 1:
            raise ValueError(f"bad IPv4 address {host!r}")
        if tls:
            err = lg_tls_setup(self.e, (ca_file or "").encode(), (cert_file or "").encode(),
                               (key_file or "").encode(), (server_name or "").encode())
            if err != NULL:
                raise ValueError(f"TLS setup: {(<bytes>err).decode()}")
        self.e.timeout_ns = <int64_t>(timeout * 1e9)
        lg_reset_counters(self.e)
        lg_hreset(&self.e.all)

    def __dealloc__(self):
        if self.e != NULL:
            free(<void *>self.e.tbuf)
            free(<void *>self.e.tlen)
            free(self.e.thead)
            lg_engine_free(self.e)
            self.e = NULL

    def connect(self, double timeout=10.0) -> int:
        """Open every connection (and finish its TLS handshake); the number that made it."""
        cdef int i
        for i in range(self.e.nconns):
            if self.e.conns[i].state == C_CLOSED:
                lg_open(self.e, i)
        deadline = lg_now() + <int64_t>(timeout * 1e9)
        while lg_connected_count(self.e) < self.e.nconns and lg_now() < deadline:
            lg_run(self.e, min(deadline, lg_now() + 20000000))
        return lg_connected_count(self.e)

    def start(self, double rate, double duration) -> None:
        """Begin a run now: `rate` requests/s for `duration` s (rate 0: closed loop)."""
        if rate < 0 or duration <= 0:
            raise ValueError("rate >= 0 and duration > 0")
        self.e.closed_loop = rate == 0
        self.e.rate = rate
        self.e.start_ns = lg_now()
        self.e.end_ns = self.e.start_ns + <int64_t>(duration * 1e9)
        self.e.total = <int64_t>(rate * duration) if rate > 0 else 0
        self.e.next = 0
        self.e.running = 1

    def step(self, int64_t until_ns) -> bool:
        """Run the loop until until_ns (time.monotonic_ns clock); True once the run is done."""
        r = lg_run(self.e, until_ns)
        if r < 0:
            raise OSError("epoll_pwait2 failed")
        return r == 1

    def finish(self) -> None:
        """End the run: what is still in flight counts as timed out, the backlog as unsent."""
        cdef int i
        for i in range(self.e.nconns):
            if self.e.conns[i].state > C_IDLE:  # C_WRITING, C_READING
                self.e.timeouts += 1
                self.e.inflight -= 1
                self.e.conns[i].state = C_CLOSED
                lg_drop(self.e, i)
                lg_open(self.e, i)
        self.e.running = 0

    def reset_counters(self) -> None:
        lg_reset_counters(self.e)

    @property
    def running(self) -> bool:
        return self.e.running != 0

    @property
    def scheduled(self) -> int:
        """Requests due so far in this run (sent + backlog)."""
        cdef int64_t n
        cdef int64_t now = lg_now()
        if self.e.closed_loop or not self.e.running or now < self.e.start_ns:
            return self.e.next
        n = <int64_t>((now - self.e.start_ns) * self.e.rate / 1e9) + 1
        if n > self.e.total:
            n = self.e.total
        return max(n, self.e.next)

    @property
    def total(self) -> int:
        return self.e.total

    @property
    def start_ns(self) -> int:
        return self.e.start_ns

    @property
    def histogram(self) -> Histogram:
        """Every completed response's latency from its scheduled time."""
        return Histogram._view(&self.e.all, self)

    @property
    def histogram_no429(self) -> Histogram:
        return Histogram._view(&self.e.no429, self)

    @property
    def interval(self) -> Histogram:
        """Like `histogram`, reset by the caller (the live progress line's window)."""
        return Histogram._view(&self.e.interval, self)

    @property
    def send_lag(self) -> Histogram:
        """How late the generator itself sent each request (its own overhead)."""
        return Histogram._view(&self.e.lag, self)

    def stats(self) -> dict:
        cdef int i
        statuses = {i: self.e.status[i] for i in range(600) if self.e.status[i]}
        codes = {}
        for i in range(self.e.ncodes):
            codes[(self.e.codes[i].status, self.e.codes[i].code.decode("ascii", "replace"))] = \
                self.e.codes[i].n
        return {
            "sent": self.e.sent, "completed": self.e.completed, "errors": self.e.errors,
            "timeouts": self.e.timeouts, "in_flight": self.e.inflight,
            "unsent": max(0, self.e.total - self.e.next) if not self.e.closed_loop else 0,
            "connects": self.e.connects, "reconnects": self.e.reconnects,
            "error_kinds": {"connect": self.e.err_kind[E_CONNECT], "closed": self.e.err_kind[E_CLOSED],
                            "reset": self.e.err_kind[E_RESET], "protocol": self.e.err_kind[E_PROTOCOL],
                            "tls": self.e.err_kind[E_TLS]},
            "status": statuses, "codes": codes, "codes_other": self.e.codes_other,
            "last_error": self.e.last_error.decode("utf-8", "replace"),
        }
