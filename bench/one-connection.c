/*
 * One connection, closed loop: the v2 requests of bench/wrk/v2-put.lua and v2-get.lua, one at a time, each timed
 * from just before its write to the end of its answer with CLOCK_MONOTONIC. A cross-check of wrk's latencies at one
 * connection (bench/run.ts prints both): here, every request's time is inside its own request-answer cycle.
 *
 *   one-connection PORT SECONDS put|get [KEY-PREFIX]
 *
 * Prints one line: WRK_RESULT-like JSON with the count, the rate and the latency percentiles in µs. Loopback only;
 * bounded by SECONDS and by 2,000,000 requests.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUESTS 2000000

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

/* Reads one answer (head and Content-Length body) into buf; its length, or -1. */
static int read_answer(int fd, char *buf, int size) {
  int got = 0, need = -1;
  while (need < 0 || got < need) {
    int r = read(fd, buf + got, size - 1 - got);
    if (r <= 0) return -1;
    got += r;
    buf[got] = 0;
    if (need < 0) {
      char *end = strstr(buf, "\r\n\r\n");
      if (end == NULL) continue;
      *end = 0;
      char *cl = strcasestr(buf, "\r\ncontent-length:");
      *end = '\r';
      need = (int)(end - buf) + 4 + (cl ? atoi(cl + 17) : 0);
      if (need >= size) return -1;
    }
  }
  return got;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PORT SECONDS put|get [KEY-PREFIX]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  double seconds = atof(argv[2]);
  int put = strcmp(argv[3], "put") == 0;
  const char *prefix = argc > 4 ? argv[4] : "one";
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("connect");
    return 1;
  }
  long long *lat = malloc(sizeof(long long) * MAX_REQUESTS);
  char value[65];
  memset(value, 'v', 64);
  value[64] = 0;
  static char req[1024], buf[1 << 20];
  long n = 0;
  long long start = now_ns(), end = start + (long long)(seconds * 1e9);
  while (n < MAX_REQUESTS && now_ns() < end) {
    int len = put ? snprintf(req, sizeof req,
                             "PUT /v2/keys/bench/%s/%ld HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                             "application/x-www-form-urlencoded\r\nContent-Length: 70\r\n\r\nvalue=%s",
                             prefix, n, port, value)
                  : snprintf(req, sizeof req, "GET /v2/keys/bench-get HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    long long t0 = now_ns();
    if (write(fd, req, len) != len || read_answer(fd, buf, sizeof buf) < 0) {
      fprintf(stderr, "connection failed after %ld requests\n", n);
      return 1;
    }
    if (strncmp(buf, "HTTP/1.1 20", 11) != 0) {
      fprintf(stderr, "unexpected answer: %.40s\n", buf);
      return 1;
    }
    lat[n++] = (now_ns() - t0) / 1000;
  }
  double took = (now_ns() - start) / 1e9;
  if (n == 0) return 1;
  qsort(lat, n, sizeof(long long), cmp);
  long long sum = 0;
  for (long i = 0; i < n; i++) sum += lat[i];
  printf("ONE_RESULT {\"requests\":%ld,\"seconds\":%.3f,\"mean_us\":%lld,\"p50_us\":%lld,\"p99_us\":%lld,\"p999_us\":%lld}\n",
         n, took, sum / n, lat[n / 2], lat[n * 99 / 100], lat[n * 999 / 1000]);
  return 0;
}
