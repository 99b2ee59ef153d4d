/* Conditionals that split a statement or a function header: each branch alone is C,
 * the file as written is not. Every definition here must be found. */
#include <stddef.h>

static int output_auth(int have_ntlm, int a, int b)
{
  int result = 0;
#ifdef USE_NTLM
  if(have_ntlm && a && b) {
#else
  if(a && b) {
#endif
    result = 1;
  }
  return result;
}

int http_output_auth(int a, int b)
{
  return output_auth(0, a, b);
}

static int connect_step2(int fd)
{
  int rc;
#if defined(HAVE_POLL)
  rc = wait_poll(fd,
#else
  rc = wait_select(fd,
#endif
                 1000);
  if(rc < 0)
    return -1;
  return rc;
}

int connect_step3(int fd)
{
  return connect_step2(fd) + 1;
}

#ifdef USE_IPV6
static int open_socket(int family, int port)
{
  if(family == 6) {
#else
static int open_socket(int port)
{
  {
#endif
    return port;
  }
}

int socket_after_header_split(void)
{
  return 0;
}

static const char *version_string(void)
{
  static const char *v =
#if defined(USE_OPENSSL)
    "openssl"
#elif defined(USE_GNUTLS)
    "gnutls"
#else
    "none"
#endif
    ;
  return v;
}

void cleanup(void *p)
{
#ifdef DEBUG
  if(p) {
    log_free(p);
#else
  if(p) {
#endif
    release(p);
  }
}
