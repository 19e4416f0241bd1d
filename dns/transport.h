/*
 * One DNS exchange on the libuv loop: send a message to a name server, wait for its answer
 * (dns/transport.c). For dns/lookup.c (queries) and dns/rfc2136.c (updates).
 *
 * UDP first, on a connected socket (the kernel drops datagrams from anyone else, and an ICMP
 * "port unreachable" comes back as ECONNREFUSED at once), retransmitted with doubling intervals
 * until the deadline; an answer with TC set (or larger than the buffer) is asked again over TCP
 * (RFC 7766 §5: length-prefixed, same message). A datagram that does not answer the message
 * (dns_wire_answers(): id, QR, opcode, question) or that `accept` declines is ignored and the
 * exchange keeps waiting: the classic defence against spoofed answers. One deadline covers all
 * of it.
 */
#ifndef AFC_DNS_TRANSPORT_H
#define AFC_DNS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct dns_exchange;

struct dns_exchange_result {
    int status;          /* 0: an answer (wire, len); AFC_EIO: none, see error */
    bool timed_out;      /* no (acceptable) answer before the deadline */
    const uint8_t *wire; /* the answer, valid only during the callback */
    size_t len;
    unsigned transmissions; /* UDP datagrams sent */
    bool over_tcp;
    char error[200]; /* "timeout after 5000 ms (3 datagrams sent, 1 answer ignored: …)" */
};

/* Called once per started exchange unless it was cancelled. The exchange is gone when it runs:
 * forget the pointer, do not cancel it. */
typedef void (*dns_exchange_cb)(void *data, const struct dns_exchange_result *res);

/* Optional: take this answer (true), or ignore it and keep waiting (false, with a reason written
 * into why[cap] for the final error if nothing better arrives). */
typedef bool (*dns_exchange_accept_fn)(void *data, const uint8_t *wire, size_t len, char *why,
                                       size_t cap);

struct dns_exchange_params {
    const struct sockaddr *server; /* copied */
    const uint8_t *msg;            /* copied */
    size_t len;
    unsigned timeout_ms; /* the whole exchange, retransmissions and TCP included */
    dns_exchange_accept_fn accept;
    dns_exchange_cb cb;
    void *data;
};

/*
 * Starts the exchange. 0: cb will run on the loop (never from inside this call), whatever
 * happens on the network; AFC_ENOMEM / AFC_EINVAL: not started, cb never runs. *out (may be
 * NULL) is valid until cb runs or dns_exchange_cancel() is called.
 */
int dns_exchange_start(uv_loop_t *loop, const struct dns_exchange_params *params,
                       struct dns_exchange **out);

/* Stops it: cb never runs. Its memory is freed once libuv has closed its handles. */
void dns_exchange_cancel(struct dns_exchange *x);

/* The first retransmission interval for a timeout (then doubling): timeout/4, 50 ms to 1 s. */
unsigned dns_retransmit_first_ms(unsigned timeout_ms);

#endif
