/*
 * What a thread wake-up costs on this machine, after a given idle gap: the floor under any
 * design whose threads sleep between packets (bench/README.md, "Latency and the poll window").
 *
 * Two threads ping-pong one byte through two pipes, the responder sleeping in epoll_wait as a
 * packet thread does. Every round trip is two wake-ups; between round trips the initiator
 * sleeps for the gap, so both start cold as after a quiet spell. Prints the median, 10th and
 * 90th percentile round trip for each gap.
 *
 * usage: cc -O2 -pthread -o /tmp/wakeup bench/wakeup.c && /tmp/wakeup [gap-us ...]
 *        (default gaps: 50000 1000 0, i.e. ping's 20 per second, 1,000 per second, back to back)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 200

static int to_responder[2], to_initiator[2];

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *responder(void *arg) {
  (void)arg;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, to_responder[0], &ev);
  for (;;) {
    char c;
    if (epoll_wait(ep, &ev, 1, -1) < 0) continue;
    if (read(to_responder[0], &c, 1) != 1 || c == 'q') break;
    if (write(to_initiator[1], &c, 1) != 1) break;
  }
  close(ep);
  return NULL;
}

static int by_value(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static void measure(int gap_us) {
  long long rtt[ROUNDS];
  for (int i = 0; i < ROUNDS; ++i) {
    if (gap_us > 0) usleep(gap_us);
    char c = 'x';
    long long t = now_ns();
    if (write(to_responder[1], &c, 1) != 1 || read(to_initiator[0], &c, 1) != 1) exit(1);
    rtt[i] = now_ns() - t;
  }
  qsort(rtt, ROUNDS, sizeof(rtt[0]), by_value);
  printf("gap %6d us: round trip (two wake-ups) median %6.1f us, p10 %6.1f, p90 %6.1f\n", gap_us,
         rtt[ROUNDS / 2] / 1e3, rtt[ROUNDS / 10] / 1e3, rtt[ROUNDS * 9 / 10] / 1e3);
}

int main(int argc, char **argv) {
  if (pipe(to_responder) != 0 || pipe(to_initiator) != 0) return 1;
  pthread_t th;
  pthread_create(&th, NULL, responder, NULL);
  if (argc > 1) {
    for (int i = 1; i < argc; ++i) measure(atoi(argv[i]));
  } else {
    measure(50000);
    measure(1000);
    measure(0);
  }
  char q = 'q';
  if (write(to_responder[1], &q, 1) != 1) return 1;
  pthread_join(th, NULL);
  return 0;
}
