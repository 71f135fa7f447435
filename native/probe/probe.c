/* probe.c: sandbox-probe, the TCP readiness check, run inside the sandbox.
 *
 *   sandbox-probe PORT
 *
 * Exits 0 if something accepts a TCP connection on 127.0.0.1:PORT (or [::1]:PORT),
 * 1 if not.  Static, so it runs in any image. */
#define _GNU_SOURCE 1
#include <arpa/inet.h>  /* htons, htonl */
#include <netinet/in.h> /* sockaddr_in, sockaddr_in6 */
#include <sys/socket.h> /* socket, connect */
#include <unistd.h>     /* close */

#include "opts.h"
#include "util.h"

const char *const progname = "sandbox-probe";

static int try_connect(const struct sockaddr *addr, socklen_t len)
{
  int s = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -1;
  int rc = connect(s, addr, len);
  close(s);
  return rc;
}

int main(int argc, char **argv)
{
  struct opt table[] = {{.name = NULL}};
  const struct opts opts = {table, "PORT"};
  int i = opts_parse(&opts, argv);
  uint64_t port;
  if (argc != i + 1 || !parse_uint(argv[i], 65535, &port) || port == 0)
    opts_usage_die(&opts, "PORT must be a number in 1..65535");
  struct sockaddr_in v4 = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in6 v6 = {
      .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  if (try_connect((struct sockaddr *)&v4, sizeof v4) == 0 || try_connect((struct sockaddr *)&v6, sizeof v6) == 0)
    return 0;
  return 1;
}
