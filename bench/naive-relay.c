/*
 * The naive userspace VXLAN relay: the baseline the switch must beat.
 *
 * One node's side of a point-to-point overlay. Creates a TAP device (no vnet header, no
 * offloads) and a UDP socket on the node's underlay address, then relays with one frame per
 * system call, one thread per direction:
 *   TAP -> read() one frame -> prepend the 8-byte VXLAN header -> sendto() the peer VTEP
 *   UDP -> recvfrom() one datagram -> check the VXLAN header -> write() the inner frame to the TAP
 * No MAC table: every frame goes to the one peer, which is all a two-node benchmark needs.
 *
 * usage: naive-relay <tap-name> <local-ip> <peer-ip> <vni> [port]
 * Prints "ready <tap-name>" on stdout once the TAP and the socket exist; runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define VXLAN_HDR 8
#define BUF_SIZE 65536

static int tap_fd = -1;
static int udp_fd = -1;
static struct sockaddr_in peer;
static uint32_t vni;

static void die(const char* what) {
  perror(what);
  exit(1);
}

static void* tap_to_udp(void* arg) {
  (void)arg;
  static unsigned char buf[BUF_SIZE];
  buf[0] = 0x08; /* I flag: the VNI is valid */
  buf[1] = buf[2] = buf[3] = 0;
  buf[4] = (vni >> 16) & 0xff;
  buf[5] = (vni >> 8) & 0xff;
  buf[6] = vni & 0xff;
  buf[7] = 0;
  for (;;) {
    ssize_t n = read(tap_fd, buf + VXLAN_HDR, sizeof(buf) - VXLAN_HDR);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      die("read tap");
    }
    if (sendto(udp_fd, buf, (size_t)n + VXLAN_HDR, 0, (struct sockaddr*)&peer, sizeof(peer)) < 0 &&
        errno != ENOBUFS && errno != EINTR && errno != ECONNREFUSED)
      die("sendto");
  }
  return NULL;
}

static void* udp_to_tap(void* arg) {
  (void)arg;
  static unsigned char buf[BUF_SIZE];
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(udp_fd, buf, sizeof(buf), 0, (struct sockaddr*)&from, &len);
    if (n < 0) {
      if (errno == EINTR || errno == ECONNREFUSED) continue;
      die("recvfrom");
    }
    if (n < VXLAN_HDR + 14 || from.sin_addr.s_addr != peer.sin_addr.s_addr || !(buf[0] & 0x08))
      continue;
    uint32_t got = ((uint32_t)buf[4] << 16) | ((uint32_t)buf[5] << 8) | buf[6];
    if (got != vni) continue;
    /* EIO while the TAP is down; the frame is dropped as a kernel queue would drop it. */
    if (write(tap_fd, buf + VXLAN_HDR, (size_t)n - VXLAN_HDR) < 0 && errno != EIO && errno != EINTR)
      die("write tap");
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: %s <tap-name> <local-ip> <peer-ip> <vni> [port]\n", argv[0]);
    return 2;
  }
  const char* name = argv[1];
  int port = argc == 6 ? atoi(argv[5]) : 4789;
  vni = (uint32_t)strtoul(argv[4], NULL, 10) & 0xffffff;

  tap_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (tap_fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (strlen(name) >= IFNAMSIZ) {
    fprintf(stderr, "tap name too long: %s\n", name);
    return 2;
  }
  strcpy(ifr.ifr_name, name);
  if (ioctl(tap_fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");

  udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (udp_fd < 0) die("socket");
  int big = 4 << 20;
  setsockopt(udp_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  setsockopt(udp_fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  struct sockaddr_in local;
  memset(&local, 0, sizeof(local));
  local.sin_family = AF_INET;
  local.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, argv[2], &local.sin_addr) != 1) die("local ip");
  if (bind(udp_fd, (struct sockaddr*)&local, sizeof(local)) < 0) die("bind");
  memset(&peer, 0, sizeof(peer));
  peer.sin_family = AF_INET;
  peer.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, argv[3], &peer.sin_addr) != 1) die("peer ip");

  pthread_t t1, t2;
  if (pthread_create(&t1, NULL, tap_to_udp, NULL) != 0) die("pthread_create");
  if (pthread_create(&t2, NULL, udp_to_tap, NULL) != 0) die("pthread_create");
  printf("ready %s\n", ifr.ifr_name);
  fflush(stdout);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  return 0;
}
