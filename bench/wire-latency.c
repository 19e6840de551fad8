/*
 * Request-answer timings on loopback, from the packets themselves: for a load at one connection and one request at
 * a time (wrk -c1, one-connection, etcd's benchmark --conns=1 --clients=1), the time from each request's first
 * packet to its answer's, on the server's side of the wire, and from each answer to the next request, on the
 * client's. Kernel timestamps (SO_TIMESTAMPNS) of the packets as lo sends them, so neither process's scheduling is
 * in them. What it separates: a tail in the server's own time from one in the client's (a client that is woken
 * late, or that times more than the wire: wrk at one connection reports a mean latency above the mean time between
 * requests).
 *
 *   wire-latency PORT SECONDS [http1|h2] [SLOW_US]
 *
 * Needs CAP_NET_RAW (root). http1 (default): a request is the client's first packet with data after an answer, an
 * answer the server's first packet with data after a request. h2 (gRPC): a request is a client packet with a HEADERS
 * frame, an answer a server packet with a HEADERS frame that ends its stream (the trailers), so that PING and
 * WINDOW_UPDATE frames between them are not taken for either. Frames are read from the start of each packet (one
 * small message per packet at one client). With SLOW_US, prints each answer-to-request gap longer than that, as
 * "SLOW <answer time, µs since the epoch> <gap µs>". Loopback only; bounded by SECONDS.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_SAMPLES 2000000

static long long server_ns[MAX_SAMPLES], client_ns[MAX_SAMPLES];

static int cmp(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, long long *xs, int n) {
  static const double ps[] = {50, 90, 99, 99.9};
  qsort(xs, n, sizeof *xs, cmp);
  printf("%s n=%d", name, n);
  for (int i = 0; i < 4; i++) printf(" p%g=%lld", ps[i], n ? xs[(int)(n * ps[i] / 100)] / 1000 : 0);
  printf(" max=%lld (us)\n", n ? xs[n - 1] / 1000 : 0);
}

/* For h2: whether the packet's data holds a HEADERS frame (*ends: one with END_STREAM). */
static int h2_headers(const unsigned char *p, int len, int *ends) {
  int found = 0;
  *ends = 0;
  for (int off = 0; off + 9 <= len;) {
    if (len - off >= 24 && memcmp(p + off, "PRI * HTTP/2.0", 14) == 0) {
      off += 24; /* the client's connection preface */
      continue;
    }
    int flen = (p[off] << 16) | (p[off + 1] << 8) | p[off + 2];
    if (p[off + 3] == 1) {
      found = 1;
      if (p[off + 4] & 1) *ends = 1;
    }
    off += 9 + flen;
  }
  return found;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PORT SECONDS [http1|h2] [SLOW_US]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  double seconds = atof(argv[2]);
  int h2 = argc > 3 && strcmp(argv[3], "h2") == 0;
  long long slow_ns = argc > 4 ? atoll(argv[4]) * 1000 : 0;
  int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
  if (fd < 0) {
    perror("socket(AF_PACKET)");
    return 1;
  }
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  int ns = 0, nc = 0;
  long long request_at = -1, answer_at = -1;
  unsigned char buf[65536], cbuf[256];
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 > seconds) break;
    struct sockaddr_ll from;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {&from, sizeof from, &iov, 1, cbuf, sizeof cbuf, 0};
    int r = recvmsg(fd, &m, 0);
    /* Each loopback packet is seen twice: sent (OUTGOING) and received; the sent copy is timed. */
    if (r <= 0 || from.sll_pkttype != PACKET_OUTGOING || from.sll_protocol != htons(ETH_P_IP)) continue;
    long long ts = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
        struct timespec *t = (struct timespec *)CMSG_DATA(c);
        ts = t->tv_sec * 1000000000LL + t->tv_nsec;
      }
    struct iphdr *ip = (struct iphdr *)buf;
    if (ts < 0 || r < (int)sizeof *ip || ip->protocol != IPPROTO_TCP) continue;
    struct tcphdr *tcp = (struct tcphdr *)(buf + ip->ihl * 4);
    int data = ntohs(ip->tot_len) - ip->ihl * 4 - tcp->doff * 4;
    if (data <= 0) continue;
    const unsigned char *p = (const unsigned char *)tcp + tcp->doff * 4;
    if (p + data > buf + r) data = (int)(buf + r - p);
    int ends = 0, headers = h2 ? h2_headers(p, data, &ends) : 1;
    if (ntohs(tcp->dest) == port && headers && request_at < 0) {
      request_at = ts;
      if (answer_at >= 0) {
        if (nc < MAX_SAMPLES) client_ns[nc++] = ts - answer_at;
        if (slow_ns && ts - answer_at > slow_ns) printf("SLOW %lld %lld\n", answer_at / 1000, (ts - answer_at) / 1000);
      }
    } else if (ntohs(tcp->source) == port && request_at >= 0 && (!h2 || ends)) {
      if (ns < MAX_SAMPLES) server_ns[ns++] = ts - request_at;
      answer_at = ts;
      request_at = -1;
    }
  }
  report("server (request to answer)", server_ns, ns);
  report("client (answer to next request)", client_ns, nc);
  return 0;
}
